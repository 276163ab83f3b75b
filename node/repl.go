package node

// Replication. A node opened with Options.Gossip joins a cluster
// through package gossip and implements gossip.Handler; it plugs into the
// commit loop through the hooks in hooks.go. Files: repl.go (lifecycle,
// Join/Leave/Members, the commit hook), repl_handler.go (the Handler:
// delivery, digests), sync.go (sync status, WaitSynced), sync_serve.go
// (answering anti-entropy requests), repl_ranges.go (catch-up of the key
// ranges that differ), repl_metrics.go.
//
// How an operation travels:
//
//  1. A local write commits (WAL append, apply, publish); the commit hook
//     hands its record bytes to gossip.Broadcast, which pushes them to every
//     peer with an open stream, batched over gossip's FlushInterval (2 ms on
//     loopback, 5 ms on a LAN). The origin pushes to everyone (full mesh);
//     receivers do not forward.
//  2. A peer's Deliver decodes the records and commits them as one group
//     (on its own goroutine when the node is otherwise idle, else through
//     the commit loop beside other writes): records whose dots were all
//     applied already are dropped (duplicates), the rest are appended to its
//     WAL as the same bytes, applied and published, in one fsync per group.
//     The peer then acknowledges with its digest.
//  3. The digest is the set of operations a node has applied
//     (Keyspace.Applied). From acknowledgements a node knows, per peer, how
//     many of its writes the peer holds (SyncStatus, WaitSynced). A digest
//     showing operations we keep lacking makes us pull from that peer.
//  4. Anti-entropy: whenever a stream comes up (join, restart, healed
//     partition), on hints, and every AntiEntropyInterval, a node pulls: it
//     sends its digest, and the peer answers with exactly the WAL records of
//     the operations it lacks, found through the dot index. If some of them
//     are no longer in the WAL (truncated after a snapshot) the peer sends
//     state instead, in key ranges (OpStateRange records, joined with
//     Keyspace.JoinRange) followed by its context and applied set
//     (OpContext), then the records of whatever it applied meanwhile: the
//     whole state to a node that holds nothing (a new node bootstraps this
//     way; memberlist's push/pull carries nothing), else only the ranges
//     whose sums differ, found with one more round trip (repl_ranges.go).
//
//  5. A state transfer is atomic to observers (transfer.go): while one
//     runs, remote deltas that touch the key ranges it has joined are held
//     back and committed right after its closing record, under the
//     sender's context, so a value the sender saw removed never comes back.
//     A second peer's transfer waits for the next round.
//  6. Periodic state comparison (repl_ranges.go): the applied sets cannot
//     show every divergence (two states with the same operations applied
//     but different values, whatever made them), and under continuous
//     writes they are rarely equal at the instant of a pull. So every
//     Options.StateCheckInterval (default 10 × AntiEntropyInterval) a node
//     pulls from each peer with Check set: the peer takes its summary (key
//     ranges, their sums, context and applied set at one instant), sends
//     the records of the operations it covers that the puller lacks, then
//     the summary. The puller, now holding every operation the summary
//     covers, compares range by range: a range that differs and that no
//     operation it applied since the summary touched has diverged and is
//     asked for (a range join, which repairs both a value that should be
//     gone and one that is missing); a range such an operation touched is
//     asked for only if it differs again at the next comparison.
//
// Time bound: a divergence the applied sets cannot show is repaired on a
// node within 2 × StateCheckInterval + 3 × AntiEntropyInterval, plus the
// time to send the ranges that differ (23 s with DefaultLocalConfig, 115 s
// with DefaultLANConfig), at any write rate: a comparison with a peer is
// due at most StateCheckInterval after the last (between three quarters of
// it and all of it, at random, so that the comparisons with many peers do
// not all run at once) and starts at the node's next pull (pulls
// run at least every AntiEntropyInterval, jittered up to +25%), and finds
// the range at the first comparison or, next to keys written all the
// time, at the second. Each side repairs itself by its own comparisons,
// so both are repaired within the bound. A comparison that meets another
// peer's state transfer to the node in progress is lost and the bound
// restarts.
//
// Catch-up traffic is therefore proportional to what a peer missed; after
// truncation, to the ranges that hold it plus a summary of about 16 bytes
// and one key per range (up to 1024 ranges). A comparison costs one such
// summary per peer and period, plus the ranges found diverged, and a pass
// over the keys under the state lock on both sides.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/gossip"
)

// ErrOffline is returned by Join, Leave and WaitSynced on a node opened
// without Options.Gossip: it replicates with nobody.
var ErrOffline = errors.New("node: offline (no gossip configured)")

// replicator ties a node to its gossip instance.
type replicator struct {
	n *Node

	keysMu sync.Mutex
	keys   [][]byte                      // the gossip keys in use (SetKeys), primary first
	g      atomic.Pointer[gossip.Gossip] // set right after gossip.New; handler calls may come before
	log    *slog.Logger
	m      *replMetrics

	// repairDelay is how long a peer must have held operations we lack
	// (seen in its digests) before we pull from it outside the periodic
	// rounds. Shorter would pull deltas that are merely in flight.
	repairDelay time.Duration
	// checkEvery is the period of the state comparison with each peer
	// (Options.StateCheckInterval; 0: never).
	checkEvery time.Duration

	// digest caches our encoded digest for the state version it was made at
	// (n.applied): every stream acknowledges with it, often at once.
	digest atomic.Pointer[cachedDigest]

	mu     sync.Mutex
	peers  map[string]*peerState // by gossip name
	notify chan struct{}         // closed and replaced whenever peers change
}

type cachedDigest struct {
	version uint64
	b       []byte
}

// peerState is what we know of a peer's data, from its digests.
type peerState struct {
	replica  crdt.ReplicaID
	applied  *crdt.Context // the operations it had applied, as of updated
	updated  time.Time
	behind   *crdt.Context // its applied set when we first saw we lacked some of it
	behindAt time.Time
	checked  time.Time     // when we last compared its applied set with ours
	want     *rangeRequest // the key ranges to ask it for in our next pull (repl_ranges.go)

	// The periodic state comparison (repl_ranges.go).
	nextCheck time.Time  // when to ask it for a summary to compare next
	suspect   []keyRange // ranges that differed at the last comparison, maybe only by operations in flight
}

// peerLocked returns the state of the named peer, created if new; r.mu is
// held. Its first state comparison is due within a period after we first
// hear of it (a new stream's pull already carries a digest).
func (r *replicator) peerLocked(name string, now time.Time) *peerState {
	p := r.peers[name]
	if p == nil {
		p = &peerState{applied: &crdt.Context{}, nextCheck: r.firstCheckAfter(now)}
		r.peers[name] = p
	}
	return p
}

// startReplication starts gossip when Options.Gossip is set. Called by
// Open once the commit loop runs.
func (n *Node) startReplication() error {
	if n.opts.Gossip == nil {
		return nil
	}
	cfg := *n.opts.Gossip
	if cfg.Logger == nil {
		cfg.Logger = n.log.With("component", "gossip")
	}
	if cfg.Registerer == nil {
		cfg.Registerer = n.opts.Registerer
	}
	if cfg.Name == "" {
		cfg.Name = n.replica.String()
	}
	r := &replicator{
		n:           n,
		log:         n.log,
		m:           newReplMetrics(n),
		repairDelay: max(cfg.AntiEntropyInterval/4, 50*time.Millisecond),
		peers:       make(map[string]*peerState),
		notify:      make(chan struct{}),
		keys:        slices.Clone(cfg.SecretKeys),
	}
	if cfg.AntiEntropyInterval <= 0 {
		r.repairDelay = gossip.DefaultLANConfig().AntiEntropyInterval / 4
	}
	switch r.checkEvery = n.opts.StateCheckInterval; {
	case r.checkEvery < 0:
		r.checkEvery = 0
	case r.checkEvery == 0 && cfg.AntiEntropyInterval > 0:
		r.checkEvery = 10 * cfg.AntiEntropyInterval
	case r.checkEvery == 0:
		r.checkEvery = 10 * gossip.DefaultLANConfig().AntiEntropyInterval
	}
	if err := r.m.register(n.opts.Registerer); err != nil {
		return err
	}
	// Hook first: every write committed from now on is pushed; anything
	// earlier reaches peers through the pull made when a stream comes up.
	n.setCommitHook(r.onCommit)
	g, err := gossip.New(&cfg, r)
	if err != nil {
		n.setCommitHook(nil)
		r.m.unregister()
		return fmt.Errorf("node: start replication: %w", err)
	}
	r.g.Store(g)
	n.repl.Store(r)
	return nil
}

// stopReplication closes gossip (waiting for deliveries in progress, which
// go through the commit loop: call it before stopping the loop).
func (n *Node) stopReplication() error {
	r := n.repl.Load()
	if r == nil {
		return nil
	}
	err := r.gossip().Close()
	n.setCommitHook(nil)
	r.m.unregister()
	return err
}

func (r *replicator) gossip() *gossip.Gossip { return r.g.Load() }

// replication returns the replicator, or ErrOffline / ErrClosed.
func (n *Node) replication() (*replicator, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	r := n.repl.Load()
	if r == nil {
		return nil, ErrOffline
	}
	return r, nil
}

// Join contacts the given gossip addresses (host:port) and merges their
// cluster with ours. They are remembered: while none of them is a live
// member, the node keeps trying in the background, so an app can Join at
// start and sync whenever peers appear. An error means none answered now.
func (n *Node) Join(ctx context.Context, addrs ...string) error {
	r, err := n.replication()
	if err != nil {
		return err
	}
	if _, err := r.gossip().Join(ctx, addrs...); err != nil {
		return fmt.Errorf("node: join: %w", err)
	}
	return nil
}

// Leave tells the cluster this node is leaving for good (peers forget it
// instead of waiting for it) and stops replicating. Close the node after.
func (n *Node) Leave(ctx context.Context) error {
	r, err := n.replication()
	if err != nil {
		return err
	}
	if err := r.gossip().Leave(ctx); err != nil {
		return fmt.Errorf("node: leave: %w", err)
	}
	return nil
}

// SetKeys replaces the encryption keys of gossip and replication: every
// key of keys is accepted from now on, keys[0] is used to encrypt, and the
// keys of the previous set that are not in keys are removed (data streams
// opened with them reconnect with the new primary). Rotate a cluster's key
// in three rounds, each on every node before the next: [old, new] (new
// accepted), [new, old] (new used), [new] (old gone). It needs a node opened with gossip keys
// (ErrOffline without gossip; an error wrapping gossip.ErrNoKeyring without
// keys).
func (n *Node) SetKeys(keys [][]byte) error {
	r, err := n.replication()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: set keys: no key", ErrInvalidValue)
	}
	r.keysMu.Lock()
	defer r.keysMu.Unlock()
	g := r.gossip()
	for _, k := range keys {
		if err := g.InstallKey(k); err != nil {
			return fmt.Errorf("node: set keys: %w", err)
		}
	}
	if err := g.UseKey(keys[0]); err != nil {
		return fmt.Errorf("node: set keys: %w", err)
	}
	for _, old := range r.keys {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := g.RemoveKey(old); err != nil {
				return fmt.Errorf("node: set keys: %w", err)
			}
		}
	}
	r.keys = slices.Clone(keys)
	return nil
}

// Member is a cluster member as this node sees it.
type Member struct {
	Name      string // gossip node name
	Addr      string // gossip address (host:port)
	State     string // "alive", "dead" (failed) or "left"
	Self      bool   // this node
	Connected bool   // our data stream to it is up
	// Replica is the member's replica ID, once a digest from it arrived.
	Replica string
	// Acked is how many of this node's writes (by sequence number) the
	// member is known to hold; see SyncStatus.
	Acked uint64
}

// Members lists the cluster members, this node first. An offline node
// lists only itself.
func (n *Node) Members() []Member {
	self := Member{Name: n.replica.String(), State: "alive", Self: true, Replica: n.replica.String()}
	r := n.repl.Load()
	if r == nil || n.closed.Load() {
		return []Member{self}
	}
	ms := r.gossip().Members()
	out := make([]Member, 0, len(ms))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		mm := Member{Name: m.Name, Addr: m.Addr, State: m.State.String(), Self: m.Self, Connected: m.Connected}
		if m.Self {
			mm.Replica = n.replica.String()
		} else if p := r.peers[m.Name]; p != nil {
			mm.Replica = p.replica.String()
			mm.Acked = p.applied.VV[n.replica]
		}
		out = append(out, mm)
	}
	return out
}

// onCommit is the commit hook: it pushes this replica's new operations to
// every peer. Remote operations are not forwarded: their origin pushes
// them to everyone itself, and anti-entropy covers what it could not reach.
// It never blocks (gossip queues, or drops and later repairs).
func (r *replicator) onCommit(cs []committed) {
	g := r.gossip()
	if g == nil {
		return
	}
	var ps [][]byte
	for _, c := range cs {
		if c.From == "" && c.Op.Kind == OpDelta {
			ps = append(ps, c.Record)
		}
	}
	if len(ps) == 0 {
		return
	}
	r.m.sent.Add(float64(len(ps)))
	err := g.Broadcast("", ps...)
	if errors.Is(err, gossip.ErrTooLarge) {
		// Push what fits; the rest cannot travel by gossip at all.
		for _, p := range ps {
			if err := g.Broadcast("", p); err != nil {
				r.log.Error("replication: record too large to push", "bytes", len(p), "err", err)
			}
		}
	}
}

// signalLocked wakes WaitSynced callers; r.mu is held.
func (r *replicator) signalLocked() {
	close(r.notify)
	r.notify = make(chan struct{})
}
