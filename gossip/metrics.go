package gossip

import (
	"maps"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Rejection reasons: every message refused from the network is counted
// under one of these.
const (
	rejectHandshake       = iota // data stream: malformed or incomplete handshake
	rejectVersion                // data stream: unsupported protocol version
	rejectLabel                  // data stream: another cluster label
	rejectAuth                   // data stream: no key, unknown key, or failed key proof
	rejectName                   // data stream: empty name or our own
	rejectFrame                  // data stream: malformed or unauthenticated frame
	rejectOverload               // data stream: too many handshakes pending (from its address, or in all)
	rejectNotMember              // data stream: the name is no live member at the connection's address
	rejectDuplicate              // data stream: a live stream under that name is open
	rejectTimeout                // data stream: handshake not completed within HandshakeTimeout
	rejectSessionLimit           // data stream: too many established streams (from its address, or in all)
	rejectFlood                  // data stream: a peer queued more control frames than the protocol allows
	rejectGossipDecrypt          // memberlist: not encrypted with a key we hold
	rejectGossipLabel            // memberlist: another cluster label
	rejectGossipMalformed        // memberlist: undecodable packet or stream
	rejectGossipMeta             // memberlist: member with unreadable metadata or protocol
	rejectGossipUserMsg          // memberlist: a user message (shoal sends none)
	rejectGossipOverload         // memberlist: too many inbound TCP streams open (from its address, or in all)
	numRejects
)

// rejectClosing marks a refusal that is not counted: we are shutting down.
const rejectClosing = -1

var rejectNames = [numRejects]string{
	rejectHandshake:       "data_handshake",
	rejectVersion:         "data_version",
	rejectLabel:           "data_label",
	rejectAuth:            "data_auth",
	rejectName:            "data_name",
	rejectFrame:           "data_frame",
	rejectOverload:        "data_overload",
	rejectNotMember:       "data_not_member",
	rejectDuplicate:       "data_duplicate",
	rejectTimeout:         "data_timeout",
	rejectSessionLimit:    "data_session_limit",
	rejectFlood:           "data_flood",
	rejectGossipDecrypt:   "gossip_decrypt",
	rejectGossipLabel:     "gossip_label",
	rejectGossipMalformed: "gossip_malformed",
	rejectGossipMeta:      "gossip_meta",
	rejectGossipUserMsg:   "gossip_user_msg",
	rejectGossipOverload:  "gossip_overload",
}

// Message types for byte counts beyond the data frame types.
const (
	msgGossipPacket = "gossip_packet" // memberlist UDP
	msgGossipStream = "gossip_stream" // memberlist TCP (push/pull, fallback probes)
)

// stats holds the counters; they are plain atomics so the hot paths do not
// touch prometheus, and the collector reads them at scrape time.
type stats struct {
	bytesOut, bytesIn       [frameTypeMax + 1]atomic.Uint64
	mlPacketOut, mlPacketIn atomic.Uint64
	mlStreamOut, mlStreamIn atomic.Uint64
	payloadsOut, payloadsIn [SourceSync + 1]atomic.Uint64
	queueDropped            atomic.Uint64
	unconnected             atomic.Uint64
	queuePayloads           atomic.Int64
	queueBytes              atomic.Int64
	rejected                [numRejects]atomic.Uint64
	deliverErrors           atomic.Uint64
	pulls, serves           [2]atomic.Uint64 // [0] completed, [1] failed
	sessions                atomic.Int64
	pending                 atomic.Int64 // data stream handshakes in progress (accepted side)
	idleClosed              atomic.Uint64
	serveTimeouts           atomic.Uint64
	logSuppressed           atomic.Uint64
	batchSize               prometheus.Histogram
}

func newStats() *stats {
	return &stats{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_gossip_batch_payloads",
			Help:    "Payloads per pushed batch frame.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
	}
}

func (s *stats) reject(reason int) {
	if reason >= 0 && reason < numRejects {
		s.rejected[reason].Add(1)
	}
}

// Stats is a snapshot of a node's gossip counters (the same numbers its
// Prometheus metrics report).
type Stats struct {
	// BytesSent and BytesReceived count wire bytes (frame headers and
	// encryption included) by message type: the data frame types ("batch",
	// "digest", "sync_request", "sync_data", ...) and memberlist's
	// "gossip_packet" and "gossip_stream".
	BytesSent, BytesReceived map[string]uint64
	// Payloads pushed to and received from peers (one per peer and payload),
	// and those sent and received in anti-entropy transfers.
	PushedSent, PushedReceived uint64
	SyncSent, SyncReceived     uint64
	// QueueDropped counts payloads dropped for a peer (its queue was full,
	// or it failed or left before they were sent).
	QueueDropped uint64
	// Unconnected counts payloads not queued for a live peer because no
	// stream to it was up (the pull made when one comes up repairs them).
	Unconnected uint64
	// QueuedPayloads and QueuedBytes are what waits in the peer queues now.
	QueuedPayloads, QueuedBytes int64
	// Rejected counts messages refused from the network, by reason
	// ("data_auth", "data_frame", "data_not_member", "gossip_decrypt", ...).
	Rejected map[string]uint64
	// DeliverErrors counts Handler.Deliver calls that returned an error.
	DeliverErrors uint64
	// Pulls and Serves count anti-entropy requests made and answered.
	PullsCompleted, PullsFailed   uint64
	ServesCompleted, ServesFailed uint64
	// Sessions is the number of open data streams (both directions), and
	// PendingHandshakes the accepted connections still in their handshake.
	Sessions          int64
	PendingHandshakes int64
	// IdleClosed counts streams closed because a keepalive ping went
	// unanswered (Config.IdleTimeout, PingTimeout); ServeTimeouts the
	// anti-entropy serves cancelled because the requester stopped crediting
	// (Config.ServeCreditTimeout).
	IdleClosed    uint64
	ServeTimeouts uint64
	// LogSuppressed counts log lines about refused traffic left out by the
	// rate limit (Config.LogInterval); the counters above still count them.
	LogSuppressed uint64
}

// Stats returns a snapshot of the counters.
func (g *Gossip) Stats() Stats {
	s := g.stats
	out := Stats{
		BytesSent:       map[string]uint64{},
		BytesReceived:   map[string]uint64{},
		PushedSent:      s.payloadsOut[SourcePush].Load(),
		PushedReceived:  s.payloadsIn[SourcePush].Load(),
		SyncSent:        s.payloadsOut[SourceSync].Load(),
		SyncReceived:    s.payloadsIn[SourceSync].Load(),
		QueueDropped:    s.queueDropped.Load(),
		Unconnected:     s.unconnected.Load(),
		QueuedPayloads:  s.queuePayloads.Load(),
		QueuedBytes:     s.queueBytes.Load(),
		Rejected:        map[string]uint64{},
		DeliverErrors:   s.deliverErrors.Load(),
		PullsCompleted:  s.pulls[0].Load(),
		PullsFailed:     s.pulls[1].Load(),
		ServesCompleted: s.serves[0].Load(),
		ServesFailed:    s.serves[1].Load(),
		Sessions:        s.sessions.Load(),

		PendingHandshakes: s.pending.Load(),
		IdleClosed:        s.idleClosed.Load(),
		ServeTimeouts:     s.serveTimeouts.Load(),
		LogSuppressed:     s.logSuppressed.Load(),
	}
	for t := frameBatch; t <= frameTypeMax; t++ {
		out.BytesSent[t.String()] = s.bytesOut[t].Load()
		out.BytesReceived[t.String()] = s.bytesIn[t].Load()
	}
	out.BytesSent[msgGossipPacket] = s.mlPacketOut.Load()
	out.BytesReceived[msgGossipPacket] = s.mlPacketIn.Load()
	out.BytesSent[msgGossipStream] = s.mlStreamOut.Load()
	out.BytesReceived[msgGossipStream] = s.mlStreamIn.Load()
	for i := range numRejects {
		out.Rejected[rejectNames[i]] = s.rejected[i].Load()
	}
	return out
}

// RejectedTotal sums Rejected.
func (s Stats) RejectedTotal() uint64 {
	var n uint64
	for v := range maps.Values(s.Rejected) {
		n += v
	}
	return n
}

// collector exports the counters to Prometheus at scrape time.
type collector struct {
	g                                       *Gossip
	members, bytesOut, bytesIn              *prometheus.Desc
	payloadsOut, payloadsIn                 *prometheus.Desc
	queuePayloads, queueBytes, queueDropped *prometheus.Desc
	unconnected                             *prometheus.Desc
	rejected, deliverErrors                 *prometheus.Desc
	pulls, serves, sessions                 *prometheus.Desc
	pending, idleClosed, serveTimeouts      *prometheus.Desc
	logSuppressed                           *prometheus.Desc
}

func newCollector(g *Gossip) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("shoal_gossip_"+name, help, labels, nil)
	}
	return &collector{
		g:             g,
		members:       d("members", "Cluster members by state, as this node sees them (itself included).", "state"),
		bytesOut:      d("sent_bytes_total", "Wire bytes sent, by message type.", "type"),
		bytesIn:       d("received_bytes_total", "Wire bytes received, by message type.", "type"),
		payloadsOut:   d("payloads_sent_total", "Payloads sent to peers (one per peer), by source (push or sync).", "source"),
		payloadsIn:    d("payloads_received_total", "Payloads received from peers, by source (push or sync).", "source"),
		queuePayloads: d("queue_payloads", "Payloads waiting in the per-peer outbound queues."),
		queueBytes:    d("queue_bytes", "Payload bytes waiting in the per-peer outbound queues."),
		queueDropped:  d("queue_dropped_total", "Payloads dropped for a peer (queue full, or the peer failed or left); anti-entropy repairs them."),
		unconnected:   d("unconnected_payloads_total", "Payloads not queued for a live peer because no stream to it was up; the pull at reconnect repairs them."),
		rejected:      d("rejected_total", "Messages refused from the network, by reason.", "reason"),
		deliverErrors: d("deliver_errors_total", "Handler.Deliver calls that failed."),
		pulls:         d("sync_pulls_total", "Anti-entropy requests made, by result.", "result"),
		serves:        d("sync_serves_total", "Anti-entropy requests served, by result.", "result"),
		sessions:      d("sessions", "Open data streams."),
		pending:       d("pending_handshakes", "Accepted data stream connections still in their handshake."),
		idleClosed:    d("idle_closed_total", "Data streams closed because a keepalive ping went unanswered."),
		serveTimeouts: d("sync_serve_credit_timeouts_total", "Anti-entropy serves cancelled because the requester stopped crediting chunks."),
		logSuppressed: d("log_lines_suppressed_total", "Log lines about refused traffic left out by the rate limit."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.bytesOut, c.bytesIn, c.payloadsOut, c.payloadsIn,
		c.queuePayloads, c.queueBytes, c.queueDropped, c.unconnected, c.rejected, c.deliverErrors, c.pulls, c.serves, c.sessions,
		c.pending, c.idleClosed, c.serveTimeouts, c.logSuppressed} {
		ch <- d
	}
	c.g.stats.batchSize.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	byState := map[State]int64{StateAlive: 0, StateDead: 0, StateLeft: 0}
	for _, m := range c.g.Members() {
		byState[m.State]++
	}
	for s, n := range byState {
		gauge(c.members, n, s.String())
	}
	for t, v := range st.BytesSent {
		counter(c.bytesOut, v, t)
	}
	for t, v := range st.BytesReceived {
		counter(c.bytesIn, v, t)
	}
	counter(c.payloadsOut, st.PushedSent, SourcePush.String())
	counter(c.payloadsOut, st.SyncSent, SourceSync.String())
	counter(c.payloadsIn, st.PushedReceived, SourcePush.String())
	counter(c.payloadsIn, st.SyncReceived, SourceSync.String())
	gauge(c.queuePayloads, st.QueuedPayloads)
	gauge(c.queueBytes, st.QueuedBytes)
	counter(c.queueDropped, st.QueueDropped)
	counter(c.unconnected, st.Unconnected)
	for r, v := range st.Rejected {
		counter(c.rejected, v, r)
	}
	counter(c.deliverErrors, st.DeliverErrors)
	counter(c.pulls, st.PullsCompleted, "ok")
	counter(c.pulls, st.PullsFailed, "error")
	counter(c.serves, st.ServesCompleted, "ok")
	counter(c.serves, st.ServesFailed, "error")
	gauge(c.sessions, st.Sessions)
	gauge(c.pending, st.PendingHandshakes)
	counter(c.idleClosed, st.IdleClosed)
	counter(c.serveTimeouts, st.ServeTimeouts)
	counter(c.logSuppressed, st.LogSuppressed)
	c.g.stats.batchSize.Collect(ch)
	c.g.mlm.collect(ch)
}
