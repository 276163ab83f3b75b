package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoaldb/shoal/wal"
)

// Offline reading of a data directory: what `shoal wal verify` and `shoal
// wal dump` show. Nothing here locks or changes the directory, so it is
// safe beside a running node; every format is read by the code that
// writes it (wal for the log, this package for operations and snapshots).

// Inspection is what Inspect found in a data directory.
type Inspection struct {
	Dir       string    `json:"dir"`
	Segments  int       `json:"segments"`     // WAL segments
	First     uint64    `json:"first_offset"` // the WAL records Open would hold: [First, Next)
	Next      uint64    `json:"next_offset"`
	Records   uint64    `json:"records"`
	Ops       uint64    `json:"ops_decoded"` // records that decode as operations
	Snapshots []string  `json:"snapshots"`   // snapshot file names
	Problems  []Problem `json:"problems"`
	OK        bool      `json:"ok"` // no problem of severity "error"
}

// Problem is one finding of Inspect.
type Problem struct {
	// Severity is "error" (Open refuses the directory, or data is missing
	// or wrong) or "warning" (Open repairs it by itself: a torn tail, an
	// index to rebuild, a leftover file).
	Severity string  `json:"severity"`
	File     string  `json:"file"`
	Byte     *int64  `json:"byte,omitempty"`
	Record   *uint64 `json:"record,omitempty"`
	Problem  string  `json:"problem"`
}

// Errors counts the problems of severity "error".
func (in *Inspection) Errors() int { return in.count("error") }

// Warnings counts the problems of severity "warning".
func (in *Inspection) Warnings() int { return in.count("warning") }

func (in *Inspection) count(sev string) int {
	n := 0
	for _, p := range in.Problems {
		if p.Severity == sev {
			n++
		}
	}
	return n
}

func (in *Inspection) add(sev, file string, at *int64, rec *uint64, format string, args ...any) {
	in.Problems = append(in.Problems, Problem{Severity: sev, File: file, Byte: at, Record: rec, Problem: fmt.Sprintf(format, args...)})
}

func ptr[T any](v T) *T { return &v }

// walDirOf is the WAL directory of dir: dir/wal when it exists (a data
// directory), else dir itself (a bare WAL directory).
func walDirOf(dir string) string {
	sub := filepath.Join(dir, walDir)
	if st, err := os.Stat(sub); err == nil && st.IsDir() {
		return sub
	}
	return dir
}

// Inspect checks a data directory (or a bare WAL directory) without
// changing it: every WAL frame and index entry (wal.Inspect), that every
// record Open would replay decodes as an operation, every snapshot
// (CheckSnapshot), that no snapshot covers records beyond the WAL's end,
// and that the WAL plus the newest valid snapshot hold every operation.
// Damage is reported in the result; only I/O failures are errors.
func Inspect(dir string) (*Inspection, error) {
	in := &Inspection{Dir: dir, Snapshots: []string{}, Problems: []Problem{}}
	wi, err := wal.Inspect(walDirOf(dir), &wal.InspectOptions{MaxRecordBytes: wal.MaxRecordLimit,
		OnRecord: func(off uint64, rec []byte) error {
			in.Records++
			if _, err := DecodeOp(rec); err != nil {
				in.add("error", walDir, nil, ptr(off), "record does not decode as an operation: %v", err)
			} else {
				in.Ops++
			}
			return nil
		}})
	if err != nil {
		return nil, err
	}
	in.Segments, in.First, in.Next = len(wi.Segments), wi.First, wi.Next
	for _, p := range wi.Problems {
		sev := "error"
		switch p.Kind {
		case wal.ProblemTornTail, wal.ProblemIndexIncomplete, wal.ProblemLeftover:
			sev = "warning"
		}
		var at *int64
		var rec *uint64
		if p.Byte >= 0 {
			at, rec = ptr(p.Byte), ptr(p.Record)
		}
		in.add(sev, filepath.Base(p.Path), at, rec, "%s: %s", p.Kind, p.Reason)
	}
	if err := in.checkSnapshots(dir); err != nil {
		return nil, err
	}
	in.OK = in.Errors() == 0
	return in, nil
}

// checkSnapshots checks every snapshot file, and that the WAL plus the
// newest valid snapshot hold everything: a WAL that starts above offset 0
// needs a snapshot covering the offsets below it.
func (in *Inspection) checkSnapshots(dir string) error {
	sdir := filepath.Join(dir, snapDir)
	ents, err := os.ReadDir(sdir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	covered, found := uint64(0), false
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), snapExt) {
			continue
		}
		name := filepath.Join(snapDir, e.Name())
		in.Snapshots = append(in.Snapshots, e.Name())
		c, err := CheckSnapshot(filepath.Join(sdir, e.Name()))
		if err != nil {
			in.add("error", name, nil, nil, "snapshot does not load: %v", err)
			continue
		}
		if in.Segments > 0 && c+1 > in.Next {
			in.add("error", name, nil, ptr(c), "snapshot covers WAL records up to %d but the WAL ends at %d: the node refuses to open (shoal wal repair)", c, in.Next)
		}
		if !found || c > covered {
			covered, found = c, true
		}
	}
	if in.Segments > 0 && in.First > 0 && (!found || covered+1 < in.First) {
		what := "no valid snapshot"
		if found {
			what = fmt.Sprintf("the newest valid snapshot covers up to %d", covered)
		}
		in.add("error", snapDir, nil, ptr(in.First), "the WAL starts at offset %d but %s: operations are missing", in.First, what)
	}
	return nil
}

// LogReader reads the operations of a data directory's WAL (or a bare WAL
// directory) in order, without opening the node: no lock, no change. It
// follows a running node's log: at the end of what is on disk Next returns
// io.EOF, and later calls return what was appended since.
type LogReader struct {
	tail *wal.Tail
	dir  string
}

// NewLogReader returns a LogReader whose first operation is the record at
// offset from.
func NewLogReader(dir string, from uint64) *LogReader {
	return &LogReader{tail: wal.NewTail(walDirOf(dir), from, &wal.InspectOptions{MaxRecordBytes: wal.MaxRecordLimit}), dir: dir}
}

// Offset is the offset of the record the next call to Next reads.
func (r *LogReader) Offset() uint64 { return r.tail.Offset() }

// Next returns the next operation and its WAL offset. At the end of what
// is on disk it returns io.EOF. A record that does not decode gives its
// offset and a *RecordError, and the next call goes on after it. Records removed by a snapshot's truncation give ErrOffsetUnavailable;
// damage in the log gives an error wrapping ErrCorrupt (and wal's
// *CorruptError), after which the reader does not go on.
func (r *LogReader) Next() (uint64, *Op, error) {
	off, rec, err := r.tail.Next()
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		return 0, nil, io.EOF
	case errors.Is(err, wal.ErrTruncated):
		return 0, nil, fmt.Errorf("%w: %w", ErrOffsetUnavailable, err)
	case errors.Is(err, wal.ErrCorrupt):
		return 0, nil, fmt.Errorf("%w: %s is damaged: %w", ErrCorrupt, r.dir, err)
	default:
		return 0, nil, err
	}
	op, err := DecodeOp(rec)
	if err != nil {
		return off, nil, &RecordError{Offset: off, Err: err}
	}
	return off, op, nil
}

// RecordError is a WAL record that does not decode as an operation. It
// matches ErrCorrupt.
type RecordError struct {
	Offset uint64
	Err    error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Offset, e.Err) }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *RecordError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the decoding error.
func (e *RecordError) Unwrap() error { return e.Err }
