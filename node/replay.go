package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoaldb/shoal/crdt"
)

// recover rebuilds the state at Open: the newest valid snapshot, then
// every WAL record after it. It never silently skips data: a record that
// does not decode, or a WAL that does not reach back to (or forward to) the
// snapshot, is an error.
func (n *Node) recover() error {
	start := time.Now()
	first, next := n.wal.FirstOffset(), n.wal.NextOffset()
	dir := filepath.Join(n.dir, snapDir)
	offs, err := listSnapshots(dir)
	if err != nil {
		return fmt.Errorf("node: list snapshots: %w", err)
	}
	from := first
	loaded := false
	for _, off := range offs {
		path := filepath.Join(dir, snapName(off))
		if off+1 > next {
			return fmt.Errorf("%w: snapshot %s covers WAL records up to %d but the WAL ends at %d", ErrCorrupt, path, off, next)
		}
		if off+1 < first {
			n.log.Warn("snapshot older than the WAL's start; ignored", "path", path, "wal_first", first)
			continue
		}
		body, _, err := readSnapshot(path, off)
		var ks *crdt.Keyspace
		if err == nil {
			ks, err = crdt.FromSnapshot(body.State)
		}
		if err != nil {
			n.log.Warn("snapshot damaged; falling back to an older one", "path", path, "err", err)
			continue
		}
		n.ks = ks
		if st, err := os.Stat(path); err == nil {
			n.m.snapshotTime.Set(float64(st.ModTime().UnixNano()) / 1e9)
		}
		if body.Replica == n.replica {
			n.noteSeq(body.LastSeq)
		}
		n.clock = body.Clock
		n.index.load(body.Index)
		n.index.truncate(first)
		from, loaded = off+1, true
		n.log.Info("snapshot loaded", "path", path, "keys", ks.Len())
		break
	}
	if !loaded {
		if first > 0 {
			return fmt.Errorf("%w: the WAL starts at offset %d and no valid snapshot covers the records before it (%d snapshot files tried)", ErrCorrupt, first, len(offs))
		}
		n.ks = crdt.NewKeyspace()
	}
	n.ks.SuspendIndex() // nothing lists before the replay ends
	replayed, bytes, err := n.replay(from, next)
	n.ks.ResumeIndex()
	if err != nil {
		return err
	}
	n.noteSeq(maxSeq(n.ks.Context(), n.replica))
	n.durableClock = n.clock
	n.hlc.Store(uint64(n.clock))
	n.applied = next
	n.keys.Store(int64(n.ks.Len()))
	n.m.keys.Set(float64(n.ks.Len()))
	n.sinceOps, n.sinceSize = replayed, bytes
	d := time.Since(start)
	n.m.replaySeconds.Set(d.Seconds())
	n.m.replayRecords.Set(float64(replayed))
	if replayed > 0 || loaded {
		n.log.Info("recovered", "records", replayed, "from", from, "duration", d, "keys", n.ks.Len())
	}
	return nil
}

// replayChunk is a run of consecutive WAL records, decoded by a worker.
// (Joining each chunk's deltas in the workers, to apply one delta per
// chunk, was tried: it made the sequential Apply no cheaper.)
type replayChunk struct {
	first uint64
	recs  [][]byte
	ops   []*Op
	dots  [][]crdt.DotRange // per delta record: the dots it issued
	bytes int64
	err   error
	done  chan struct{}
}

// prepare decodes the chunk.
func (c *replayChunk) prepare() {
	c.ops = make([]*Op, len(c.recs))
	c.dots = make([][]crdt.DotRange, len(c.recs))
	for i, rec := range c.recs {
		c.bytes += int64(len(rec))
		op, err := DecodeOp(rec)
		if err != nil {
			c.err = fmt.Errorf("node: replay: record %d: %w", c.first+uint64(i), err)
			return
		}
		c.ops[i] = op
		if op.Kind == OpDelta {
			c.dots[i] = op.Delta.Dots()
		}
	}
	c.recs = nil
}

const replayChunkRecords = 256

// replay applies the WAL records [from, to). Records are read in order by
// one goroutine, decoded in parallel (decoding is most of the cost) and
// applied in order by the caller.
func (n *Node) replay(from, to uint64) (int, int64, error) {
	if from >= to {
		return 0, 0, nil
	}
	r, err := n.wal.NewReader(from)
	if err != nil {
		return 0, 0, fmt.Errorf("node: replay from %d: %w", from, err)
	}
	defer r.Close()

	workers := max(1, runtime.GOMAXPROCS(0))
	work := make(chan *replayChunk, workers)
	ordered := make(chan *replayChunk, 2*workers+2)
	quit := make(chan struct{})
	var readErr atomic.Pointer[error]
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader
		defer wg.Done()
		defer close(ordered)
		defer close(work)
		off := from
		for off < to {
			c := &replayChunk{first: off, done: make(chan struct{})}
			for len(c.recs) < replayChunkRecords && off < to {
				o, rec, err := r.Next()
				if err == nil && o != off {
					err = fmt.Errorf("read offset %d, expected %d", o, off)
				}
				if err == io.EOF {
					err = fmt.Errorf("the WAL ended at %d before %d", off, to)
				}
				if err != nil {
					err = fmt.Errorf("node: replay: offset %d: %w", off, err)
					readErr.Store(&err)
					if len(c.recs) == 0 {
						return
					}
					break
				}
				c.recs = append(c.recs, rec)
				off++
			}
			select {
			case work <- c:
			case <-quit:
				return
			}
			select {
			case ordered <- c:
			case <-quit:
				return
			}
			if readErr.Load() != nil {
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() { // decoders
			defer wg.Done()
			for c := range work {
				c.prepare()
				close(c.done)
			}
		}()
	}
	stop := func() {
		close(quit)
		for c := range ordered { // let the reader finish
			<-c.done
		}
		wg.Wait()
	}

	now := n.opts.Now().UnixMilli()
	drift := n.opts.MaxClockDrift.Milliseconds()
	count, bytes := 0, int64(0)
	lastLog := time.Now()
	for c := range ordered {
		<-c.done
		if c.err != nil {
			stop()
			return count, bytes, c.err
		}
		for i, op := range c.ops {
			n.applyOp(op)
			if op.Kind != OpDelta {
				continue
			}
			for _, dr := range c.dots[i] {
				n.index.add(dr.Replica, dr.First, dr.Last, c.first+uint64(i))
				if dr.Replica == n.replica {
					n.noteSeq(dr.Last)
				}
			}
			if n.ownIDs[op.Origin] {
				// This directory issued that time: restore it whatever the
				// wall clock says now, so that no later timestamp sorts
				// below it (the drift clamp is for peers' clocks).
				n.clock = max(n.clock, op.Time)
			} else {
				n.clock, _ = crdt.WitnessTimestamp(n.clock, op.Time, now, drift)
			}
		}
		count += len(c.ops)
		bytes += c.bytes
		if time.Since(lastLog) > 2*time.Second {
			lastLog = time.Now()
			n.log.Info("replaying WAL", "offset", c.first+uint64(len(c.ops)), "end", to, "records", count)
		}
	}
	wg.Wait()
	if p := readErr.Load(); p != nil {
		return count, bytes, *p
	}
	if count != int(to-from) {
		return count, bytes, errors.New("node: replay: short read")
	}
	return count, bytes, nil
}
