package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the package wrap one of these (or a
// *CorruptError) with %w, the operation and the identifiers involved, so test
// them with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("wal: closed")

	// ErrCorrupt matches every *CorruptError: a segment holds bytes that do
	// not decode where intact data was written: in a sealed segment, in a
	// header, or in the last segment with intact records after the damage.
	// It is never returned for a torn tail of the last segment (damage with
	// nothing intact after it), which Open cuts. Repair sets damage aside.
	ErrCorrupt = errors.New("wal: corrupt")

	// ErrTruncated is returned for an offset below FirstOffset: the record
	// existed but TruncateFront removed it.
	ErrTruncated = errors.New("wal: offset truncated")

	// ErrOutOfRange is returned for an offset at or beyond NextOffset: no
	// record has been appended there yet.
	ErrOutOfRange = errors.New("wal: offset out of range")

	// ErrTooLarge is returned by Append for a record longer than
	// Options.MaxRecordBytes or a call whose records together exceed
	// MaxAppendBytes. Nothing is appended.
	ErrTooLarge = errors.New("wal: record too large")

	// ErrLocked is returned by Open when another Log (in this or another
	// process) has the directory open.
	ErrLocked = errors.New("wal: directory locked by another log")

	// ErrInvalidOptions is returned by Open for options out of range.
	ErrInvalidOptions = errors.New("wal: invalid options")
)

// CorruptError reports bytes on disk that do not decode where the format
// says they must. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	Path   string // file holding the bad bytes
	Offset int64  // byte position in Path where the bad bytes start
	Record uint64 // log offset of the affected record (when Reason concerns a record)
	Reason string // what did not decode
	// Follows describes the intact data found after damage in the last
	// segment, when there is some: the reason Open did not cut it as a
	// torn tail. Empty otherwise.
	Follows string
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("wal: corrupt %s at byte %d (record %d): %s", e.Path, e.Offset, e.Record, e.Reason)
	if e.Follows != "" {
		msg += "; followed by " + e.Follows
	}
	return msg
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
