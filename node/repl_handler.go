package node

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/gossip"
)

// The gossip.Handler side of the replicator.

// digestVersion is the version of the anti-entropy digest.
const digestVersion = 1

// syncDigest is what a node tells its peers about its data: its replica ID
// and the operations it has applied (Keyspace.Applied: a version vector
// plus the dots beyond its gaps). A peer that compares it with its own
// applied set knows exactly which operations to send.
type syncDigest struct {
	V       uint8          `msgpack:"v"`
	Replica crdt.ReplicaID `msgpack:"r"`
	Applied *crdt.Context  `msgpack:"a"`
	// Caps says what the sender understands (capRangeSums); zero for
	// peers older than it.
	Caps uint8 `msgpack:"c,omitempty"`
	// Ranges, set only in a pull that answers a summary (repl_ranges.go),
	// names the key ranges to send as pairs lo, hi; RangeCtx and
	// RangeApplied echo the summary's context and applied set for the
	// transfer's last record. Empty: the whole state, as before.
	Ranges       []string      `msgpack:"g,omitempty"`
	RangeCtx     *crdt.Context `msgpack:"gx,omitempty"`
	RangeApplied *crdt.Context `msgpack:"ga,omitempty"`
	// RangeRepair says the ranges repair a divergence a state comparison
	// found (repl_ranges.go): each is sent with RangeCtx, and the transfer
	// ends with an empty context and applied set (the puller holds every
	// operation the summary covers already). Older peers end it with
	// RangeCtx and RangeApplied, as for a catch-up.
	RangeRepair bool `msgpack:"gr,omitempty"`
	// State is the sender's state digest (Keyspace.Digest) taken with
	// Applied: a peer with the same applied set and another digest has
	// diverged in a way the applied sets cannot show (repl_ranges.go).
	State []byte `msgpack:"h,omitempty"`
	// Check, in a pull, asks for a summary (range sums) after the
	// records the sender lacks, whatever the applied sets say: the
	// periodic state comparison (repl_ranges.go). Ignored by older peers.
	Check bool `msgpack:"ck,omitempty"`
}

// maxDigestDepth bounds msgpack nesting in a digest.
const maxDigestDepth = 8

func encodeDigest(d *syncDigest) ([]byte, error) {
	return msgpack.Marshal(d)
}

// decodeDigest parses a digest from a peer; it never panics and bounds its
// allocations by len(b).
func decodeDigest(b []byte) (*syncDigest, error) {
	if err := checkMsgpack(b, maxDigestDepth); err != nil {
		return nil, fmt.Errorf("decode digest: %w", err)
	}
	var d syncDigest
	if err := msgpack.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: decode digest: %w", ErrCorrupt, err)
	}
	if d.V != digestVersion {
		return nil, fmt.Errorf("%w: digest version %d", ErrCorrupt, d.V)
	}
	if d.Applied == nil {
		d.Applied = &crdt.Context{}
	}
	d.Applied.Normalize()
	if len(d.State) != 0 && len(d.State) != 32 {
		return nil, fmt.Errorf("%w: digest: state digest of %d bytes", ErrCorrupt, len(d.State))
	}
	if len(d.Ranges) > 0 {
		if d.RangeCtx == nil || d.RangeApplied == nil {
			return nil, fmt.Errorf("%w: digest: ranges without context", ErrCorrupt)
		}
		if _, err := checkRanges(d.Ranges); err != nil {
			return nil, fmt.Errorf("%w: digest: %w", ErrCorrupt, err)
		}
		d.RangeCtx.Normalize()
		d.RangeApplied.Normalize()
	}
	return &d, nil
}

// Deliver makes records from a peer durable and applies them, through the
// commit loop, in one group (one WAL append and fsync per batch, not per
// record). Duplicates are dropped by the loop. Deltas held back by a state
// transfer in progress (transfer.go) are the one exception to gossip's
// rule that the digest reflects every Deliver that returned: they show in
// it once committed, after the transfer.
func (r *replicator) Deliver(from gossip.Peer, src gossip.Source, payloads [][]byte) error {
	n := r.n
	now := n.opts.Now().UnixMilli()
	raws := payloads[:0:0]
	ops := make([]*Op, 0, len(payloads))
	for _, p := range payloads {
		op, err := DecodeOp(p)
		if err == nil && op.Kind == OpSummary {
			if src == gossip.SourceSync {
				// The records sent before it apply first: the summary is
				// compared with a state that holds them.
				if len(ops) > 0 {
					if err := n.applyRemoteBatch(raws, ops, from.Name); err != nil {
						return err
					}
					raws, ops = raws[:0:0], ops[:0:0]
				}
				if err := r.onSummary(from, op); err != nil {
					return err
				}
				continue
			}
			err = fmt.Errorf("%w: a summary pushed, not sent in answer to a pull", ErrCorrupt)
		}
		if err != nil {
			n.m.remote.WithLabelValues("invalid").Inc()
			r.log.Warn("replication: invalid record from peer", "peer", from.Name, "err", err)
			continue
		}
		switch {
		case src == gossip.SourcePush && op.Kind == OpDelta && op.Origin == n.replica:
			r.m.pushedOwn.Inc()
		case src == gossip.SourcePush && op.Kind == OpDelta:
			r.m.delay.Observe(float64(max(now-op.Time.Physical(), 0)) / 1000)
		case src == gossip.SourceSync && op.Kind == OpDelta:
			r.m.repairedOps.Inc()
		case src == gossip.SourceSync && op.Kind == OpStateRange:
			r.m.repairedKeys.Add(float64(len(op.Delta.Keys)))
		}
		raws = append(raws, p)
		ops = append(ops, op)
	}
	r.m.received.WithLabelValues(src.String()).Add(float64(len(payloads)))
	if len(ops) == 0 {
		return nil
	}
	return n.applyRemoteBatch(raws, ops, from.Name)
}

// applyRemoteBatch commits decoded remote records, all at once so that
// they share group commits, and waits for all of them: on the caller's
// goroutine when the pipeline is idle (commitRemoteInline), else through
// the commit loop. The records are owned by the node from here on.
func (n *Node) applyRemoteBatch(raws [][]byte, ops []*Op, from string) error {
	if n.closed.Load() {
		return ErrClosed
	}
	reqs := remoteRequests(raws, ops, from)
	if !n.commitRemoteInline(reqs) {
		return n.commitQueued(reqs)
	}
	var err error
	for _, rq := range reqs {
		if rq.err != nil && err == nil {
			err = rq.err
		}
		putRequest(rq)
	}
	return err
}

// commitQueued hands reqs to the commit loop, all at once, waits for all
// of them and recycles them.
func (n *Node) commitQueued(reqs []*request) error {
	var err error
	for i, rq := range reqs {
		if n.closed.Load() || !n.queue(rq) {
			for _, rq := range reqs[i:] {
				putRequest(rq)
			}
			reqs, err = reqs[:i], ErrClosed
			break
		}
	}
	for _, rq := range reqs {
		select {
		case <-rq.done:
		case <-n.loopDone:
			select {
			case <-rq.done:
			default:
				err = ErrClosed
				continue // the loop is gone: do not recycle
			}
		}
		if rq.err != nil && err == nil {
			err = rq.err
		}
		putRequest(rq)
	}
	return err
}

// remoteRequests wraps a peer's records in requests.
func remoteRequests(raws [][]byte, ops []*Op, from string) []*request {
	reqs := make([]*request, len(raws))
	for i, raw := range raws {
		rq := getRequest(reqRemote)
		rq.raw, rq.op, rq.from = raw, ops[i], from
		reqs[i] = rq
	}
	return reqs
}

// Digest returns our digest. Called often (it acknowledges delivered
// batches, on every stream): it is re-encoded only when the state moved.
func (r *replicator) Digest() []byte {
	n := r.n
	n.mu.RLock()
	version := n.applied
	if c := r.digest.Load(); c != nil && c.version == version {
		n.mu.RUnlock()
		return c.b
	}
	d := r.digestLocked()
	n.mu.RUnlock()
	b, err := encodeDigest(d)
	if err != nil {
		r.log.Error("replication: encode digest", "err", err)
		return nil
	}
	r.digest.Store(&cachedDigest{version: version, b: b})
	return b
}

// digestNow returns our digest as a struct, to add to.
func (r *replicator) digestNow() *syncDigest {
	r.n.mu.RLock()
	defer r.n.mu.RUnlock()
	return r.digestLocked()
}

// digestLocked returns our digest; n.mu is held.
func (r *replicator) digestLocked() *syncDigest {
	state := r.n.ks.Digest()
	return &syncDigest{V: digestVersion, Replica: r.n.replica, Applied: r.n.ks.Applied(), Caps: capRangeSums, State: state[:]}
}

// PeerDigest records what a peer holds (sync status), and pulls from it when
// it has held operations we lack for longer than repairDelay (a lost push,
// or a peer that got them from a third node we cannot reach).
func (r *replicator) PeerDigest(from gossip.Peer, b []byte) {
	d, err := decodeDigest(b)
	if err != nil {
		r.m.badDigests.Inc()
		r.log.Warn("replication: invalid digest from peer", "peer", from.Name, "err", err)
		return
	}
	now := time.Now()
	pull := false
	r.mu.Lock()
	p := r.peerLocked(from.Name, now)
	// A peer's applied set only grows while it keeps its replica ID, but
	// its digests come on two streams (acknowledgements on ours, its pull
	// requests on its own) in no common order: an older one arriving last
	// must not take back what a newer one showed.
	if p.applied != nil && p.replica == d.Replica && !d.Applied.Covers(p.applied) {
		merged := p.applied.Clone()
		merged.Merge(d.Applied)
		p.applied = merged
	} else {
		p.applied = d.Applied
	}
	p.replica, p.updated = d.Replica, now
	// Comparing with our applied set costs a copy of it: digests arrive
	// every few milliseconds per stream, so compare at most a few times per
	// repairDelay.
	due := p.behind == nil && now.Sub(p.checked) >= r.repairDelay/4 ||
		p.behind != nil && now.Sub(p.behindAt) >= r.repairDelay
	if due {
		p.checked = now
		r.mu.Unlock()
		mine := r.n.appliedSet()
		r.mu.Lock()
		if p.behind != nil && now.Sub(p.behindAt) >= r.repairDelay {
			pull = len(mine.Missing(p.behind)) > 0
			p.behind = nil
		}
		if p.behind == nil && !pull && len(mine.Missing(d.Applied)) > 0 {
			p.behind, p.behindAt = d.Applied, now
		}
	}
	r.signalLocked()
	r.mu.Unlock()
	if pull {
		r.m.lagPulls.Inc()
		if g := r.gossip(); g != nil {
			g.RequestSync(from.Name)
		}
	}
}

// Serve answers a peer's anti-entropy request (sync_serve.go).
func (r *replicator) Serve(ctx context.Context, to gossip.Peer, digest []byte, w *gossip.SyncWriter) error {
	d, err := decodeDigest(digest)
	if err != nil {
		r.m.badDigests.Inc()
		return err
	}
	return r.serve(ctx, to, d, w)
}

func (r *replicator) PeerJoined(p gossip.Peer) {
	r.log.Info("replication: peer joined", "peer", p.Name, "addr", p.Addr)
	r.mu.Lock()
	r.signalLocked()
	r.mu.Unlock()
}

func (r *replicator) PeerLeft(p gossip.Peer) {
	r.log.Info("replication: peer gone", "peer", p.Name, "addr", p.Addr)
	r.mu.Lock()
	r.signalLocked()
	r.mu.Unlock()
}
