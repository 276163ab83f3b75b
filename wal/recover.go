package wal

import (
	"encoding/binary"
	"fmt"
	"io"
)

// RecoveryInfo says what Open repaired (or, passed to
// Options.BeforeRecovery, what it is about to repair).
type RecoveryInfo struct {
	First, Next uint64 // the records the log holds after recovery

	CutBytes   int64    // bytes cut from the tail of the last segment
	CutAt      int64    // store position of the cut (when CutBytes > 0)
	CutSegment string   // store file that was cut
	CutFiles   []string // side files holding what was cut (empty before the cut)
	CutReason  string   // why decoding stopped where it was cut

	RebuiltIndexes int // index files rewritten from their store
}

// recoveryPlan is what Open decided after reading and checking the
// directory, before it changes anything (doc.go, "Recovery").
type recoveryPlan struct {
	names     map[string]bool // every file name in the directory
	leftovers []string        // *.tmp files and orphan indexes to remove
	segs      []*segPlan
	info      RecoveryInfo
}

type segPlan struct {
	seg  *segment // store open (and a trusted sealed index mapped)
	size int64    // store size on disk
	// rebuild holds the index entries to write for a sealed segment whose
	// index failed the cheap checks.
	rebuild []byte
	// Last segment only.
	last      bool
	prealloc  bool // what follows res.end is zeros written ahead: kept, not cut
	res       scanResult
	positions []int64 // frame position of each kept record
}

func (p *recoveryPlan) close() {
	for _, sp := range p.segs {
		if sp.seg.idx != nil {
			sp.seg.idx.close()
		}
		sp.seg.store.Close()
	}
	p.segs = nil
}

// recover checks the directory, lets Options.BeforeRecovery veto, then
// repairs: nothing is changed on disk before every check has passed.
func (l *Log) recover() error {
	p, err := l.plan()
	if err != nil {
		p.close()
		return err
	}
	if hook := l.opts.BeforeRecovery; hook != nil {
		if err := hook(p.info); err != nil {
			p.close()
			return err
		}
	}
	if err := l.apply(p); err != nil {
		p.close()
		return err
	}
	for _, sp := range p.segs {
		l.segs = append(l.segs, sp.seg)
	}
	// The last store's size on disk: its records and any zeros written
	// ahead of them, which the committer writes into (commit.go).
	l.actAlloc = p.segs[len(p.segs)-1].size
	l.recovery = p.info
	return nil
}

// plan reads the directory and every segment's header, checks sealed
// indexes cheaply (rebuilding their entries in memory when the check
// fails), scans the last segment and classifies its tail. It changes
// nothing. On error the caller closes what the plan holds.
func (l *Log) plan() (*recoveryPlan, error) {
	p := &recoveryPlan{names: map[string]bool{}}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return p, fmt.Errorf("wal: list %s: %w", l.dir, err)
	}
	for _, name := range names {
		p.names[name] = true
	}
	listing := listDir(names)
	p.leftovers = append(listing.tmps, listing.orphans...)
	bases := listing.bases
	for i, base := range bases {
		var sp *segPlan
		if i < len(bases)-1 {
			sp, err = l.planSealed(base)
		} else {
			sp, err = l.planLast(base)
		}
		if err != nil {
			return p, err
		}
		p.segs = append(p.segs, sp)
		if i > 0 {
			prev := p.segs[i-1].seg
			if prev.next() != base {
				return p, &CorruptError{Path: sp.seg.path, Offset: 0, Record: base,
					Reason: fmt.Sprintf("segment base %d does not follow the previous segment, which ends at %d", base, prev.next())}
			}
		}
	}
	if n := len(p.segs); n > 0 {
		p.info.First, p.info.Next = p.segs[0].seg.base, p.segs[n-1].seg.next()
		last := p.segs[n-1]
		if last.res.end < last.size && !last.prealloc {
			p.info.CutBytes = last.size - last.res.end
			p.info.CutAt = last.res.end
			p.info.CutSegment = last.seg.path
			p.info.CutReason = string(last.res.problem)
			if p.info.CutReason == "" {
				p.info.CutReason = "incomplete Append"
			}
		}
	}
	for _, sp := range p.segs {
		if sp.rebuild != nil {
			p.info.RebuiltIndexes++
		}
	}
	return p, nil
}

// planSealed opens a sealed segment, trusting its index only if it passes
// the cheap checks of doc.go and otherwise rebuilding its entries in
// memory from a full scan of the store.
func (l *Log) planSealed(base uint64) (*segPlan, error) {
	s, size, err := l.openStore(base, osReadOnly)
	if err != nil {
		return nil, err
	}
	sp := &segPlan{seg: s, size: size}
	if size > MaxSegmentBytes+MaxAppendBytes {
		return sp, &CorruptError{Path: s.path, Offset: size, Record: base, Reason: "store larger than any segment can be"}
	}
	if x, isize, err := openSealedIndex(l.fs, indexPath(l.dir, base)); err == nil {
		if n, ok := l.checkSealed(x, isize, s.store, base, size); ok {
			s.idx = x
			s.setExtent(n, size)
			return sp, nil
		}
		x.close()
	}
	entries, count, err := l.scanSealed(s, size)
	if err != nil {
		return sp, err
	}
	sp.rebuild = entries
	if sp.rebuild == nil {
		sp.rebuild = []byte{}
	}
	s.setExtent(count, size)
	return sp, nil
}

// scanSealed scans a sealed store in full and returns the index entries it
// should have. A sealed store must decode cleanly to its end.
func (l *Log) scanSealed(s *segment, size int64) ([]byte, int, error) {
	var entries []byte
	res, err := scanStore(s.store, s.base, size, l.opts.MaxRecordBytes, func(i int, pos int64) error {
		var e [indexEntrySize]byte
		putEntry(e[:], i, pos)
		entries = append(entries, e[:]...)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("wal: read %s: %w", s.path, err)
	}
	if res.problem != frameOK || res.end != size {
		reason := string(res.problem)
		if reason == "" {
			reason = "bytes after the last complete Append"
		}
		return nil, 0, &CorruptError{Path: s.path, Offset: res.stopAt, Record: s.base + uint64(res.count), Reason: reason + " in a sealed segment"}
	}
	return entries, res.count, nil
}

// checkSealed is the cheap trust test for a sealed index (doc.go, recovery
// step 3): its size, its first entry, and its last entry pointing at a
// final frame that ends the store. The entries in between are checked when
// a read first uses them (see fixIndex).
func (l *Log) checkSealed(x *index, isize int64, store File, base uint64, size int64) (int, bool) {
	if isize%indexEntrySize != 0 {
		return 0, false
	}
	n := int(isize / indexEntrySize)
	if n == 0 {
		return 0, size == headerSize
	}
	if rel, pos, ok := x.get(0); !ok || rel != 0 || pos != headerSize {
		return 0, false
	}
	rel, pos, ok := x.get(n - 1)
	if !ok || rel != uint32(n-1) || pos < headerSize || pos >= size {
		return 0, false
	}
	flen := size - pos
	if flen > int64(frameHeaderSize+l.opts.MaxRecordBytes) {
		return 0, false
	}
	buf := make([]byte, flen)
	if _, err := store.ReadAt(buf, pos); err != nil {
		return 0, false
	}
	_, fsize, last, p := decodeFrame(buf, base+uint64(n-1), l.opts.MaxRecordBytes)
	return n, p == frameOK && last && int64(fsize) == flen
}

// planLast scans the last segment from its header, compares its index
// with the scan, and decides what follows the last complete Append: a torn
// tail (cut by apply) or corruption (an error; nothing is cut).
func (l *Log) planLast(base uint64) (*segPlan, error) {
	s, size, err := l.openStore(base, osReadRW)
	if err != nil {
		return nil, err
	}
	sp := &segPlan{seg: s, size: size, last: true}
	idx, err := readIndexFile(l.fs, indexPath(l.dir, base), maxIndexBytes(size))
	if err != nil {
		return sp, err
	}
	// Size the positions by the index's entries, leaving out its zero
	// (preallocated) tail.
	sp.positions = make([]int64, 0, indexedEntries(idx)+1)
	sp.res, err = scanStore(s.store, base, size, l.opts.MaxRecordBytes, func(i int, pos int64) error {
		if pos > 1<<32-1 {
			return fmt.Errorf("wal: record %d of %s beyond 4 GiB", i, s.path)
		}
		sp.positions = append(sp.positions, pos)
		return nil
	})
	if err != nil {
		return sp, fmt.Errorf("wal: recover %s: %w", s.path, err)
	}
	if sp.prealloc, err = preallocated(s.store, size, sp.res, idx); err != nil {
		return sp, fmt.Errorf("wal: recover %s: %w", s.path, err)
	}
	if !sp.prealloc {
		if err := classifyTail(s.store, s.path, base, size, sp.res, idx, l.opts.MaxRecordBytes); err != nil {
			return sp, err
		}
	}
	s.setExtent(sp.res.count, sp.res.end)
	return sp, nil
}

// classifyTail decides whether the bytes after the last complete Append of
// a last segment are a torn tail (nil: a crash can leave them, and Open
// cuts them) or corruption (a *CorruptError): a frame that does not decode
// followed by an intact frame, found by the index or by scanning the bytes.
// A crash only ever loses a suffix of what was written, so data that is
// intact after damage means the damage is not a crash's doing, and the
// records after it may have been acknowledged.
func classifyTail(f File, path string, base uint64, size int64, res scanResult, idx []byte, maxLen int) error {
	if res.end >= size || res.badAt < 0 {
		return nil
	}
	vf, err := findFollowing(f, size, base, res.badAt, res.badRecord, idx, maxLen)
	if err != nil {
		return fmt.Errorf("wal: recover %s: %w", path, err)
	}
	if vf == nil {
		return nil
	}
	how := "by scanning"
	if vf.viaIndex {
		how = "through the index"
	}
	return &CorruptError{Path: path, Offset: res.badAt, Record: base + uint64(res.badRecord), Reason: string(res.problem),
		Follows: fmt.Sprintf("intact record %d at byte %d (found %s), %d bytes before the end of the file", vf.record, vf.pos, how, size-vf.pos)}
}

// indexedEntries is the number of entries of an index file's bytes up to
// its last written one (the file's tail is zero: preallocated room; no
// entry is zero, as a record's position never is).
func indexedEntries(idx []byte) int {
	n := len(idx) / indexEntrySize
	for n > 0 && binary.LittleEndian.Uint64(idx[(n-1)*indexEntrySize:]) == 0 {
		n--
	}
	return n
}

// maxIndexBytes is the largest index a store of size bytes can need; more
// can only be garbage.
func maxIndexBytes(size int64) int64 {
	return max((size/frameHeaderSize+1)*indexEntrySize, indexMinAlloc)
}

// readIndexFile reads up to limit bytes of an index file with plain reads
// (no mapping, no lock). A missing file is an empty index.
func readIndexFile(fs FS, path string, limit int64) ([]byte, error) {
	f, err := fs.OpenFile(path, osReadOnly, 0)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("wal: open index %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal: stat index %s: %w", path, err)
	}
	size = min(size, limit)
	size -= size % indexEntrySize
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("wal: read index %s: %w", path, err)
	}
	return b, nil
}

// apply carries out a plan: removes leftovers, writes rebuilt sealed
// indexes, repairs the last segment's index and cuts its torn tail.
func (l *Log) apply(p *recoveryPlan) error {
	dirty := false
	for _, name := range p.leftovers {
		if err := l.fs.Remove(l.path(name)); err != nil && !isNotExist(err) {
			return fmt.Errorf("wal: remove leftover %s: %w", name, err)
		}
		dirty = true
	}
	if len(p.segs) == 0 {
		first := l.opts.FirstOffset
		s, err := createSegment(l.fs, l.dir, first)
		if err != nil {
			return err
		}
		p.segs = []*segPlan{{seg: s, size: headerSize, last: true}}
		p.info.First, p.info.Next = first, first
		return nil
	}
	for _, sp := range p.segs {
		if sp.rebuild == nil {
			continue
		}
		s := sp.seg
		x, err := l.installIndex(s.path, indexPath(l.dir, s.base), sp.rebuild)
		if err != nil {
			return err
		}
		s.idx = x
		dirty = true
		if lg := l.logger(); lg != nil {
			lg.Info("wal: rebuilt index of sealed segment", "segment", s.path, "records", s.count.Load())
		}
	}
	last := p.segs[len(p.segs)-1]
	if err := l.repairLastIndex(last, &p.info); err != nil {
		return err
	}
	if last.res.end < last.size && !last.prealloc {
		side, err := l.cutTail(last.seg, last.res, last.size, p.names)
		if err != nil {
			return err
		}
		p.info.CutFiles = append(p.info.CutFiles, side)
		last.size = last.res.end
		dirty = true
	}
	if dirty {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: sync dir %s: %w", l.dir, err)
		}
	}
	return nil
}

// installIndex writes a sealed index (tmp, fsync, rename; the caller syncs
// the directory) and maps it read-only.
func (l *Log) installIndex(store, ipath string, entries []byte) (*index, error) {
	if err := writeFileAtomic(l.fs, ipath, entries); err != nil {
		return nil, err
	}
	x, _, err := openSealedIndex(l.fs, ipath)
	if err != nil {
		return nil, fmt.Errorf("wal: open rebuilt index of %s: %w", store, err)
	}
	return x, nil
}

// repairLastIndex maps the last segment's index read-write and makes it
// agree with the scan: entries rewritten where they differ, entries past
// the records cleared.
func (l *Log) repairLastIndex(sp *segPlan, info *RecoveryInfo) error {
	s := sp.seg
	x, err := openIndex(l.fs, indexPath(l.dir, s.base), 1, maxIndexBytes(sp.size))
	if err != nil {
		return err
	}
	s.idx = x
	mismatch := false
	if err := x.reserve(len(sp.positions)); err != nil {
		return err
	}
	for i, pos := range sp.positions {
		if rel, p, _ := x.get(i); rel != uint32(i) || p != pos {
			x.set(i, pos)
			mismatch = true
		}
	}
	// Entries past the records are stale (index ahead of the store): clear
	// them so the file never holds plausible garbage.
	for i := len(sp.positions); i < x.capacity(); i++ {
		if rel, p, _ := x.get(i); rel != 0 || p != 0 {
			x.clear(i)
			mismatch = true
		}
	}
	if mismatch {
		info.RebuiltIndexes++
		if lg := l.logger(); lg != nil {
			lg.Info("wal: repaired index of last segment", "segment", s.path, "records", len(sp.positions))
		}
	}
	return nil
}

// sideName returns a name for a side file that no file in the directory
// has: want, or want.1, want.2, ... Side files are never overwritten, so a
// second cut at the same position keeps the first one's evidence. The
// caller holds the directory lock, so no other Log creates files meanwhile.
func sideName(names map[string]bool, want string) string {
	name := want
	for i := 1; names[name]; i++ {
		name = fmt.Sprintf("%s.%d", want, i)
	}
	names[name] = true
	return name
}

// cutTail copies store[res.end:size] to a new side file, durably, then
// truncates the store there and syncs it. It returns the side file's path.
func (l *Log) cutTail(s *segment, res scanResult, size int64, names map[string]bool) (string, error) {
	name := sideName(names, fmt.Sprintf("%s.log.cut-%d", segmentName(s.base), res.end))
	side := l.path(name)
	if err := copyRange(l.fs, s.store, side, res.end, size); err != nil {
		return "", err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return "", fmt.Errorf("wal: sync dir %s: %w", l.dir, err)
	}
	if err := s.store.Truncate(res.end); err != nil {
		return "", fmt.Errorf("wal: truncate %s to %d: %w", s.path, res.end, err)
	}
	if err := s.store.Sync(); err != nil {
		return "", fmt.Errorf("wal: sync %s: %w", s.path, err)
	}
	if lg := l.logger(); lg != nil {
		reason := string(res.problem)
		if reason == "" {
			reason = "incomplete Append"
		}
		lg.Warn("wal: cut torn tail of last segment", "segment", s.path, "at", res.end,
			"bytes", size-res.end, "reason", reason, "side_file", side)
	}
	return side, nil
}

// copyRange writes src[from:to) to a new file at path (tmp, fsync, rename;
// the caller syncs the directory).
func copyRange(fs FS, src File, path string, from, to int64) error {
	return writeFileAtomicFrom(fs, path, func(f File) error {
		buf := make([]byte, 1<<20)
		for pos := from; pos < to; {
			n := min(int64(len(buf)), to-pos)
			if _, err := src.ReadAt(buf[:n], pos); err != nil && err != io.EOF {
				return err
			}
			if _, err := f.WriteAt(buf[:n], pos-from); err != nil {
				return err
			}
			pos += n
		}
		return nil
	})
}
