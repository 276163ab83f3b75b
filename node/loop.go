package node

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// maxGroupBytes bounds the record bytes of one group commit (one
// wal.Append); requests beyond it wait for the next group.
const maxGroupBytes = 32 << 20

// maxRecordBytes is the largest record the WAL accepts.
const maxRecordBytes = wal.DefaultMaxRecordBytes

// committed describes one record of a group, for the replication hook.
type committed struct {
	Offset uint64 // WAL offset
	Record []byte // the record bytes; shared, read-only
	Op     *Op    // the decoded record; shared, read-only
	From   string // the peer it came from; "" for a local write
}

// groupEntry is one record of a group.
type groupEntry struct {
	r   *request
	op  *Op
	rec []byte
}

// group is one WAL append's worth of work: built by the loop, made durable
// and applied by the committer.
type group struct {
	reqs     []*request // every request to answer, failed ones included
	entries  []groupEntry
	bytes    int
	lastSeq  uint64         // the loop's last issued seq after this group
	clock    crdt.Timestamp // the loop's clock after this group
	remote   bool           // holds records from peers
	snapshot *request       // a Snapshot request (the group holds nothing else)
}

// maxTxOps bounds the operations a rolling transaction accumulates before
// the loop waits for the committer and starts a fresh one.
const maxTxOps = 4096

// The write path is a two-stage pipeline, like etcd's raft loop:
//
//   - the loop (run) takes every queued request (up to MaxBatchOps),
//     builds their deltas in a crdt transaction, encodes their records and
//     hands the group to the committer; then it builds the next group
//     while the committer waits for the disk;
//   - the committer (commitLoop) appends a group with one wal.Append (one
//     write, one fsync), applies it to the state, publishes the events,
//     calls the replication hook and answers the callers.
//
// Reads never see a write before it is durable: only the committer changes
// the state, after the append. The loop's transaction therefore reads a
// state that lags its own earlier operations, and sees them through the
// transaction's pending delta instead. It lives across groups ("rolling")
// while the committer only applies groups of this transaction's own
// operations, which leaves state ⊔ pending exactly what the loop must
// read. Whenever a group with records from peers may have been applied
// (they can remove values the pending delta still holds), or the
// transaction grew long, the loop waits for the committer to catch up and
// begins a fresh transaction on the up-to-date state.

// run is the loop: the first stage of the pipeline.
func (n *Node) run() {
	go n.commitLoop()
	defer close(n.groups)
	batch := make([]*request, 0, n.opts.MaxBatchOps)
	for {
		select {
		case r := <-n.reqs:
			batch = append(batch[:0], r)
		case <-n.closing:
			// Commit what was queued before Close, then stop.
			for {
				batch = n.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				n.buildAll(batch)
			}
		}
		batch = n.fill(batch)
		n.buildAll(batch)
		clear(batch)
	}
}

// fill appends queued requests to batch without waiting.
func (n *Node) fill(batch []*request) []*request {
	for len(batch) < cap(batch) {
		select {
		case r := <-n.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// buildAll turns batch into groups and hands them to the committer.
func (n *Node) buildAll(batch []*request) {
	for len(batch) > 0 {
		g, used := n.buildGroup(batch)
		batch = batch[used:]
		if g.remote {
			n.txStale = true
		}
		n.sent++
		n.groups <- g
	}
}

// waitCommitted waits until the committer has finished every group sent.
func (n *Node) waitCommitted() {
	for n.committed.Load() != n.sent {
		<-n.groupDone
	}
}

// transaction returns the rolling transaction, beginning a fresh one on
// the current state when the old one may read stale values or is long.
func (n *Node) transaction() *crdt.Tx {
	if n.tx != nil && (n.txStale || n.txOps >= maxTxOps || n.committed.Load() == n.sent) {
		n.waitCommitted()
		n.txSeq = max(n.txSeq, n.tx.LastSeq())
		n.tx, n.txStale = nil, false
	}
	if n.tx == nil {
		n.tx = n.ks.Begin(n.replica, max(n.txSeq, n.lastSeq.Load()))
		n.txOps = 0
	}
	return n.tx
}

// buildGroup builds a group from a prefix of reqs and returns its length.
func (n *Node) buildGroup(reqs []*request) (*group, int) {
	g := &group{}
	// g.reqs never aliases reqs: the loop reuses that array for the next
	// batch while the committer still answers this group.
	if n.readOnly.Load() != nil { // the committer answers with the cause
		g.reqs = slices.Clone(reqs)
		return g, len(reqs)
	}
	if reqs[0].kind == reqSnapshot {
		g.snapshot = reqs[0]
		g.reqs = []*request{reqs[0]}
		return g, 1
	}
	tx := n.transaction()
	now := n.opts.Now().UnixMilli()
	var remoteDots []crdt.DotRange // dots of the remote deltas in this group
	for _, r := range reqs {
		if g.bytes >= maxGroupBytes || r.kind == reqSnapshot {
			break
		}
		g.reqs = append(g.reqs, r)
		if r.kind == reqRemote {
			if r.op.Kind == OpDelta {
				n.mu.RLock()
				dup := n.ks.Covers(r.op.Delta)
				n.mu.RUnlock()
				if dup || rangesCover(remoteDots, r.op.Delta.Dots()) {
					n.m.remoteDup.Inc()
					continue
				}
				remoteDots = append(remoteDots, r.op.Delta.Dots()...)
			}
			next, ahead := crdt.WitnessTimestamp(n.clock, r.op.Time, now, n.opts.MaxClockDrift.Milliseconds())
			n.clock = next
			if ahead {
				n.m.clockAhead.Inc()
			}
			g.entries = append(g.entries, groupEntry{r: r, op: r.op, rec: r.raw})
			g.bytes += len(r.raw)
			g.remote = true
			continue
		}
		n.clock = crdt.NextTimestamp(n.clock, now)
		cp := tx.Checkpoint()
		n.mu.RLock() // the transaction reads the state the committer writes
		d, err := n.build(tx, r, n.clock)
		n.mu.RUnlock()
		var rec []byte
		op := &Op{V: OpVersion, Kind: OpDelta, Origin: n.replica, Time: n.clock, Delta: d}
		if err == nil {
			rec, err = EncodeOp(op)
		}
		if err == nil && len(rec) > maxRecordBytes {
			err = fmt.Errorf("%w: %s %q: record of %d bytes (max %d)", ErrTooLarge, r.kind, r.key, len(rec), maxRecordBytes)
		}
		if err != nil {
			n.mu.RLock()
			tx.Rollback(cp)
			n.mu.RUnlock()
			r.err = err
			n.m.opErrors.WithLabelValues(errorReason(err)).Inc()
			continue
		}
		g.entries = append(g.entries, groupEntry{r: r, op: op, rec: rec})
		g.bytes += len(rec)
		n.txOps++
	}
	g.lastSeq, g.clock = tx.LastSeq(), n.clock
	return g, len(g.reqs)
}

// commitLoop is the committer: the second stage of the pipeline. It exits
// when the loop has closed n.groups and everything is answered.
func (n *Node) commitLoop() {
	defer close(n.loopDone)
	for g := range n.groups {
		n.commitGroup(g)
		n.committed.Add(1)
		select {
		case n.groupDone <- struct{}{}:
		default:
		}
		n.maybeSnapshot()
	}
}

// commitGroup makes a group durable, applies it and answers its callers.
func (n *Node) commitGroup(g *group) {
	switch {
	case g.snapshot != nil:
		n.snapshotRequest(g.snapshot) // every earlier group is applied
	case n.readOnly.Load() != nil:
		cause := n.readOnly.Load().err
		for _, r := range g.reqs {
			if r.err == nil {
				r.err = readOnlyError(cause)
			}
		}
		n.m.readOnlyErrors.Add(float64(len(g.reqs)))
	case len(g.entries) > 0:
		n.append(g)
	}
	for _, r := range g.reqs {
		r.done <- struct{}{}
	}
}

// append makes the group durable and applies it.
func (n *Node) append(g *group) {
	recs := n.recs[:0]
	for _, e := range g.entries {
		recs = append(recs, e.rec)
	}
	start := time.Now()
	first, err := n.wal.Append(recs...)
	clear(recs)
	n.recs = recs[:0]
	n.m.appendSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		n.setReadOnly(err)
		for _, e := range g.entries {
			e.r.err = readOnlyError(err)
		}
		n.m.readOnlyErrors.Add(float64(len(g.entries)))
		return
	}
	n.m.batchOps.Observe(float64(len(g.entries)))
	n.m.walRecords.Add(float64(len(g.entries)))
	n.m.walBytes.Add(float64(g.bytes))

	var evs []Event
	publish := n.hub.active()
	n.mu.Lock()
	for i, e := range g.entries {
		off := first + uint64(i)
		e.r.offset = off
		changes := n.applyOp(e.op)
		// replication (issue 5): index under the lock, so that anything
		// Applied() shows is already in the index anti-entropy reads.
		n.indexOp(e.op, off)
		if e.r.kind == reqIncr {
			if v, ok := n.ks.Get(e.r.key); ok {
				e.r.n = v.Counter
			}
		}
		if publish {
			evs = n.appendEvents(evs, changes, e.op.Origin, off)
		}
	}
	n.applied = first + uint64(len(g.entries))
	n.keys.Store(int64(n.ks.Len()))
	n.mu.Unlock()

	n.noteSeq(g.lastSeq)
	n.durableClock = g.clock
	for _, e := range g.entries {
		if e.r.kind == reqRemote {
			n.m.remoteApplied.Inc()
		} else {
			n.m.opsBy[e.r.kind].Inc()
		}
	}
	n.m.keys.Set(float64(n.keys.Load()))
	n.sinceOps += len(g.entries)
	n.sinceSize += int64(g.bytes)
	n.hub.publish(evs)
	if hook := n.commitHook.Load(); hook != nil {
		cs := make([]committed, len(g.entries))
		for i, e := range g.entries {
			cs[i] = committed{Offset: first + uint64(i), Record: e.rec, Op: e.op, From: e.r.from}
		}
		(*hook)(cs)
	}
}

// noteSeq raises lastSeq to at least s.
func (n *Node) noteSeq(s uint64) {
	for {
		cur := n.lastSeq.Load()
		if s <= cur || n.lastSeq.CompareAndSwap(cur, s) {
			return
		}
	}
}

// applyOp joins one record into the state (the committer under n.mu, or
// Open before the pipeline starts) and keeps lastSeq above every dot of
// this replica its context carries.
func (n *Node) applyOp(op *Op) []crdt.Change {
	var changes []crdt.Change
	switch op.Kind {
	case OpDelta:
		changes = n.ks.Apply(op.Delta)
	case OpStateRange:
		changes = n.ks.JoinRange(op.Lo, op.Hi, op.Delta, op.Ctx)
	case OpContext:
		n.ks.MergeContext(op.Ctx)
		if op.Applied != nil {
			n.ks.MergeApplied(op.Applied)
		}
	}
	if op.Ctx != nil {
		n.noteSeq(maxSeq(op.Ctx, n.replica))
	}
	return changes
}

// indexOp records where a delta's dots live in the WAL (for replication)
// and keeps lastSeq above every dot of this replica the state holds (a
// peer may hand back our own dots, e.g. after a restore).
func (n *Node) indexOp(op *Op, off uint64) {
	if op.Kind != OpDelta {
		return
	}
	for _, dr := range op.Delta.Dots() {
		n.index.add(dr.Replica, dr.First, dr.Last, off)
		if dr.Replica == n.replica {
			n.noteSeq(dr.Last)
		}
	}
}

// maxSeq returns the highest seq of replica r that c has seen.
func maxSeq(c *crdt.Context, r crdt.ReplicaID) uint64 {
	s := c.VV[r]
	for _, d := range c.Cloud {
		if d.Replica == r && d.Seq > s {
			s = d.Seq
		}
	}
	return s
}

// rangesCover reports whether every range of want lies within one of have.
func rangesCover(have, want []crdt.DotRange) bool {
	if len(want) == 0 || len(have) == 0 {
		return false
	}
next:
	for _, w := range want {
		for _, h := range have {
			if h.Replica == w.Replica && h.First <= w.First && w.Last <= h.Last {
				continue next
			}
		}
		return false
	}
	return true
}

// appendEvents turns the changes of the record at off into events for the
// keys someone subscribed to. Called under n.mu, after the record applied,
// so each event carries the value right after its record.
func (n *Node) appendEvents(evs []Event, changes []crdt.Change, origin crdt.ReplicaID, off uint64) []Event {
	for _, c := range changes {
		if !n.hub.interested(c.Key) {
			continue
		}
		ev := Event{Key: c.Key, Origin: origin.String(), Offset: off, Deleted: true}
		if !c.Deleted {
			if v, ok := n.ks.Get(c.Key); ok {
				data, err := convertView(&v)
				if err != nil {
					n.log.Warn("event for undecodable value", "key", c.Key, "err", err)
					continue
				}
				ev.Deleted, ev.Type, ev.Data = false, typeOf(v.Type), data
			}
		}
		evs = append(evs, ev)
	}
	return evs
}

// build computes the delta of one local request inside tx.
func (n *Node) build(tx *crdt.Tx, r *request, ts crdt.Timestamp) (*crdt.Delta, error) {
	if r.kind != reqBatch {
		d, err := buildOne(tx, r, ts)
		if err != nil {
			return nil, mapError(r.kind.String(), r.key, err)
		}
		return d, nil
	}
	ds := make([]*crdt.Delta, 0, len(r.batch))
	for i, op := range r.batch {
		d, err := buildOne(tx, op, ts)
		if err != nil {
			return nil, fmt.Errorf("node: batch operation %d: %w", i, mapError(op.kind.String(), op.key, err))
		}
		ds = append(ds, d)
	}
	return crdt.JoinDeltas(ds...), nil
}

func buildOne(tx *crdt.Tx, r *request, ts crdt.Timestamp) (*crdt.Delta, error) {
	switch r.kind {
	case reqPut:
		return tx.Put(r.key, r.value, ts)
	case reqDelete:
		return tx.Delete(r.key)
	case reqIncr:
		return tx.Incr(r.key, r.by)
	case reqSetAdd:
		return tx.SetAdd(r.key, r.members...)
	case reqSetRemove:
		return tx.SetRemove(r.key, r.members...)
	case reqUpdate:
		return tx.Update(r.key, r.patch, ts)
	}
	return nil, fmt.Errorf("node: unknown request kind %d", r.kind)
}

// errorReason labels a refused operation for the op_errors metric.
func errorReason(err error) string {
	switch {
	case errors.Is(err, ErrWrongType):
		return "wrong_type"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrOverflow):
		return "overflow"
	case errors.Is(err, ErrInvalidValue):
		return "invalid"
	}
	return "other"
}
