package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Tail reads the records of a log directory in offset order without
// opening the log: no lock, no repair, no change, so it can read the log of
// a running process and follow it as that process appends. It sees what is
// on disk: under SyncAlways every acknowledged record; under the other
// policies what the writer has handed to the OS.
//
// Next returns io.EOF when it has read every complete Append on disk; call
// it again later to read what was appended since (the caller chooses how
// often to look). Only whole Appends are returned: the frames of one still
// being written wait for their last frame, and apparent damage in the last
// segment is reported only when a second look agrees (doc.go, "Inspect and
// Repair"). A Tail is not safe for concurrent use.
type Tail struct {
	dir    string
	maxLen int
	fs     FS

	next  uint64 // offset of the next record to return
	base  uint64 // base of the segment being read (valid when open)
	pos   int64  // position of record next in it
	open  bool   // base/pos locate record next
	queue []tailRecord
}

// tailLook is what one look at a damaged-looking last segment saw.
// The file's size is left out: a commit may write new zeros ahead
// without moving the damage (as in Inspect).
type tailLook struct {
	base       uint64
	end, badAt int64
}

type tailRecord struct {
	off uint64
	rec []byte
}

// NewTail returns a Tail whose first record is from (records below the
// log's first offset are gone: Next then fails with ErrTruncated). opts
// may be nil; OnRecord is ignored.
func NewTail(dir string, from uint64, opts *InspectOptions) *Tail {
	o := opts.withDefaults()
	return &Tail{dir: dir, maxLen: o.MaxRecordBytes, fs: o.FS, next: from}
}

// Offset is the offset the next call to Next returns.
func (t *Tail) Offset() uint64 { return t.next }

// Next returns the next record (a slice the caller owns) and its offset,
// io.EOF at the end of what is on disk, ErrTruncated if the records to read
// were removed (TruncateFront, below the first offset), or a *CorruptError
// for damage that a crash cannot leave (in a sealed segment; a gap).
func (t *Tail) Next() (uint64, []byte, error) {
	for len(t.queue) == 0 {
		progressed, err := t.fill()
		if err != nil {
			return 0, nil, err
		}
		if !progressed {
			return 0, nil, io.EOF
		}
	}
	r := t.queue[0]
	t.queue = t.queue[1:]
	return r.off, r.rec, nil
}

// fill reads the complete Appends after t.next into the queue, moving to
// the next segment when the current one is sealed and read to its end.
// It reports whether it moved at all.
func (t *Tail) fill() (bool, error) { return t.look(nil) }

// look is fill; prev is what the look before found when it saw damage in
// the last segment (nil: none).
func (t *Tail) look(prev *tailLook) (bool, error) {
	names, err := t.fs.ReadDir(t.dir)
	if err != nil {
		return false, fmt.Errorf("wal: tail %s: %w", t.dir, err)
	}
	bases := listDir(names).bases
	if len(bases) == 0 {
		return false, nil
	}
	if !t.open {
		// The segment holding next: the last whose base is <= next.
		k, found := slices.BinarySearch(bases, t.next)
		if !found {
			if k == 0 {
				return false, fmt.Errorf("%w: offset %d, first offset is %d", ErrTruncated, t.next, bases[0])
			}
			k--
		}
		pos, ok, err := t.locate(bases[k], t.next)
		if err != nil || !ok {
			return false, err
		}
		t.base, t.pos, t.open = bases[k], pos, true
	}
	k, found := slices.BinarySearch(bases, t.base)
	if !found {
		return false, fmt.Errorf("%w: segment %s was removed while read (records from %d on)", ErrTruncated, storePath(t.dir, t.base), t.next)
	}
	last := k == len(bases)-1
	f, err := t.fs.OpenFile(storePath(t.dir, t.base), osReadOnly, 0)
	if err != nil {
		if isNotExist(err) {
			return false, fmt.Errorf("%w: segment %s was removed while read (records from %d on)", ErrTruncated, storePath(t.dir, t.base), t.next)
		}
		return false, fmt.Errorf("wal: tail: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false, fmt.Errorf("wal: tail: %w", err)
	}
	queued := len(t.queue)
	res, err := scanFrom(f, t.base, t.pos, int(t.next-t.base), size, t.maxLen, func(i int, _ int64, payload []byte) error {
		t.queue = append(t.queue, tailRecord{t.base + uint64(i), slices.Clone(payload)})
		return nil
	})
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// Shorter than its size said: the writer cut the zeros ahead of
		// its records (a roll or a close) meanwhile. Look again.
		t.queue = t.queue[:queued]
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("wal: tail %s: %w", storePath(t.dir, t.base), err)
	}
	moved := res.end > t.pos
	t.next, t.pos = t.base+uint64(res.count), res.end
	if res.end == size && !last && bases[k+1] == t.next {
		// Read to its end, and the next segment follows on: go there.
		t.base, t.pos = bases[k+1], headerSize
		if moved {
			return true, nil
		}
		return t.look(nil)
	}
	switch {
	case moved:
		// Hand out what was read; a problem after it is met next time.
	case !last && res.end < size:
		reason := string(res.problem)
		if reason == "" {
			reason = "bytes after the last complete Append"
		}
		return false, &CorruptError{Path: storePath(t.dir, t.base), Offset: res.stopAt, Record: t.next, Reason: reason + " in a sealed segment"}
	case !last:
		return false, &CorruptError{Path: storePath(t.dir, bases[k+1]), Offset: 0, Record: t.next,
			Reason: fmt.Sprintf("segment base %d does not follow the previous segment, which ends at %d", bases[k+1], t.next)}
	case res.badAt >= 0:
		// Damage in the last segment: a write in progress looks the same
		// until it completes; say so only if intact records follow it, in
		// two looks in a row that agree (with the zeros written ahead, a
		// commit lands among bytes already read).
		idx, _ := readIndexFile(t.fs, indexPath(t.dir, t.base), maxIndexBytes(size))
		if pre, err := preallocated(f, size, res, idx); err != nil {
			return false, fmt.Errorf("wal: tail %s: %w", storePath(t.dir, t.base), err)
		} else if pre {
			break
		}
		if err := classifyTail(f, storePath(t.dir, t.base), t.base, size, res, idx, t.maxLen); err != nil {
			seen := tailLook{t.base, res.end, res.badAt}
			switch {
			case prev == nil:
				time.Sleep(lookPause)
				return t.look(&seen)
			case *prev == seen:
				return false, err
			}
			// It changed between the looks: a writer at work. Look
			// again at the next call.
		}
	}
	return moved, nil
}

// locate finds the position of record off in segment base: through the
// index when its entry points at an intact frame of that record, else by
// scanning from the header. ok is false when the segment does not hold
// record off yet (it may later).
func (t *Tail) locate(base, off uint64) (pos int64, ok bool, err error) {
	path := storePath(t.dir, base)
	f, err := t.fs.OpenFile(path, osReadOnly, 0)
	if err != nil {
		return 0, false, fmt.Errorf("wal: tail: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return 0, false, fmt.Errorf("wal: tail: %w", err)
	}
	if err := readHeader(f, path, base, size); err != nil {
		return 0, false, err
	}
	if off == base {
		return headerSize, true, nil
	}
	i := int(off - base)
	if idx, err := readIndexFile(t.fs, indexPath(t.dir, base), maxIndexBytes(size)); err == nil && (i+1)*indexEntrySize <= len(idx) {
		e := idx[i*indexEntrySize:]
		rel, pos := binary.LittleEndian.Uint32(e[0:4]), int64(binary.LittleEndian.Uint32(e[4:8]))
		if rel == uint32(i) && pos >= headerSize && pos < size {
			if vf, err := frameAt(f, size, base, pos, uint64(i), uint64(i), t.maxLen, nil); err == nil && vf != nil {
				return pos, true, nil
			}
		}
	}
	// No usable entry: walk the frames from the header.
	pos = -1
	errFound := errors.New("found")
	res, err := scanFrom(f, base, headerSize, 0, size, t.maxLen, func(j int, p int64, _ []byte) error {
		if j == i {
			pos = p
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return pos, true, nil
	case err != nil:
		return 0, false, fmt.Errorf("wal: tail %s: %w", path, err)
	case res.count == i:
		return res.end, true, nil // the end of what is there: wait there
	}
	return 0, false, nil
}
