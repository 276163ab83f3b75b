package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Log is a segmented write-ahead log. All methods are safe for concurrent
// use.
//
// Open starts one goroutine, the committer, which does the writes, fsyncs
// and rolls (under SyncAlways an appender that finds the committer idle does
// its own group's instead, one committer at a time); Close stops it after it
// has written and synced everything that was appended, then closes the
// files.
type Log struct {
	dir  string
	opts Options
	fs   FS
	lock *dirLock

	// Append side, guarded by mu.
	mu        sync.Mutex
	spaceCond *sync.Cond // appenders waiting for queued bytes to drain (SyncInterval/SyncNever)
	next      uint64     // offset the next record gets
	pend      *batch     // the open batch appenders add to
	queue     []*batch   // closed batches waiting for the committer, in order
	queued    int        // bytes in pend, queue and in flight
	planSize  int64      // active store size once everything queued is written
	closed    bool
	err       error // sticky write/sync failure
	idle      bool  // the committer goroutine waits for a kick
	// committing is the commit token: its holder alone runs commit and
	// touches the committer-only state below.
	committing bool
	work       []*batch // the token holder's batches
	freeBufs   [][]byte

	kick     chan struct{} // wakes the idle committer; capacity 1
	loopDone chan struct{}

	assigned atomic.Uint64 // copy of next, for NextOffset and readers
	visible  atomic.Uint64 // one past the last record readers may see
	first    atomic.Uint64 // base of the oldest segment
	isClosed atomic.Bool
	failed   atomic.Bool // err is set

	visMu   sync.Mutex
	visCond *sync.Cond // readers waiting for visible to move (or the log to fail or close)

	// Segments, guarded by segMu. The committer appends on roll,
	// TruncateFront removes from the front; readers hold RLock for the whole
	// of a read so that no file is closed under them.
	segMu      sync.RWMutex
	segs       []*segment
	segsClosed bool

	truncMu sync.Mutex // serialises TruncateFront so removals stay oldest first

	// Committer-only state (see committing).
	act      *segment
	actSize  int64 // bytes written to the active store
	actCount int   // records written to the active store
	unsynced bool  // written since the last fdatasync
	lastSync time.Time
	cerr     error // the committer's copy of the sticky error

	recovery   RecoveryInfo
	indexFixes atomic.Int64 // sealed indexes rebuilt after a read disagreed
}

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

// SegmentInfo describes one segment, for snapshot and retention policies.
type SegmentInfo struct {
	Base  uint64 // offset of the first record in the segment
	Next  uint64 // one past the last visible record in the segment
	Bytes int64  // visible size of the store file
}

// Open opens the log in dir, creating the directory and an empty log if
// needed, and recovers it as doc.go describes. A nil opts means defaults;
// opts is copied. Only one Log may have a directory open at a time (an
// advisory lock enforces it where the OS supports it).
func Open(dir string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:      dir,
		opts:     o,
		fs:       o.FS,
		kick:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
	}
	l.spaceCond = sync.NewCond(&l.mu)
	l.visCond = sync.NewCond(&l.visMu)
	if err := mkdirDurable(l.fs, dir); err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	if l.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	if err := l.recover(); err != nil {
		l.segMu.Lock()
		for _, s := range l.segs {
			s.close()
		}
		l.segs = nil
		l.segMu.Unlock()
		l.lock.unlock()
		return nil, err
	}
	last := l.segs[len(l.segs)-1]
	l.act = last
	l.actSize = last.size.Load()
	l.actCount = int(last.count.Load())
	l.planSize = l.actSize
	l.next = last.next()
	l.assigned.Store(l.next)
	l.visible.Store(l.next)
	l.first.Store(l.segs[0].base)
	l.lastSync = time.Now()
	go l.run()
	return l, nil
}

func (l *Log) path(name string) string { return l.dir + string(os.PathSeparator) + name }

func (l *Log) logger() *slog.Logger { return l.opts.Logger }

// openStore opens the store file of segment base and checks its header.
// On error nothing is left open.
func (l *Log) openStore(base uint64, flag int) (*segment, int64, error) {
	path := storePath(l.dir, base)
	store, err := l.fs.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: open %s: %w", path, err)
	}
	size, err := store.Size()
	if err != nil {
		store.Close()
		return nil, 0, fmt.Errorf("wal: stat %s: %w", path, err)
	}
	if err := readHeader(store, path, base, size); err != nil {
		store.Close()
		return nil, 0, err
	}
	return &segment{base: base, path: path, store: store}, size, nil
}

// abandon closes what a half-opened segment holds and returns err.
func (s *segment) abandon(err error) (*segment, error) {
	if s.idx != nil {
		s.idx.close()
	}
	s.store.Close()
	return nil, err
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
			// Keep the token: nothing may commit after the last sync.
			if l.unsynced && l.cerr == nil {
				if err := l.syncActive(); err != nil {
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
		l.act.size.Store(l.actSize)
		l.act.count.Store(int64(l.actCount))
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
	l.actCount += b.n
	l.unsynced = true
	return nil
}

// roll seals the active segment and creates the next one (doc.go, "Rolling").
// Committer only.
func (l *Log) roll(base uint64) error {
	if l.unsynced {
		if err := l.syncActive(); err != nil {
			return err
		}
	}
	old := l.act
	old.size.Store(l.actSize)
	old.count.Store(int64(l.actCount))
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
	l.act, l.actSize, l.actCount = s, headerSize, 0
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

// Err returns the sticky error that stopped the log, or nil.
func (l *Log) Err() error {
	if !l.failed.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// FirstOffset is the oldest offset still held (the base of the oldest
// segment). On an empty log it equals NextOffset.
func (l *Log) FirstOffset() uint64 { return l.first.Load() }

// NextOffset is the offset the next appended record gets: every lower
// offset has been assigned (those of Appends still in flight may not be
// readable yet). 0 for an empty log.
func (l *Log) NextOffset() uint64 { return l.assigned.Load() }

// waitVisible returns nil once offset is visible, ErrOutOfRange if it was
// never assigned, or the error that means it never will be.
func (l *Log) waitVisible(offset uint64) error {
	if offset < l.visible.Load() {
		return nil
	}
	if next := l.assigned.Load(); offset >= next {
		return fmt.Errorf("%w: offset %d, next offset is %d", ErrOutOfRange, offset, next)
	}
	l.visMu.Lock()
	defer l.visMu.Unlock()
	for offset >= l.visible.Load() {
		if l.isClosed.Load() {
			return ErrClosed
		}
		if l.failed.Load() {
			return l.Err()
		}
		l.visCond.Wait()
	}
	return nil
}

// findSegment returns the segment holding offset. Holds segMu (read).
func (l *Log) findSegment(offset uint64) (*segment, error) {
	if l.segsClosed {
		return nil, ErrClosed
	}
	if len(l.segs) == 0 || offset < l.segs[0].base {
		first := uint64(0)
		if len(l.segs) > 0 {
			first = l.segs[0].base
		}
		return nil, fmt.Errorf("%w: offset %d, first offset is %d", ErrTruncated, offset, first)
	}
	k := sort.Search(len(l.segs), func(k int) bool { return l.segs[k].base > offset }) - 1
	return l.segs[k], nil
}

// Read returns the record at offset in a new slice the caller owns. An
// offset below FirstOffset fails with ErrTruncated, one at or beyond
// NextOffset with ErrOutOfRange. An offset of an Append still in flight
// waits for it. A checksum failure is a *CorruptError. A sealed segment's
// index entry that disagrees with the store is found here: the index is
// rebuilt from the store (if the store is intact) and the read answered.
func (l *Log) Read(offset uint64) ([]byte, error) {
	if l.isClosed.Load() {
		return nil, ErrClosed
	}
	if err := l.waitVisible(offset); err != nil {
		return nil, err
	}
	for retried := false; ; retried = true {
		rec, s, err := l.readOnce(offset)
		var ce *CorruptError
		if err == nil || retried || s == nil || !errors.As(err, &ce) || !s.idx.sealed() {
			return rec, err
		}
		if ferr := l.fixIndex(s); ferr != nil {
			return nil, ferr
		}
	}
}

// readOnce reads offset through its segment's index. It returns the
// segment when it found one, so that a failure can be checked against it.
func (l *Log) readOnce(offset uint64) ([]byte, *segment, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	s, err := l.findSegment(offset)
	if err != nil {
		return nil, nil, err
	}
	pos, end, err := l.locate(s, offset)
	if err != nil {
		return nil, s, err
	}
	buf := make([]byte, end-pos)
	if _, err := s.store.ReadAt(buf, pos); err != nil {
		return nil, nil, fmt.Errorf("wal: read %s at %d: %w", s.path, pos, err)
	}
	payload, size, _, p := decodeFrame(buf, offset, l.opts.MaxRecordBytes)
	if p == frameOK && size != len(buf) {
		p = "frame shorter than the index says"
	}
	if p != frameOK {
		return nil, s, &CorruptError{Path: s.path, Offset: pos, Record: offset, Reason: string(p)}
	}
	return payload, s, nil
}

// fixIndex is called when a read met a frame of a sealed segment that does
// not match the segment's index. Open checks only the ends of a sealed
// index; an entry in between is first checked by the read that uses it.
// The index is a cache: fixIndex scans the store, and if it decodes
// cleanly to its end rebuilds the index from it (the failed read is then
// retried); if not, the store is damaged and that *CorruptError is
// returned. It excludes TruncateFront and Close while it runs.
func (l *Log) fixIndex(s *segment) error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.segMu.RLock()
	gone, size := s.removed || l.segsClosed, s.size.Load()
	l.segMu.RUnlock()
	if gone {
		return fmt.Errorf("%w: segment %s was removed", ErrTruncated, s.path)
	}
	entries, count, err := l.scanSealed(s, size)
	if err != nil {
		return err
	}
	if count != int(s.count.Load()) {
		return &CorruptError{Path: s.idx.path, Offset: 0, Record: s.base,
			Reason: fmt.Sprintf("the index holds %d entries, the store %d records", s.count.Load(), count)}
	}
	s.idx.mu.RLock()
	same := bytes.Equal(entries, s.idx.mm)
	s.idx.mu.RUnlock()
	if same {
		return nil // the index is right; the retried read reports what is wrong
	}
	x, err := l.installIndex(s.path, s.idx.path, entries)
	if err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		x.close()
		return fmt.Errorf("wal: sync dir %s: %w", l.dir, err)
	}
	s.idx.mu.Lock()
	err = s.idx.unmapLocked()
	s.idx.mm, x.mm = x.mm, nil
	s.idx.mu.Unlock()
	l.indexFixes.Add(1)
	if lg := l.logger(); lg != nil {
		lg.Warn("wal: index of sealed segment disagreed with its intact store; rebuilt", "segment", s.path, "records", count)
	}
	return err
}

// IndexRebuilds counts the sealed indexes rebuilt since Open because a read
// found an entry that disagreed with the store (Open's own rebuilds are in
// Recovery).
func (l *Log) IndexRebuilds() int64 { return l.indexFixes.Load() }

// locate finds the frame of a visible record: [pos, end) in the store.
// Holds segMu (read).
func (l *Log) locate(s *segment, offset uint64) (pos, end int64, err error) {
	i := int(offset - s.base)
	cnt := int(s.count.Load())
	size := s.size.Load()
	if i >= cnt {
		return 0, 0, fmt.Errorf("%w: offset %d not in segment %s", ErrOutOfRange, offset, s.path)
	}
	s.idx.mu.RLock()
	rel, pos, ok := s.idx.get(i)
	end = size
	ok2 := true
	var rel2 uint32
	if i+1 < cnt {
		rel2, end, ok2 = s.idx.get(i + 1)
		ok2 = ok2 && rel2 == uint32(i+1)
	}
	s.idx.mu.RUnlock()
	if !ok || !ok2 || rel != uint32(i) || pos < headerSize || end > size || end-pos < frameHeaderSize ||
		end-pos > int64(frameHeaderSize+l.opts.MaxRecordBytes) {
		return 0, 0, &CorruptError{Path: s.idx.path, Offset: int64(i) * indexEntrySize, Record: offset, Reason: "index entry inconsistent with the store"}
	}
	return pos, end, nil
}

// TruncateFront removes the whole segments whose records are all below
// offset. It never removes the active segment, so FirstOffset may stay
// below offset. Readers positioned in removed segments get ErrTruncated.
func (l *Log) TruncateFront(offset uint64) error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.segMu.Lock()
	if l.segsClosed {
		l.segMu.Unlock()
		return ErrClosed
	}
	k := 0
	for k < len(l.segs)-1 && l.segs[k].next() <= offset {
		k++
	}
	if k == 0 {
		l.segMu.Unlock()
		return nil
	}
	gone := slices.Clone(l.segs[:k])
	l.segs = slices.Clone(l.segs[k:])
	for _, s := range gone {
		s.removed = true
	}
	l.first.Store(l.segs[0].base)
	l.segMu.Unlock()

	// Oldest first, each removal durable before the next, so a crash leaves
	// a contiguous run of segments.
	var bytes int64
	for i, s := range gone {
		bytes += s.size.Load()
		s.close()
		if err := l.fs.Remove(s.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("wal: truncate front: remove %s (%d segments not removed from disk; they reappear on reopen): %w", s.path, len(gone)-i, err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: truncate front: sync dir %s: %w", l.dir, err)
		}
		if err := l.fs.Remove(s.idx.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("wal: truncate front: remove %s: %w", s.idx.path, err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("wal: truncate front: sync dir %s: %w", l.dir, err)
	}
	if h := l.opts.Hooks.OnTruncateFront; h != nil {
		h(len(gone), bytes)
	}
	return nil
}

// Close writes and syncs everything appended, stops the committer, seals
// the active index and closes the files. Appends and reads after Close fail
// with ErrClosed. It returns the sticky error if the log had failed. Safe to
// call twice; the second call returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.idle = true // force the kick
	l.wake()
	l.spaceCond.Broadcast()
	l.mu.Unlock()
	<-l.loopDone

	l.isClosed.Store(true)
	l.visMu.Lock()
	l.visCond.Broadcast()
	l.visMu.Unlock()

	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	err := l.cerr
	if err == nil {
		// A clean close leaves an exact index: no preallocated tail.
		if serr := l.act.idx.seal(l.actCount); serr != nil {
			err = serr
		}
	}
	for _, s := range l.segs {
		if cerr := s.close(); err == nil {
			err = cerr
		}
	}
	l.segs = nil
	l.segsClosed = true
	l.lock.unlock()
	return err
}

// Segments lists the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{Base: s.base, Next: s.next(), Bytes: s.size.Load()}
	}
	return out
}

// Size is the total visible size of the store files in bytes.
func (l *Log) Size() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size.Load()
	}
	return n
}

// Recovery reports what Open repaired.
func (l *Log) Recovery() RecoveryInfo {
	r := l.recovery
	r.CutFiles = slices.Clone(r.CutFiles)
	return r
}

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }
