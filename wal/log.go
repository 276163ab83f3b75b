package wal

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
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
	act     *segment
	actSize int64 // bytes written to the active store
	// actAlloc is the active store's size on disk: [actSize, actAlloc)
	// holds zeros written ahead (preallocate).
	actAlloc int64
	// preallocAfter: no zeros are written ahead before actSize reaches it
	// (set when writing them failed).
	preallocAfter int64
	actCount      int  // records written to the active store
	unsynced      bool // written since the last fdatasync
	lastSync      time.Time
	cerr          error // the committer's copy of the sticky error

	recovery   RecoveryInfo
	indexFixes atomic.Int64 // sealed indexes rebuilt after a read disagreed
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
	l.actSize = last.size.Load() // actAlloc: set by recover
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
		count, size := s.extent() // a pair from one commit
		out[i] = SegmentInfo{Base: s.base, Next: s.base + uint64(count), Bytes: size}
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
