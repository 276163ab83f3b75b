package wal

import (
	"errors"
	"fmt"
	"io"
)

// readChunk is how much of a store a Reader reads at once.
const readChunk = 256 << 10

// Reader reads records in offset order while appends continue. Next returns
// io.EOF when it has caught up with the visible end of the log; calling it
// again later returns the records appended since. A Reader is not safe for
// concurrent use; use one per goroutine. It holds no file open, so a
// forgotten Reader costs only its buffer, but Close it anyway.
type Reader struct {
	l      *Log
	next   uint64   // offset of the next record
	seg    *segment // segment the buffer came from
	buf    []byte   // whole frames of seg starting at record next, from bufPos
	bufPos int64    // store position of buf[0]
	off    int      // parse position in buf
	slab   []byte   // small records are carved from here: one allocation for many
	closed bool
}

const (
	slabSize     = 32 << 10
	slabMaxCarve = 2 << 10
)

// copyOut returns a copy of p that no one else writes: small records share
// a slab (capacity cut to their length, so an append by the caller
// reallocates instead of touching a neighbour).
func (r *Reader) copyOut(p []byte) []byte {
	n := len(p)
	if n > slabMaxCarve {
		return append([]byte(nil), p...)
	}
	if len(r.slab) < n {
		r.slab = make([]byte, slabSize)
	}
	rec := r.slab[:n:n]
	copy(rec, p)
	r.slab = r.slab[n:]
	return rec
}

// NewReader returns a Reader whose first record is from. from may be
// NextOffset (the Reader then waits for new records by returning io.EOF);
// below FirstOffset it fails with ErrTruncated, beyond NextOffset with
// ErrOutOfRange.
func (l *Log) NewReader(from uint64) (*Reader, error) {
	if l.isClosed.Load() {
		return nil, ErrClosed
	}
	if from < l.FirstOffset() {
		return nil, fmt.Errorf("%w: offset %d, first offset is %d", ErrTruncated, from, l.FirstOffset())
	}
	if next := l.NextOffset(); from > next {
		return nil, fmt.Errorf("%w: offset %d, next offset is %d", ErrOutOfRange, from, next)
	}
	return &Reader{l: l, next: from}, nil
}

// Offset is the offset the next call to Next will return.
func (r *Reader) Offset() uint64 { return r.next }

// Next returns the next record, in a new slice the caller owns, and its
// offset. At the end of the visible log it returns io.EOF (under
// SyncAlways, records of Appends that have not returned are not visible;
// under the other policies, Next waits the few microseconds until queued
// records are written). Records removed by TruncateFront give ErrTruncated;
// a checksum failure gives a *CorruptError; after Close, ErrClosed.
func (r *Reader) Next() (offset uint64, rec []byte, err error) {
	l := r.l
	if r.closed || l.isClosed.Load() {
		return 0, nil, ErrClosed
	}
	if r.next >= l.visible.Load() {
		if l.opts.Sync == SyncAlways || r.next >= l.assigned.Load() {
			if err := l.Err(); err != nil {
				return 0, nil, err
			}
			return 0, nil, io.EOF
		}
		if err := l.waitVisible(r.next); err != nil {
			return 0, nil, err
		}
	}
	if r.off < len(r.buf) {
		payload, size, _, p := decodeFrame(r.buf[r.off:], r.next, l.opts.MaxRecordBytes)
		if p == frameOK {
			rec = r.copyOut(payload)
			r.off += size
			r.next++
			return r.next - 1, rec, nil
		}
		if p != frameShort && p != frameTruncated {
			return 0, nil, &CorruptError{Path: r.seg.path, Offset: r.bufPos + int64(r.off), Record: r.next, Reason: string(p)}
		}
	}
	for retried := false; ; retried = true {
		located, err := r.fill()
		var payload []byte
		var size int
		if err == nil {
			var p frameProblem
			if payload, size, _, p = decodeFrame(r.buf, r.next, l.opts.MaxRecordBytes); p != frameOK {
				err = &CorruptError{Path: r.seg.path, Offset: r.bufPos, Record: r.next, Reason: string(p)}
			}
		}
		if err == nil {
			rec = r.copyOut(payload)
			r.off = size
			r.next++
			return r.next - 1, rec, nil
		}
		// A frame that does not match where the index put it: let the
		// log check the store and rebuild the index, then try once more.
		var ce *CorruptError
		if retried || located == nil || !errors.As(err, &ce) || !located.idx.sealed() {
			return 0, nil, err
		}
		r.buf, r.seg = r.buf[:0], nil
		if ferr := l.fixIndex(located); ferr != nil {
			return 0, nil, ferr
		}
	}
}

// fill reads whole frames starting at record r.next (which is visible) into
// buf, with r.off = 0. located is the segment when the start was found
// through its index (a mid-segment start), nil otherwise.
func (r *Reader) fill() (located *segment, err error) {
	l := r.l
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	s, err := l.findSegment(r.next)
	if err != nil {
		return nil, err
	}
	var pos int64
	if s == r.seg && !s.removed && r.bufPos+int64(r.off) <= s.size.Load() && len(r.buf) > 0 {
		pos = r.bufPos + int64(r.off) // sequential: continue where the buffer ended
	} else if r.next == s.base {
		pos = headerSize
	} else {
		located = s
		if pos, _, err = l.locate(s, r.next); err != nil {
			return located, err
		}
	}
	end := s.size.Load()
	n := end - pos
	if n < frameHeaderSize {
		return located, &CorruptError{Path: s.path, Offset: pos, Record: r.next, Reason: "visible record past the end of its segment"}
	}
	if n > readChunk {
		n = readChunk
	}
	if err := r.readAt(s, pos, int(n)); err != nil {
		return nil, err
	}
	// A record larger than the chunk: read it whole.
	if fl, _, _, p := parseFrameHeader(r.buf, l.opts.MaxRecordBytes); p == frameOK && frameHeaderSize+fl > len(r.buf) {
		if int64(frameHeaderSize+fl) > end-pos {
			return located, &CorruptError{Path: s.path, Offset: pos, Record: r.next, Reason: string(frameTruncated)}
		}
		if err := r.readAt(s, pos, frameHeaderSize+fl); err != nil {
			return nil, err
		}
	}
	r.seg, r.bufPos, r.off = s, pos, 0
	return located, nil
}

func (r *Reader) readAt(s *segment, pos int64, n int) error {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := s.store.ReadAt(r.buf, pos); err != nil {
		r.buf = r.buf[:0]
		return fmt.Errorf("wal: read %s at %d: %w", s.path, pos, err)
	}
	return nil
}

// Close releases the Reader's buffer. Safe to call twice.
func (r *Reader) Close() error {
	r.closed = true
	r.buf, r.seg, r.slab = nil, nil, nil
	return nil
}
