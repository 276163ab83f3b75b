package node

import (
	"errors"
	"fmt"
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

// groupEntry is one record of the group being committed.
type groupEntry struct {
	r   *request
	op  *Op
	rec []byte
}

// run is the commit loop, the only writer of the state. Each round takes
// every queued request (up to MaxBatchOps), builds their deltas in one
// crdt transaction, appends their records with one wal.Append (one write,
// one fsync), applies them, publishes the events and answers the callers.
// Reads never see a write before it is durable.
func (n *Node) run() {
	defer close(n.loopDone)
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
				n.commitAll(batch)
			}
		}
		batch = n.fill(batch)
		n.commitAll(batch)
		clear(batch)
		n.maybeSnapshot()
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

func (n *Node) commitAll(batch []*request) {
	for len(batch) > 0 {
		batch = batch[n.commit(batch):]
	}
}

// commit commits a prefix of reqs as one group and returns its length.
func (n *Node) commit(reqs []*request) int {
	if ro := n.readOnly.Load(); ro != nil {
		for _, r := range reqs {
			r.err = readOnlyError(ro.err)
			r.done <- struct{}{}
		}
		n.m.readOnlyErrors.Add(float64(len(reqs)))
		return len(reqs)
	}
	now := n.opts.Now().UnixMilli()
	tx := n.ks.Begin(n.replica, n.lastSeq)
	var entries []groupEntry
	var remoteDots []crdt.DotRange // dots of the remote deltas in this group
	bytes, used := 0, 0
	for _, r := range reqs {
		if bytes >= maxGroupBytes {
			break
		}
		if r.kind == reqSnapshot {
			if used == 0 {
				// Everything before it is applied: the snapshot includes it.
				n.snapshotRequest(r)
				r.done <- struct{}{}
				return 1
			}
			break
		}
		used++
		if r.kind == reqRemote {
			if r.op.Kind == OpDelta {
				if n.ks.Covers(r.op.Delta) || rangesCover(remoteDots, r.op.Delta.Dots()) {
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
			entries = append(entries, groupEntry{r: r, op: r.op, rec: r.raw})
			bytes += len(r.raw)
			continue
		}
		n.clock = crdt.NextTimestamp(n.clock, now)
		cp := tx.Checkpoint()
		d, err := n.build(tx, r, n.clock)
		var rec []byte
		op := &Op{V: OpVersion, Kind: OpDelta, Origin: n.replica, Time: n.clock, Delta: d}
		if err == nil {
			rec, err = EncodeOp(op)
		}
		if err == nil && len(rec) > maxRecordBytes {
			err = fmt.Errorf("%w: %s %q: record of %d bytes (max %d)", ErrTooLarge, r.kind, r.key, len(rec), maxRecordBytes)
		}
		if err != nil {
			tx.Rollback(cp)
			r.err = err
			n.m.opErrors.WithLabelValues(errorReason(err)).Inc()
			continue
		}
		entries = append(entries, groupEntry{r: r, op: op, rec: rec})
		bytes += len(rec)
	}
	if len(entries) > 0 {
		n.append(entries, tx, bytes)
	}
	for _, r := range reqs[:used] {
		r.done <- struct{}{}
	}
	return used
}

// append makes the group durable and applies it.
func (n *Node) append(entries []groupEntry, tx *crdt.Tx, bytes int) {
	recs := n.recs[:0]
	for _, e := range entries {
		recs = append(recs, e.rec)
	}
	start := time.Now()
	first, err := n.wal.Append(recs...)
	clear(recs)
	n.recs = recs[:0]
	n.m.appendSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		n.setReadOnly(err)
		for _, e := range entries {
			e.r.err = readOnlyError(err)
		}
		n.m.readOnlyErrors.Add(float64(len(entries)))
		return
	}
	n.m.batchOps.Observe(float64(len(entries)))
	n.m.walRecords.Add(float64(len(entries)))
	n.m.walBytes.Add(float64(bytes))

	var evs []Event
	publish := n.hub.active()
	n.mu.Lock()
	for i, e := range entries {
		off := first + uint64(i)
		e.r.offset = off
		changes := n.applyOp(e.op)
		if e.r.kind == reqIncr {
			if v, ok := n.ks.Get(e.r.key); ok {
				e.r.n = v.Counter
			}
		}
		if publish {
			evs = n.appendEvents(evs, changes, e.op.Origin, off)
		}
	}
	n.applied = first + uint64(len(entries))
	n.keys.Store(int64(n.ks.Len()))
	n.mu.Unlock()

	n.lastSeq = max(n.lastSeq, tx.LastSeq())
	for i, e := range entries {
		n.indexOp(e.op, first+uint64(i))
		if e.r.kind == reqRemote {
			n.m.remoteApplied.Inc()
		} else {
			n.m.opsBy[e.r.kind].Inc()
		}
	}
	n.m.keys.Set(float64(n.keys.Load()))
	n.sinceOps += len(entries)
	n.sinceSize += int64(bytes)
	n.hub.publish(evs)
	if hook := n.commitHook.Load(); hook != nil {
		cs := make([]committed, len(entries))
		for i, e := range entries {
			cs[i] = committed{Offset: first + uint64(i), Record: e.rec, Op: e.op, From: e.r.from}
		}
		(*hook)(cs)
	}
}

// applyOp joins one record into the state (under n.mu, or before the loop
// starts) and keeps lastSeq above every dot of this replica it carries.
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
		n.lastSeq = max(n.lastSeq, maxSeq(op.Ctx, n.replica))
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
			n.lastSeq = max(n.lastSeq, dr.Last)
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
