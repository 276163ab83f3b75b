package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

const (
	osCreateRW = os.O_RDWR | os.O_CREATE
	osReadOnly = os.O_RDONLY
	osReadRW   = os.O_RDWR
	tmpSuffix  = ".tmp"
)

// segment is one store file and its index. base, path and store never
// change. count and size are the visible extent: the committer raises them
// (setExtent) after a group is written (and synced, under SyncAlways),
// before it raises Log.visible; readers never look past them.
type segment struct {
	base  uint64
	path  string
	store File
	idx   *index

	count atomic.Int64 // visible records
	size  atomic.Int64 // visible store bytes: always the end of a whole frame
	// seq is odd while setExtent changes count and size; extent retries
	// until it read both between two changes.
	seq atomic.Uint64

	removed bool // taken out by TruncateFront; guarded by Log.segMu
}

func (s *segment) next() uint64 { return s.base + uint64(s.count.Load()) }

// extent returns count and size as one pair. Loaded one after the other,
// they can straddle a commit: the newest record's frame ends at size, and
// an old count with a new size reads the next group's frames as part of
// that record.
func (s *segment) extent() (count int, size int64) {
	for {
		g := s.seq.Load()
		if g&1 == 0 {
			c, n := s.count.Load(), s.size.Load()
			if s.seq.Load() == g {
				return int(c), n
			}
		}
		runtime.Gosched() // the committer is between its two stores
	}
}

// setExtent publishes a new visible extent. One writer at a time: the
// committer, or Open before the log is shared.
func (s *segment) setExtent(count int, size int64) {
	s.seq.Add(1)
	s.size.Store(size)
	s.count.Store(int64(count))
	s.seq.Add(1)
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d", base) }

func storePath(dir string, base uint64) string {
	return filepath.Join(dir, segmentName(base)+".log")
}

func indexPath(dir string, base uint64) string {
	return filepath.Join(dir, segmentName(base)+".index")
}

// parseSegmentName recognises "<20 digits>.log" and "<20 digits>.index".
func parseSegmentName(name string) (base uint64, ext string, ok bool) {
	stem, ext, found := strings.Cut(name, ".")
	if !found || len(stem) != 20 || (ext != "log" && ext != "index") {
		return 0, "", false
	}
	for _, c := range stem {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	base, err := strconv.ParseUint(stem, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return base, ext, true
}

// dirListing sorts a log directory's file names: the segments' bases in
// order, and the leftovers Open removes (temporary files, and indexes whose
// store is gone: left by a TruncateFront that removed the store first).
type dirListing struct {
	bases         []uint64
	tmps, orphans []string
}

func listDir(names []string) dirListing {
	var d dirListing
	logs := map[uint64]bool{}
	var indexes []uint64
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			d.tmps = append(d.tmps, name)
			continue
		}
		base, ext, ok := parseSegmentName(name)
		switch {
		case !ok:
		case ext == "log":
			logs[base] = true
			d.bases = append(d.bases, base)
		default:
			indexes = append(indexes, base)
		}
	}
	for _, base := range indexes {
		if !logs[base] {
			d.orphans = append(d.orphans, segmentName(base)+".index")
		}
	}
	slices.Sort(d.bases)
	return d
}

// writeFileAtomic writes data to path through path.tmp: write, fsync,
// rename. The caller fsyncs the directory.
func writeFileAtomic(fs FS, path string, data []byte) error {
	return writeFileAtomicFrom(fs, path, func(f File) error {
		_, err := f.WriteAt(data, 0)
		return err
	})
}

func writeFileAtomicFrom(fs FS, path string, fill func(File) error) error {
	tmp := path + tmpSuffix
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("wal: create %s: %w", tmp, err)
	}
	if err := fill(f); err != nil {
		f.Close()
		fs.Remove(tmp)
		return fmt.Errorf("wal: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		fs.Remove(tmp)
		return fmt.Errorf("wal: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("wal: close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("wal: rename %s: %w", tmp, err)
	}
	return nil
}

// createSegment makes a new, empty, durable segment: header via tmp +
// rename + directory fsync, then the index (a cache, created directly).
func createSegment(fs FS, dir string, base uint64) (*segment, error) {
	path := storePath(dir, base)
	if err := writeFileAtomic(fs, path, encodeHeader(base)); err != nil {
		return nil, err
	}
	if err := fs.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	store, err := fs.OpenFile(path, osReadRW, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	idx, err := openIndex(fs, indexPath(dir, base), 1, indexMinAlloc)
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &segment{base: base, path: path, store: store, idx: idx}
	s.setExtent(0, headerSize)
	return s, nil
}

func (s *segment) close() error {
	err := s.idx.close()
	if cerr := s.store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("wal: close %s: %w", s.path, cerr)
	}
	return err
}

// readHeader reads and checks the store header.
func readHeader(f File, path string, base uint64, size int64) error {
	h := make([]byte, headerSize)
	if size >= headerSize {
		if _, err := f.ReadAt(h, 0); err != nil {
			return fmt.Errorf("wal: read header of %s: %w", path, err)
		}
	} else {
		h = h[:0]
	}
	if why := checkHeader(h, base); why != "" {
		return &CorruptError{Path: path, Offset: 0, Record: base, Reason: why}
	}
	return nil
}
