package wal

import (
	"fmt"
	"os"
	"slices"
)

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
