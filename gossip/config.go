package gossip

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Gossip instance. It is a plain struct: New copies it
// and fills zero fields with the DefaultLANConfig values; the caller's value
// is never modified. Start from a preset and change what you need.
type Config struct {
	// Name is this node's name, unique in the cluster (at most 255 bytes).
	Name string

	// BindAddr and BindPort are where memberlist listens (UDP and TCP).
	// Port 0 picks a free port.
	BindAddr string
	BindPort int

	// AdvertiseAddr and AdvertisePort are what other members use to reach
	// us; empty/0 means the bound address and port.
	AdvertiseAddr string
	AdvertisePort int

	// DataPort is where the data stream listener binds (on BindAddr); 0 picks
	// a free port. The actual address is advertised in memberlist node
	// metadata, so peers need not know it in advance.
	DataPort int

	// Label is the cluster label: memberlist drops packets and streams with
	// another label, and data streams with another label are refused. Use it
	// to keep two clusters on one network apart. At most 255 bytes.
	Label string

	// SecretKeys turns on encryption: the first key is the primary (used to
	// encrypt), all are accepted. Each key is 16, 24 or 32 bytes (AES-128,
	// -192, -256). memberlist's traffic is encrypted with its keyring, and
	// data streams open with a Noise handshake that takes the key as a
	// pre-shared key (only key holders get through) and agrees on fresh
	// per-stream keys from ephemeral Diffie-Hellman keys (forward secrecy:
	// a key obtained later does not decrypt recorded streams). Rotate keys
	// with InstallKey, UseKey and RemoveKey. Without keys, data streams are
	// neither authenticated nor encrypted: only the membership check (a
	// stream must come from a live member's address, under its name)
	// applies. Use that on loopback or trusted networks only.
	SecretKeys [][]byte

	// memberlist tuning (see memberlist.Config for each).
	ProbeInterval       time.Duration
	ProbeTimeout        time.Duration
	SuspicionMult       int
	RetransmitMult      int
	IndirectChecks      int
	GossipInterval      time.Duration
	GossipNodes         int
	PushPullInterval    time.Duration
	TCPTimeout          time.Duration
	DeadNodeReclaimTime time.Duration // lets a restarted node reclaim its name on a new address

	// FlushInterval is how long new payloads wait to be batched into one
	// frame per peer (a frame also goes out once MaxBatchBytes are queued).
	FlushInterval time.Duration
	// MaxBatchBytes caps the payload bytes of one batch frame.
	MaxBatchBytes int
	// MaxFrameBytes caps every data stream frame, in both directions; a
	// larger frame is rejected, and a frame's buffer grows as its bytes
	// arrive (64 KiB at a time), never from its length word alone. The
	// largest payload is a little smaller (see Gossip.MaxPayload). The
	// default, 16 MiB + 64 KiB, carries node's largest record (its WAL's
	// 16 MiB record limit); anti-entropy transfers are chunked
	// (SyncChunkBytes) whatever the limit.
	MaxFrameBytes int
	// QueueBytes bounds each peer's outbound queue. A payload that does not
	// fit is dropped for that peer (counted) and the peer is told to pull.
	QueueBytes int
	// AckInterval is the least time between two acknowledgements (digests)
	// sent back on one stream.
	AckInterval time.Duration

	// AntiEntropyInterval is the period of anti-entropy rounds: each round
	// pulls from one random connected peer.
	AntiEntropyInterval time.Duration
	// SyncChunkBytes is the size of one anti-entropy data chunk, and
	// SyncWindow the number of chunks in flight before the server waits for
	// the requester to consume them.
	SyncChunkBytes int
	SyncWindow     int
	// SyncIdleTimeout abandons an anti-entropy request that received nothing
	// for that long.
	SyncIdleTimeout time.Duration
	// MaxConcurrentServes bounds the anti-entropy requests served at once;
	// more are refused (the requester retries later). Each stream has one
	// served at a time, so one peer cannot take every slot; a few more
	// requests on it wait their turn without a slot, and more are refused.
	MaxConcurrentServes int
	// ServeCreditTimeout cancels a serve whose requester has sent no credit
	// for that long while the window is full, freeing its slot (counted in
	// Stats.ServeTimeouts).
	ServeCreditTimeout time.Duration
	// MaxConcurrentPulls bounds the anti-entropy requests this node makes at
	// once. 1 avoids fetching the same catch-up data from several peers.
	MaxConcurrentPulls int

	// RejoinInterval is the mean period (jittered ±25%) at which this node
	// re-joins seeds and failed peers it knows, so that partitions heal
	// without a manual Join. DeadPeerTimeout is how long a failed peer is
	// remembered for this.
	RejoinInterval  time.Duration
	DeadPeerTimeout time.Duration

	// DialTimeout bounds dialing a data stream (the TCP connection);
	// WriteTimeout bounds each frame write (a stuck peer is disconnected).
	DialTimeout  time.Duration
	WriteTimeout time.Duration

	// HandshakeTimeout bounds a data stream handshake, on both sides, from
	// the moment the connection is made: an accepted connection that has
	// not completed it by then is closed (counted as "data_timeout"). Keep
	// it short: every pending handshake holds a slot.
	HandshakeTimeout time.Duration
	// MaxPendingHandshakes bounds the accepted connections still in their
	// handshake, MaxPendingPerAddr those from one source address (an IPv4
	// address or an IPv6 /64). A connection beyond the per-address bound
	// is closed at once; at the total bound, the oldest pending handshake
	// of the address with the most is closed to make room, so a few
	// addresses cannot keep the others out (both counted as
	// "data_overload"). The same bounds apply to memberlist's inbound TCP
	// streams open at once (short push/pull exchanges, joins and fallback
	// probes; memberlist has no bound of its own): more are closed at once
	// ("gossip_overload").
	MaxPendingHandshakes int
	MaxPendingPerAddr    int
	// MaxInboundSessions bounds the established streams peers opened to us,
	// MaxSessionsPerAddr those from one source address (members on one
	// host share it); more are refused ("data_session_limit"). Each live
	// member has at most one inbound stream, so these matter only for
	// clusters larger than the bounds, or a key holder that makes up
	// members.
	MaxInboundSessions int
	MaxSessionsPerAddr int
	// IdleTimeout: a stream on which nothing arrived for this long is sent
	// a ping, and closed if nothing arrives within PingTimeout after it
	// (counted in Stats.IdleClosed). A peer answers pings from its stream
	// reader, so PingTimeout must exceed the longest Handler.Deliver.
	IdleTimeout time.Duration
	PingTimeout time.Duration

	// LogInterval is the least time between two log lines about refused
	// traffic (data streams, and memberlist's own warnings) of one kind
	// from one source address; the lines in between are left out and
	// counted, and the next line, or a summary line once the interval is
	// over, says how many. The counters (Stats.Rejected) count every one.
	LogInterval time.Duration

	// Logger receives this package's and memberlist's logs; nil = discard.
	Logger *slog.Logger
	// Registerer receives this instance's metrics; nil = off. Two instances
	// cannot share one Registerer (the metric names would collide).
	Registerer prometheus.Registerer

	// Faults injects faults (drops, partitions) between named nodes of one
	// process, for tests. nil = none.
	Faults *FaultNet
}

// DefaultLANConfig returns a configuration for a LAN: memberlist's LAN
// defaults, binding all interfaces on port 7946 (data streams on 7947). The
// name defaults to the hostname.
func DefaultLANConfig() *Config {
	host, _ := os.Hostname()
	ml := memberlist.DefaultLANConfig()
	return &Config{
		Name:                host,
		BindAddr:            "0.0.0.0",
		BindPort:            7946,
		DataPort:            7947,
		ProbeInterval:       ml.ProbeInterval,
		ProbeTimeout:        ml.ProbeTimeout,
		SuspicionMult:       ml.SuspicionMult,
		RetransmitMult:      ml.RetransmitMult,
		IndirectChecks:      ml.IndirectChecks,
		GossipInterval:      ml.GossipInterval,
		GossipNodes:         ml.GossipNodes,
		PushPullInterval:    ml.PushPullInterval,
		TCPTimeout:          ml.TCPTimeout,
		DeadNodeReclaimTime: 30 * time.Second,
		FlushInterval:       5 * time.Millisecond,
		MaxBatchBytes:       256 << 10,
		MaxFrameBytes:       16<<20 + 64<<10,
		QueueBytes:          32 << 20,
		AckInterval:         50 * time.Millisecond,
		AntiEntropyInterval: 5 * time.Second,
		SyncChunkBytes:      256 << 10,
		SyncWindow:          4,
		SyncIdleTimeout:     30 * time.Second,
		MaxConcurrentServes: 4,
		ServeCreditTimeout:  30 * time.Second,
		MaxConcurrentPulls:  1,
		RejoinInterval:      15 * time.Second,
		DeadPeerTimeout:     72 * time.Hour,
		DialTimeout:         5 * time.Second,
		WriteTimeout:        10 * time.Second,

		HandshakeTimeout:     3 * time.Second,
		MaxPendingHandshakes: 256,
		MaxPendingPerAddr:    8,
		MaxInboundSessions:   512,
		MaxSessionsPerAddr:   64,
		IdleTimeout:          30 * time.Second,
		PingTimeout:          10 * time.Second,
		LogInterval:          10 * time.Second,
	}
}

// DefaultLocalConfig returns a configuration for one machine (loopback,
// tests and demos): 127.0.0.1, free ports, fast probes and short intervals.
// RetransmitMult is 4: with memberlist's local value of 2, forming a
// 5-node cluster was measured to take 15-20 s at times, with 4 about 0.2 s.
// FlushInterval is 2 ms: every frame costs each receiver a delivery (a
// group commit and its fsync), and on one machine all the receivers share
// its cores. Against 1 ms, ten nodes on two cores at 1,000 writes/s used
// ~12% less CPU a write and their p99 convergence fell by a third; three
// at 5,000 writes/s gained 0.5-0.8 ms of p50 (node/PERFORMANCE.md).
func DefaultLocalConfig() *Config {
	c := DefaultLANConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.DataPort = 0
	c.ProbeInterval = 250 * time.Millisecond
	c.ProbeTimeout = 200 * time.Millisecond
	c.SuspicionMult = 3
	c.RetransmitMult = 4
	c.IndirectChecks = 2
	c.GossipInterval = 100 * time.Millisecond
	c.PushPullInterval = 5 * time.Second
	c.TCPTimeout = 2 * time.Second
	c.DeadNodeReclaimTime = 100 * time.Millisecond
	c.FlushInterval = 2 * time.Millisecond
	c.AckInterval = 25 * time.Millisecond
	c.AntiEntropyInterval = time.Second
	c.RejoinInterval = 500 * time.Millisecond
	c.DialTimeout = 2 * time.Second
	c.WriteTimeout = 5 * time.Second
	c.SyncIdleTimeout = 10 * time.Second
	c.ServeCreditTimeout = 10 * time.Second
	c.HandshakeTimeout = 2 * time.Second
	c.IdleTimeout = 10 * time.Second
	c.PingTimeout = 5 * time.Second
	return c
}

// frameOverhead bounds what a frame adds around its payloads (length, version,
// type, counts, lengths, AEAD tag).
const frameOverhead = 64

// withDefaults returns a copy of c with zero fields filled from the LAN preset,
// and checks it.
func (c *Config) withDefaults() (*Config, error) {
	out := *c
	d := DefaultLANConfig()
	if out.BindAddr == "" {
		out.BindAddr = d.BindAddr
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&out.ProbeInterval, d.ProbeInterval)
	setDur(&out.ProbeTimeout, d.ProbeTimeout)
	setInt(&out.SuspicionMult, d.SuspicionMult)
	setInt(&out.RetransmitMult, d.RetransmitMult)
	setInt(&out.IndirectChecks, d.IndirectChecks)
	setDur(&out.GossipInterval, d.GossipInterval)
	setInt(&out.GossipNodes, d.GossipNodes)
	setDur(&out.PushPullInterval, d.PushPullInterval)
	setDur(&out.TCPTimeout, d.TCPTimeout)
	setDur(&out.DeadNodeReclaimTime, d.DeadNodeReclaimTime)
	if out.FlushInterval < 0 {
		out.FlushInterval = 0
	}
	setInt(&out.MaxBatchBytes, d.MaxBatchBytes)
	setInt(&out.MaxFrameBytes, d.MaxFrameBytes)
	setInt(&out.QueueBytes, d.QueueBytes)
	setDur(&out.AckInterval, d.AckInterval)
	setDur(&out.AntiEntropyInterval, d.AntiEntropyInterval)
	setInt(&out.SyncChunkBytes, d.SyncChunkBytes)
	setInt(&out.SyncWindow, d.SyncWindow)
	out.SyncWindow = min(out.SyncWindow, maxWindow)
	setDur(&out.SyncIdleTimeout, d.SyncIdleTimeout)
	setInt(&out.MaxConcurrentServes, d.MaxConcurrentServes)
	setInt(&out.MaxConcurrentPulls, d.MaxConcurrentPulls)
	setDur(&out.RejoinInterval, d.RejoinInterval)
	setDur(&out.DeadPeerTimeout, d.DeadPeerTimeout)
	setDur(&out.DialTimeout, d.DialTimeout)
	setDur(&out.WriteTimeout, d.WriteTimeout)
	setDur(&out.ServeCreditTimeout, d.ServeCreditTimeout)
	setDur(&out.HandshakeTimeout, d.HandshakeTimeout)
	setInt(&out.MaxPendingHandshakes, d.MaxPendingHandshakes)
	setInt(&out.MaxPendingPerAddr, d.MaxPendingPerAddr)
	setInt(&out.MaxInboundSessions, d.MaxInboundSessions)
	setInt(&out.MaxSessionsPerAddr, d.MaxSessionsPerAddr)
	setDur(&out.IdleTimeout, d.IdleTimeout)
	setDur(&out.PingTimeout, d.PingTimeout)
	setDur(&out.LogInterval, d.LogInterval)

	switch {
	case out.Name == "":
		return nil, fmt.Errorf("%w: empty Name", ErrInvalidConfig)
	case len(out.Name) > 255:
		return nil, fmt.Errorf("%w: Name longer than 255 bytes", ErrInvalidConfig)
	case len(out.Label) > memberlist.LabelMaxSize:
		return nil, fmt.Errorf("%w: Label longer than %d bytes", ErrInvalidConfig, memberlist.LabelMaxSize)
	case out.MaxFrameBytes < 4<<10:
		return nil, fmt.Errorf("%w: MaxFrameBytes %d below 4 KiB", ErrInvalidConfig, out.MaxFrameBytes)
	case out.MaxFrameBytes > 1<<30:
		return nil, fmt.Errorf("%w: MaxFrameBytes %d above 1 GiB", ErrInvalidConfig, out.MaxFrameBytes)
	}
	if out.MaxBatchBytes > out.MaxFrameBytes-frameOverhead {
		out.MaxBatchBytes = out.MaxFrameBytes - frameOverhead
	}
	if out.SyncChunkBytes > out.MaxFrameBytes-frameOverhead {
		out.SyncChunkBytes = out.MaxFrameBytes - frameOverhead
	}
	if len(out.SecretKeys) > 0 {
		keys := make([][]byte, len(out.SecretKeys))
		for i, k := range out.SecretKeys {
			if err := memberlist.ValidateKey(k); err != nil {
				return nil, fmt.Errorf("%w: SecretKeys[%d]: %v", ErrInvalidConfig, i, err)
			}
			keys[i] = append([]byte(nil), k...)
		}
		out.SecretKeys = keys
	}
	return &out, nil
}

// memberlistConfig builds memberlist's configuration from c.
func (c *Config) memberlistConfig() *memberlist.Config {
	ml := memberlist.DefaultLANConfig()
	ml.Name = c.Name
	ml.BindAddr = c.BindAddr
	ml.BindPort = c.BindPort
	ml.AdvertiseAddr = c.AdvertiseAddr
	ml.AdvertisePort = c.AdvertisePort
	ml.Label = c.Label
	ml.ProbeInterval = c.ProbeInterval
	ml.ProbeTimeout = c.ProbeTimeout
	ml.SuspicionMult = c.SuspicionMult
	ml.RetransmitMult = c.RetransmitMult
	ml.IndirectChecks = c.IndirectChecks
	ml.GossipInterval = c.GossipInterval
	ml.GossipNodes = c.GossipNodes
	ml.PushPullInterval = c.PushPullInterval
	ml.TCPTimeout = c.TCPTimeout
	ml.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	ml.GossipToTheDeadTime = 2 * c.PushPullInterval
	ml.DelegateProtocolVersion = protocolVersion
	ml.DelegateProtocolMin = protocolVersion
	ml.DelegateProtocolMax = protocolVersion
	ml.GossipVerifyIncoming = true
	ml.GossipVerifyOutgoing = true
	return ml
}
