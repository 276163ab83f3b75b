package wal

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncPolicy says when appended records are made durable with fdatasync.
// The values are persisted nowhere but are explicit so that configuration
// files can name them stably.
type SyncPolicy int

const (
	// SyncAlways: Append returns only after its records are durable. Concurrent
	// appends share one write and one fdatasync (group commit). The default.
	SyncAlways SyncPolicy = 0
	// SyncInterval: Append returns once the records are queued; the committer
	// hands them to the OS at once and fdatasyncs every Options.SyncInterval,
	// like Redis "appendfsync everysec". A machine crash loses at most about
	// one interval; a process crash loses only what was still queued.
	SyncInterval SyncPolicy = 1
	// SyncNever: like SyncInterval without the periodic fdatasync (Sync,
	// segment rolls and Close still sync). For tests and caches.
	SyncNever SyncPolicy = 2
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults and hard limits.
const (
	DefaultSegmentBytes   = 64 << 20
	DefaultSyncInterval   = time.Second
	DefaultMaxRecordBytes = 16 << 20
	DefaultPreallocate    = 1 << 20

	// MaxSegmentBytes bounds Options.SegmentBytes: index positions are 32-bit,
	// and a segment may overshoot SegmentBytes by one Append.
	MaxSegmentBytes = 2 << 30
	// MaxRecordLimit bounds Options.MaxRecordBytes (the frame length field has 30 bits).
	MaxRecordLimit = 1<<30 - 1
	// MaxAppendBytes bounds the framed size of one Append call, which always
	// lands in a single segment.
	MaxAppendBytes = 1 << 30

	minSegmentBytes = 1 << 10
)

// Options configure Open. The zero value (and a nil *Options) means
// defaults. Open copies the struct and never writes into the caller's value.
type Options struct {
	// SegmentBytes rolls to a new segment once the store file would grow
	// beyond this size. 0 = DefaultSegmentBytes (64 MiB); at most
	// MaxSegmentBytes. One Append never spans two segments, so a segment
	// holding a single large Append may exceed it.
	SegmentBytes int64

	// Sync is the durability policy; the zero value is SyncAlways.
	Sync SyncPolicy

	// FirstOffset is the offset of the first record of a log that Open
	// creates (a directory with no segment): its first segment starts
	// there. A log that continues from a state kept elsewhere (a restored
	// backup: node) starts after what that state covers. Ignored when the
	// directory holds segments.
	FirstOffset uint64

	// SyncInterval is the fdatasync period under SyncInterval. 0 = 1s.
	SyncInterval time.Duration

	// MaxRecordBytes is the largest record Append accepts and the largest
	// length a decoder will allocate for. 0 = DefaultMaxRecordBytes (16 MiB);
	// at most MaxRecordLimit. Reopening a log with a smaller value than it was
	// written with makes the larger records unreadable (they are reported as
	// corrupt), so never lower it.
	MaxRecordBytes int

	// Preallocate is how many bytes of zeros the committer writes ahead of
	// the records in the active store, in one step whenever the records
	// reach the end of what it wrote before. An fdatasync after writing into
	// blocks that already hold data and a file that keeps its size flushes
	// the data only; one that extends the file also writes the inode and
	// allocates blocks: about twice the time and CPU for a small group on
	// ext4 (doc.go, "Preallocation"). 0 = DefaultPreallocate (1 MiB);
	// negative = off (every write extends the file).
	Preallocate int64

	// MaxPendingBytes bounds the bytes queued for the committer under
	// SyncInterval and SyncNever; Append blocks while more are queued
	// (back-pressure instead of unbounded memory). 0 = 8 MiB.
	MaxPendingBytes int

	// Logger receives the few events worth a line (recovery cuts, index
	// rebuilds, a sticky failure). nil = no logging.
	Logger *slog.Logger

	// Hooks are optional metrics callbacks; nil fields are off.
	Hooks Hooks

	// BeforeRecovery, when set, is called once by Open after it has read
	// and checked the directory and decided what it will repair (cut a torn
	// tail, rebuild indexes, remove leftovers), and before it changes any
	// file. info tells what it is about to do (CutFiles is still empty) and
	// which records the log will hold. If it returns an error, Open returns
	// that error and leaves every file as it was: the caller can refuse a
	// directory, or make its own state durable (a new identity, say) before
	// the cut, after its own checks.
	BeforeRecovery func(info RecoveryInfo) error

	// FS is the file system the log uses; nil = the operating system's.
	// Tests inject faults through it.
	FS FS
}

// Hooks are metrics callbacks, so that the caller can feed Prometheus (or
// anything else) without this package importing it. They are called by
// whichever goroutine is committing (the log's committer, or an appender
// leading a group commit), one call at a time; OnTruncateFront by the
// caller of TruncateFront. They must not block and must not call back into
// the Log.
type Hooks struct {
	// OnCommit is called after each group of appends is written (and, when the
	// policy or a Sync asks for it, fdatasynced).
	OnCommit func(CommitStats)
	// OnSync is called after every fdatasync of a store file, with its
	// duration and result.
	OnSync func(d time.Duration, err error)
	// OnRoll is called after a new segment was created; base is its base offset.
	OnRoll func(base uint64)
	// OnTruncateFront is called after TruncateFront removed segments.
	OnTruncateFront func(segments int, bytes int64)
}

// CommitStats describe one group commit.
type CommitStats struct {
	Appends int           // Append calls in the group
	Records int           // records in the group
	Bytes   int           // framed bytes written
	Write   time.Duration // time in write(2)
	Sync    time.Duration // time in fdatasync; 0 if the group was not synced
	Synced  bool
}

// withDefaults returns a copy of o with defaults filled in, or an error
// wrapping ErrInvalidOptions.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentBytes < minSegmentBytes || c.SegmentBytes > MaxSegmentBytes {
		return c, fmt.Errorf("%w: SegmentBytes %d not in [%d, %d]", ErrInvalidOptions, c.SegmentBytes, minSegmentBytes, MaxSegmentBytes)
	}
	switch c.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return c, fmt.Errorf("%w: unknown sync policy %d", ErrInvalidOptions, int(c.Sync))
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.SyncInterval < 0 {
		return c, fmt.Errorf("%w: negative SyncInterval %v", ErrInvalidOptions, c.SyncInterval)
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.MaxRecordBytes < 0 || c.MaxRecordBytes > MaxRecordLimit {
		return c, fmt.Errorf("%w: MaxRecordBytes %d not in [1, %d]", ErrInvalidOptions, c.MaxRecordBytes, MaxRecordLimit)
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = 8 << 20
	}
	if c.MaxPendingBytes < 0 {
		return c, fmt.Errorf("%w: negative MaxPendingBytes", ErrInvalidOptions)
	}
	if c.Preallocate == 0 {
		c.Preallocate = DefaultPreallocate
	}
	if c.Preallocate > MaxSegmentBytes {
		return c, fmt.Errorf("%w: Preallocate %d above %d", ErrInvalidOptions, c.Preallocate, MaxSegmentBytes)
	}
	if c.FS == nil {
		c.FS = OSFS{}
	}
	return c, nil
}
