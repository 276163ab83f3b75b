package wal

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// maxBatchBytes closes the open batch once it holds this much, so a large
// group is written in several pwrites of bounded size.
const maxBatchBytes = 1 << 20

// batch is a group of Appends written with one write. Appenders fill it
// under Log.mu; once the committer has taken it, only the committer touches
// it until done is closed.
type batch struct {
	buf     []byte
	first   uint64 // offset of the first record in buf
	n       int    // records
	appends int
	roll    bool // roll to a new segment with base first before writing
	sync    bool // fdatasync after writing, whatever the policy
	done    chan struct{}
	err     error // set before done is closed
}

// Append appends records as one unit and returns the offset of the first;
// they get offsets first..first+len(records)-1, and after a crash either all
// of them or none are in the log. The records are copied before Append
// returns; the caller may reuse them at once.
//
// Under SyncAlways, Append returns once the records are durable; concurrent
// calls share one write and one fdatasync. Under SyncInterval and SyncNever
// it returns once they are queued (blocking while more than
// Options.MaxPendingBytes are queued). A record larger than MaxRecordBytes
// fails with ErrTooLarge and nothing is appended. After a write or sync
// failure every call returns that error. With no records, Append appends
// nothing and returns NextOffset.
func (l *Log) Append(records ...[]byte) (first uint64, err error) {
	var crcArr [8]uint32
	crcs := crcArr[:0]
	if len(records) > len(crcArr) {
		crcs = make([]uint32, 0, len(records))
	}
	total := 0
	for i, r := range records {
		if len(r) > l.opts.MaxRecordBytes {
			return 0, fmt.Errorf("%w: record %d is %d bytes, limit %d", ErrTooLarge, i, len(r), l.opts.MaxRecordBytes)
		}
		total += frameHeaderSize + len(r)
		if total > MaxAppendBytes {
			return 0, fmt.Errorf("%w: one Append of more than %d bytes", ErrTooLarge, MaxAppendBytes)
		}
		// Checksum outside the lock; the offset is folded in under it.
		crcs = append(crcs, payloadCRC(r))
	}

	l.mu.Lock()
	if l.opts.Sync != SyncAlways {
		for l.queued > 0 && l.queued+total > l.opts.MaxPendingBytes && !l.closed && l.err == nil {
			l.spaceCond.Wait()
		}
	}
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return 0, err
	}
	if len(records) == 0 {
		n := l.next
		l.mu.Unlock()
		return n, nil
	}
	if l.planSize > headerSize && l.planSize+int64(total) > l.opts.SegmentBytes {
		l.openBatch(true)
	} else if l.pend == nil || (len(l.pend.buf) > 0 && len(l.pend.buf)+total > maxBatchBytes) {
		// Bounded batches let the committer write one while appenders
		// fill the next, and keep buffers reusable.
		l.openBatch(false)
	}
	b := l.pend
	first = l.next
	for i, r := range records {
		b.buf = appendFrame(b.buf, first+uint64(i), r, crcs[i], i == len(records)-1)
	}
	b.n += len(records)
	b.appends++
	l.next += uint64(len(records))
	l.assigned.Store(l.next)
	l.planSize += int64(total)
	l.queued += total
	if l.opts.Sync != SyncAlways {
		l.wake()
		l.mu.Unlock()
		return first, nil
	}
	done := b.doneChan()
	if l.committing {
		// The commit in progress hands over to the committer goroutine
		// when it ends, and that takes this batch.
		l.mu.Unlock()
	} else {
		// Lead: write and sync this group ourselves.
		l.committing = true
		work := l.takeWork()
		l.mu.Unlock()
		l.commit(work)
		clear(work)
		l.mu.Lock()
		l.committing = false
		if l.pend != nil || len(l.queue) > 0 || l.closed {
			l.wake()
		}
		l.mu.Unlock()
	}
	<-done
	if b.err != nil {
		return 0, b.err
	}
	return first, nil
}

// openBatch closes the open batch (if any) and opens a new one. Holds mu.
func (l *Log) openBatch(roll bool) {
	if l.pend != nil {
		l.queue = append(l.queue, l.pend)
	}
	var buf []byte
	if k := len(l.freeBufs); k > 0 {
		buf = l.freeBufs[k-1][:0]
		l.freeBufs = l.freeBufs[:k-1]
	} else {
		buf = make([]byte, 0, 64<<10)
	}
	l.pend = &batch{buf: buf, first: l.next, roll: roll}
	if roll {
		l.planSize = headerSize
	}
}

func (b *batch) doneChan() chan struct{} {
	if b.done == nil {
		b.done = make(chan struct{})
	}
	return b.done
}

// wake kicks the committer if it is idle. Holds mu.
func (l *Log) wake() {
	if l.idle {
		l.idle = false
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// Sync makes every record appended so far durable. Under SyncAlways it has
// nothing left to do for records whose Append returned.
func (l *Log) Sync() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return err
	}
	if l.pend == nil {
		l.openBatch(false)
	}
	b := l.pend
	b.sync = true
	done := b.doneChan()
	l.wake()
	l.mu.Unlock()
	<-done
	return b.err
}

// run is the committer goroutine. Whoever holds the commit token
// (l.committing) is the committer for the moment: this goroutine, or under
// SyncAlways an appender that found no commit in progress and leads one
// itself, saving the hand-off between goroutines on the path to the disk.
func (l *Log) run() {
	defer close(l.loopDone)
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		l.mu.Lock()
		for l.committing || (l.pend == nil && len(l.queue) == 0 && !l.closed) {
			l.idle = true
			l.mu.Unlock()
			select {
			case <-l.kick:
			case <-tick:
				l.intervalSync()
			}
			l.mu.Lock()
			l.idle = false
		}
		l.committing = true
		work := l.takeWork()
		// Closed and nothing left after this round: the last one. (A
		// closed log takes no new batches, so this cannot change.)
		closing := l.closed && l.pend == nil && len(l.queue) == 0
		l.mu.Unlock()

		if len(work) > 0 {
			l.commit(work)
		}
		clear(work)
		if closing {
			// Keep the token: nothing may commit after the last sync. A
			// clean close leaves the store ending with its last record.
			if l.cerr == nil {
				err := l.trimActive()
				if err == nil && l.unsynced {
					err = l.syncActive()
				}
				if err != nil {
					l.fail(err)
				}
			}
			return
		}
		l.mu.Lock()
		l.committing = false
		l.mu.Unlock()
	}
}

// intervalSync is the SyncInterval tick of an idle committer.
func (l *Log) intervalSync() {
	l.mu.Lock()
	mine := !l.committing
	l.committing = true
	l.mu.Unlock()
	if !mine {
		return
	}
	if l.unsynced && l.cerr == nil {
		if err := l.syncActive(); err != nil {
			l.fail(err)
		}
	}
	l.mu.Lock()
	l.committing = false
	l.mu.Unlock()
}

// takeWork takes the batches the next commit writes. Holds mu and the
// commit token; the result aliases l.work.
func (l *Log) takeWork() []*batch {
	work := l.work[:0]
	switch {
	case l.opts.Sync == SyncAlways:
		// Everything queued shares one fdatasync.
		if l.pend != nil {
			l.queue = append(l.queue, l.pend)
			l.pend = nil
		}
		work = append(work, l.queue...)
		clear(l.queue)
		l.queue = l.queue[:0]
	case len(l.queue) > 0:
		// One batch at a time, so that appenders blocked on
		// MaxPendingBytes resume as soon as it is written; the open
		// batch keeps filling meanwhile.
		work = append(work, l.queue[0])
		l.queue = slices.Delete(l.queue, 0, 1)
	case l.pend != nil:
		work = append(work, l.pend)
		l.pend = nil
	}
	l.work = work
	return work
}

// commit writes the batches, syncs once if any needs it, publishes and
// wakes the waiters.
func (l *Log) commit(work []*batch) {
	var (
		err      = l.cerr
		needSync = l.opts.Sync == SyncAlways
		stats    CommitStats
		bytes    int
	)
	start := time.Now()
	for _, b := range work {
		bytes += len(b.buf)
		if err == nil {
			err = l.writeBatch(b)
		}
		needSync = needSync || b.sync
		stats.Appends += b.appends
		stats.Records += b.n
	}
	stats.Bytes = bytes
	stats.Write = time.Since(start)
	if l.opts.Sync == SyncInterval && time.Since(l.lastSync) >= l.opts.SyncInterval {
		needSync = true
	}
	if err == nil && needSync && l.unsynced {
		t := time.Now()
		err = l.syncActive()
		stats.Sync = time.Since(t)
		stats.Synced = err == nil
	}
	if err != nil && l.cerr == nil {
		l.fail(err)
	}
	if l.cerr == nil {
		l.act.setExtent(l.actCount, l.actSize)
		l.visible.Store(l.act.next())
	}
	l.visMu.Lock()
	l.visCond.Broadcast()
	l.visMu.Unlock()

	l.mu.Lock()
	for _, b := range work {
		if l.cerr != nil {
			b.err = l.cerr
		}
		if b.done != nil {
			close(b.done)
		}
		if cap(b.buf) > 0 && cap(b.buf) <= 2*maxBatchBytes && len(l.freeBufs) < 8 {
			l.freeBufs = append(l.freeBufs, b.buf[:0])
		}
		b.buf = nil
	}
	l.queued -= bytes
	l.spaceCond.Broadcast()
	l.mu.Unlock()

	if h := l.opts.Hooks.OnCommit; h != nil && stats.Records > 0 {
		h(stats)
	}
}

// writeBatch writes one batch to the active store (rolling first if the
// batch asks) and fills the index entries. Committer only.
func (l *Log) writeBatch(b *batch) error {
	if b.roll && l.actCount > 0 {
		if err := l.roll(b.first); err != nil {
			return err
		}
	}
	if b.n == 0 {
		return nil
	}
	if want := l.act.base + uint64(l.actCount); b.first != want {
		return fmt.Errorf("wal: internal error: batch starts at %d, segment %s is at %d", b.first, l.act.path, want)
	}
	if err := l.act.idx.reserve(l.actCount + b.n); err != nil {
		return err
	}
	n, err := l.act.store.WriteAt(b.buf, l.actSize)
	if err == nil && n < len(b.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("wal: write %d bytes to %s at %d: %w", len(b.buf), l.act.path, l.actSize, err)
	}
	pos := l.actSize
	for i := 0; i < b.n; i++ {
		l.act.idx.set(l.actCount+i, pos)
		n, _, _, _ := parseFrameHeader(b.buf[pos-l.actSize:], MaxRecordLimit)
		pos += int64(frameHeaderSize + n)
	}
	l.actSize += int64(len(b.buf))
	if l.actSize > l.actAlloc { // the batch extended the file
		l.actAlloc = l.actSize
		l.preallocate()
	}
	l.actCount += b.n
	l.unsynced = true
	return nil
}

// zeros is what preallocate writes; never written to (in the binary's
// zero-filled data: no memory until read, and then the kernel's zero page).
var zeros [DefaultPreallocate]byte

// preallocate writes zeros after the records, which have just reached the
// end of the file, up to Options.Preallocate bytes past them and within
// the segment's size, so that the next commits write into blocks that hold
// data already (doc.go, "Preallocation"); this commit's fdatasync covers
// them. The records were written first, so they never wait for space the
// zeros took: when the zeros do not fit, they are cut again and the log
// goes on without them (the space ahead is an optimisation, not the log's
// to fail for). Committer only.
func (l *Log) preallocate() {
	end := l.actSize
	if l.opts.Preallocate <= 0 || end < l.preallocAfter {
		return
	}
	target := min(end+l.opts.Preallocate, max(l.opts.SegmentBytes, end))
	pos := end
	for pos < target {
		n, err := l.act.store.WriteAt(zeros[:min(int64(len(zeros)), target-pos)], pos)
		pos += int64(n)
		if err != nil {
			// Give back what was taken; if that fails too, the zeros
			// written are harmless (recovery knows them).
			if l.act.store.Truncate(end) == nil {
				pos = end
			}
			// Not again at every commit of a disk that stays full.
			l.preallocAfter = end + l.opts.Preallocate
			break
		}
	}
	l.actAlloc = pos
}

// trimActive cuts the zeros written ahead from the active store, so that
// a sealed or cleanly closed store ends with its last record; the caller
// syncs (unsynced is set). Committer only.
func (l *Log) trimActive() error {
	if l.actAlloc <= l.actSize {
		return nil
	}
	if err := l.act.store.Truncate(l.actSize); err != nil {
		return fmt.Errorf("wal: truncate %s to %d: %w", l.act.path, l.actSize, err)
	}
	l.actAlloc = l.actSize
	l.unsynced = true
	return nil
}

// roll seals the active segment and creates the next one (doc.go, "Rolling").
// Committer only.
func (l *Log) roll(base uint64) error {
	if err := l.trimActive(); err != nil {
		return err
	}
	if l.unsynced {
		if err := l.syncActive(); err != nil {
			return err
		}
	}
	old := l.act
	old.setExtent(l.actCount, l.actSize)
	if err := old.idx.seal(l.actCount); err != nil {
		return err
	}
	s, err := createSegment(l.fs, l.dir, base)
	if err != nil {
		return err
	}
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	l.act, l.actSize, l.actAlloc, l.actCount = s, headerSize, headerSize, 0
	l.preallocAfter = 0
	if h := l.opts.Hooks.OnRoll; h != nil {
		h(base)
	}
	return nil
}

// syncActive fdatasyncs the active store. Committer only.
func (l *Log) syncActive() error {
	t := time.Now()
	err := l.act.store.Sync()
	if h := l.opts.Hooks.OnSync; h != nil {
		h(time.Since(t), err)
	}
	if err != nil {
		return fmt.Errorf("wal: fdatasync %s: %w", l.act.path, err)
	}
	l.unsynced = false
	l.lastSync = time.Now()
	return nil
}

// fail makes err sticky. Committer only. The error is returned to callers,
// not logged here (it is logged where it is finally handled).
func (l *Log) fail(err error) {
	l.cerr = err
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.failed.Store(true)
	l.spaceCond.Broadcast()
	l.mu.Unlock()
}
