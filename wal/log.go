package wal

import (
	"errors"
	"io"
)

// Log is a segmented write-ahead log. All methods are safe for concurrent use.
type Log struct {
	dir  string
	opts Options
}

// SegmentInfo describes one segment, for snapshot and retention policies.
type SegmentInfo struct {
	Base  uint64 // first offset in the segment
	Next  uint64 // one past the last offset in the segment
	Bytes int64  // size of the store file
}

// RecoveryInfo says what Open had to repair.
type RecoveryInfo struct {
	CutBytes       int64    // bytes cut from the tail of the last segment
	CutFiles       []string // side files holding what was cut
	RebuiltIndexes int      // index files rebuilt from their store
}

var errNotYet = errors.New("wal: not implemented yet")

// Open opens or creates the log in dir. A nil opts means defaults; opts is
// copied.
func Open(dir string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Log{dir: dir, opts: o}, errNotYet
}

// Append appends records as one unit and returns the offset of the first;
// they get offsets first..first+len(records)-1. The records are copied.
func (l *Log) Append(records ...[]byte) (first uint64, err error) { return 0, errNotYet }

// Read returns a copy of the record at offset.
func (l *Log) Read(offset uint64) ([]byte, error) { return nil, errNotYet }

// NewReader returns a Reader positioned at from.
func (l *Log) NewReader(from uint64) (*Reader, error) { return nil, errNotYet }

// FirstOffset is the oldest offset still held.
func (l *Log) FirstOffset() uint64 { return 0 }

// NextOffset is the offset the next appended record gets; 0 for an empty log.
func (l *Log) NextOffset() uint64 { return 0 }

// Sync makes every appended record durable.
func (l *Log) Sync() error { return errNotYet }

// TruncateFront removes whole segments holding only offsets below offset.
func (l *Log) TruncateFront(offset uint64) error { return errNotYet }

// Close flushes, syncs and closes the log. Safe to call twice.
func (l *Log) Close() error { return nil }

// Err returns the sticky error that stopped the log, or nil.
func (l *Log) Err() error { return nil }

// Segments lists the segments, oldest first.
func (l *Log) Segments() []SegmentInfo { return nil }

// Size is the total size of the store files in bytes.
func (l *Log) Size() int64 { return 0 }

// Recovery reports what Open repaired.
func (l *Log) Recovery() RecoveryInfo { return RecoveryInfo{} }

// Verify reads every record of every segment and checks its checksum.
func (l *Log) Verify() error { return errNotYet }

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }

// Reader reads records in order from a Log while appends continue.
type Reader struct{ l *Log }

// Next returns the next record (a copy) and its offset; io.EOF at the end.
func (r *Reader) Next() (offset uint64, rec []byte, err error) { return 0, nil, io.EOF }

// Close releases the reader. Safe to call twice.
func (r *Reader) Close() error { return nil }
