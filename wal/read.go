package wal

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
)

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
	gone := s.removed || l.segsClosed
	want, size := s.extent()
	l.segMu.RUnlock()
	if gone {
		return fmt.Errorf("%w: segment %s was removed", ErrTruncated, s.path)
	}
	entries, count, err := l.scanSealed(s, size)
	if err != nil {
		return err
	}
	if count != want {
		return &CorruptError{Path: s.idx.path, Offset: 0, Record: s.base,
			Reason: fmt.Sprintf("the index holds %d entries, the store %d records", want, count)}
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
	cnt, size := s.extent()
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
