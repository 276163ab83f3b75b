package wal

import (
	"errors"
	"fmt"
)

// Verify re-reads every visible record of every segment, checking each
// checksum and each index entry against the store, and returns the first
// *CorruptError (or I/O error) it meets. Open checks sealed segments only
// cheaply (their ends), so bit rot inside them is found here or by the read
// that meets it. Verify takes the log's locks only for moments (never
// across a scan), so appends, rolls and TruncateFront go on while it runs;
// a segment removed meanwhile is skipped.
func (l *Log) Verify() error {
	for _, info := range l.Segments() {
		if err := l.verifySegment(info.Base); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) verifySegment(base uint64) error {
	l.segMu.RLock()
	if l.segsClosed {
		l.segMu.RUnlock()
		return ErrClosed
	}
	var s *segment
	for _, c := range l.segs {
		if c.base == base {
			s = c
		}
	}
	var count int
	var size int64
	if s != nil {
		count, size = s.extent()
	}
	l.segMu.RUnlock()
	if s == nil {
		return nil // truncated meanwhile
	}
	// gone tells a failure caused by TruncateFront or Close (files closed
	// under the scan) from real damage.
	gone := func() (bool, error) {
		l.segMu.RLock()
		defer l.segMu.RUnlock()
		if l.segsClosed {
			return true, ErrClosed
		}
		return s.removed, nil
	}
	res, err := scanStore(s.store, s.base, size, l.opts.MaxRecordBytes, func(i int, pos int64) error {
		if i >= count {
			return nil
		}
		s.idx.mu.RLock()
		rel, p, ok := s.idx.get(i)
		s.idx.mu.RUnlock()
		if !ok || rel != uint32(i) || p != pos {
			return &CorruptError{Path: s.idx.path, Offset: int64(i) * indexEntrySize, Record: s.base + uint64(i),
				Reason: fmt.Sprintf("index entry says (%d, %d), the store has the record at %d", rel, p, pos)}
		}
		return nil
	})
	if err == nil && (res.problem != frameOK || res.count < count) {
		reason := string(res.problem)
		if reason == "" {
			reason = "fewer records than the index"
		}
		err = &CorruptError{Path: s.path, Offset: res.stopAt, Record: s.base + uint64(res.count), Reason: reason}
	}
	if err == nil {
		return nil
	}
	if g, cerr := gone(); g {
		return cerr
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("wal: verify %s: %w", s.path, err)
}
