package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/wal"
)

// Anti-entropy, serving side. A peer sends its applied set; we send it
// exactly the operations we applied that it has not, as the WAL records
// that carry them. When some of those records are gone (truncated after a
// snapshot, or never ours: operations that reached us by state transfer)
// we send state instead, in key ranges, then the records of what we
// applied while doing so: the whole state to a peer that holds nothing or
// does not understand summaries, else a summary first and then the ranges
// it asks for (repl_ranges.go).

// stateChunkKeys is how many keys one state-range record starts with (a
// variable for tests).
var stateChunkKeys = 2048

const (
	// stateRecordBytes is the size above which a range is split further.
	stateRecordBytes = 1 << 20
	// directReadMax: offset ranges up to this long are read record by
	// record (wal.Read); longer ones with a sequential Reader.
	directReadMax = 16
)

func (r *replicator) serve(ctx context.Context, to gossip.Peer, d *syncDigest, w *gossip.SyncWriter) error {
	n := r.n
	// A periodic state comparison (repl_ranges.go): the summary is taken
	// first, and the records sent before it are those of the operations
	// it covers that the peer lacks, so that the peer, once it applied
	// them, holds every operation the summary does.
	var check *Op
	if d.Check && len(d.Ranges) == 0 && d.Caps&capRangeSums != 0 {
		var err error
		if check, err = r.summary(); err != nil {
			return err
		}
	}
	mine := n.appliedSet()
	if check != nil {
		mine = check.Applied
	}
	missing := d.Applied.Missing(mine)
	if len(missing) == 0 && len(d.Ranges) == 0 {
		switch {
		case check != nil:
			if err := r.sendSummary(w, check); err != nil {
				return err
			}
			r.m.served.WithLabelValues("check").Inc()
		case r.diverged(d):
			r.log.Info("replication: peer has our applied set but another state: sending range sums", "peer", to.Name)
			if err := r.sendSummary(w, nil); err != nil {
				return err
			}
			r.m.served.WithLabelValues("summary").Inc()
		default:
			r.m.served.WithLabelValues("nothing").Inc()
		}
		return nil
	}
	// The committer indexes a group under the same lock that makes it
	// visible in the applied set: a failed lookup means records are gone.
	// A peer that asks for key ranges gets them (it found them different).
	offs, ok := n.offsetsOf(missing)
	if ok && len(d.Ranges) == 0 {
		sent, err := r.sendRecords(ctx, offs, w)
		r.m.sentOps.Add(float64(sent))
		if err == nil {
			r.m.served.WithLabelValues("ops").Inc()
			if check != nil {
				if err := r.sendSummary(w, check); err != nil {
					return err
				}
				r.m.served.WithLabelValues("check").Inc()
			}
			return nil
		}
		if !errors.Is(err, wal.ErrTruncated) {
			return err
		}
	}
	ranges, base, finCtx, finApplied, mode := wholeState, (*crdt.Context)(nil), (*crdt.Context)(nil), (*crdt.Context)(nil), "state"
	switch {
	case len(d.Ranges) > 0:
		ranges, _ = checkRanges(d.Ranges) // checked by decodeDigest
		base, finCtx, finApplied, mode = d.RangeCtx, d.RangeCtx, d.RangeApplied, "ranges"
		if d.RangeRepair {
			finCtx, finApplied = &crdt.Context{}, &crdt.Context{}
		}
	case d.Caps&capRangeSums != 0 && (len(d.Applied.VV) > 0 || len(d.Applied.Cloud) > 0):
		if err := r.sendSummary(w, check); err != nil {
			return err
		}
		r.m.served.WithLabelValues("summary").Inc()
		return nil
	}
	r.log.Info("replication: sending state (the operations the peer lacks are not all in the WAL)",
		"peer", to.Name, "missing_ranges", len(missing), "key_ranges", len(ranges))
	applied, err := r.sendState(ctx, w, ranges, base, finCtx, finApplied)
	if err != nil {
		return err
	}
	r.m.served.WithLabelValues(mode).Inc()
	// Whatever we applied while the state was read, by record.
	theirs := d.Applied.Clone()
	theirs.Merge(applied)
	if missing = theirs.Missing(n.appliedSet()); len(missing) > 0 {
		if offs, ok := n.offsetsOf(missing); ok {
			sent, err := r.sendRecords(ctx, offs, w)
			r.m.sentOps.Add(float64(sent))
			if err != nil && !errors.Is(err, wal.ErrTruncated) {
				return err
			}
		}
	}
	return nil
}

// offsetsOf returns the WAL offsets of the records that carry the given
// operations, and false if some of them are not in the WAL.
func (n *Node) offsetsOf(missing []crdt.DotRange) ([]offRange, bool) {
	var out []offRange
	for _, m := range missing {
		offs, ok := n.index.lookup(m.Replica, m.First, m.Last)
		if !ok {
			return nil, false
		}
		out = append(out, offs...)
	}
	return mergeOffRanges(out), true
}

// sendRecords writes the records at offs to w and returns how many it sent.
// A record removed from the WAL meanwhile gives an error wrapping
// wal.ErrTruncated.
func (r *replicator) sendRecords(ctx context.Context, offs []offRange, w *gossip.SyncWriter) (int, error) {
	n := r.n
	sent := 0
	for _, o := range offs {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		if o.Last-o.First < directReadMax {
			for off := o.First; off <= o.Last; off++ {
				rec, err := n.wal.Read(off)
				if err != nil {
					return sent, fmt.Errorf("node: read record %d: %w", off, err)
				}
				if err := w.Write(rec); err != nil {
					return sent, err
				}
				sent++
			}
			continue
		}
		rd, err := n.wal.NewReader(o.First)
		if err != nil {
			return sent, fmt.Errorf("node: read records from %d: %w", o.First, err)
		}
		for rd.Offset() <= o.Last {
			_, rec, err := rd.Next()
			if err != nil {
				rd.Close()
				return sent, fmt.Errorf("node: read records %d..%d: %w", o.First, o.Last, err)
			}
			if err := w.Write(rec); err != nil {
				rd.Close()
				return sent, err
			}
			sent++
		}
		rd.Close()
	}
	return sent, nil
}

// sendState writes the state of the given key ranges to w (writeState)
// and counts it.
func (r *replicator) sendState(ctx context.Context, w *gossip.SyncWriter, ranges []keyRange, base, finCtx, finApplied *crdt.Context) (*crdt.Context, error) {
	applied, keys, size, err := r.n.writeState(ctx, w.Write, ranges, base, finCtx, finApplied)
	r.m.sentKeys.Add(float64(keys))
	r.m.stateBytes.Add(float64(size))
	return applied, err
}

// writeState hands write the records of a state transfer of the given key
// ranges (sorted, not overlapping; wholeState for everything): each
// range's keys in sorted sub-ranges that tile it, each an OpStateRange
// record, then an OpContext record with finCtx and finApplied, or when
// those are nil the context and applied set taken at the start. It returns
// the applied set the transfer carries, and the keys and bytes it wrote.
//
// The state may change while it is sent. The context ctx0 and applied set
// are taken together at the start; each chunk of a range lists its keys
// and carries their current state (keys written since included) with a
// context: base (ctx0 when nil) plus the dots those keys hold. base must
// be a context this node held earlier (ctx0 or a summary's); the range
// then removes on the receiver exactly the values this node had seen by
// then and no longer holds (never a dot removed after that which the range
// does not show, which would make the receiver drop a value it got
// meanwhile: the operations after it are sent by record after the
// transfer, see serve). The final record merges ctx0 and the start's
// applied set, whose effects every range includes; with ranges from a
// summary, it carries the summary's context (the base) and applied set
// instead (the ranges not sent are as the summary saw them), or nothing
// for the repair a state comparison asked for (the receiver holds those
// operations already). Either way the receiver's context afterwards covers
// every context a range was joined with (the dots a range holds it adds as
// it joins), which is what lets a delta held back during the transfer be
// joined safely after it (transfer.go).
func (n *Node) writeState(ctx context.Context, write func([]byte) error, ranges []keyRange, base, finCtx, finApplied *crdt.Context) (applied *crdt.Context, sentKeys, sentBytes int, err error) {
	sh := n.mu.rlock()
	ctx0 := n.ks.Context()
	applied0 := n.ks.Applied()
	n.mu.runlock(sh)
	if finCtx == nil || finApplied == nil {
		finCtx, finApplied = ctx0, applied0
	}
	if base == nil {
		base = ctx0
	}
	now := crdt.MakeTimestamp(n.opts.Now().UnixMilli(), 0)
	for _, kr := range ranges {
		// A chunk's keys are listed with their state, under one hold of
		// the lock: listing every key of the state at once held it for
		// ~0.4 s at a million keys, with every write waiting.
		from := kr.Lo // where the next chunk begins (inclusive)
		for chunk := stateChunkKeys; ; {
			if err := ctx.Err(); err != nil {
				return nil, sentKeys, sentBytes, err
			}
			op := &Op{V: OpVersion, Kind: OpStateRange, Origin: n.replica, Time: now, Lo: from, Hi: kr.Hi}
			sh := n.mu.rlock()
			keys := n.ks.KeysFrom(from, kr.Hi, chunk+1) // one more: where the next chunk begins
			last := len(keys) <= chunk
			if !last {
				op.Hi = keys[chunk]
				keys = keys[:chunk]
			}
			op.Delta = n.ks.KeyState(keys...)
			n.mu.runlock(sh)
			op.Ctx = base.Clone()
			op.Ctx.Merge(&op.Delta.Ctx)
			rec, err := EncodeOp(op)
			if err != nil {
				return nil, sentKeys, sentBytes, err
			}
			if len(rec) > stateRecordBytes && len(keys) > 1 {
				chunk = max(1, len(keys)/2)
				continue
			}
			if err := write(rec); err != nil {
				return nil, sentKeys, sentBytes, fmt.Errorf("node: send state of keys [%q, %q): %w", op.Lo, op.Hi, err)
			}
			sentKeys += len(op.Delta.Keys)
			sentBytes += len(rec)
			if last {
				break
			}
			from, chunk = op.Hi, stateChunkKeys
		}
	}
	rec, err := EncodeOp(&Op{V: OpVersion, Kind: OpContext, Origin: n.replica, Time: now, Ctx: finCtx, Applied: finApplied})
	if err != nil {
		return nil, sentKeys, sentBytes, err
	}
	if err := write(rec); err != nil {
		return nil, sentKeys, sentBytes, err
	}
	return finApplied, sentKeys, sentBytes + len(rec), nil
}
