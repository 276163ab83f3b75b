package wal

import (
	"fmt"
	"path/filepath"
)

// RepairInfo says what Repair did.
type RepairInfo struct {
	First, Next uint64 // the records the log holds after the repair
	// Dropped counts the intact records at or after Next that were in the
	// log's files and are no longer in the log (they are in the side
	// files): what the repair lost. Before counts those below First, which
	// the caller said it holds elsewhere (a snapshot).
	Dropped  uint64
	Before   uint64
	SetAside []SetAside // side files written, never overwritten
	Changed  bool       // false: the log needed no repair
}

// SetAside is one side file Repair wrote.
type SetAside struct {
	Path    string // the side file
	From    string // the store file its bytes came from
	Bytes   int64
	Records uint64 // intact records among them that the log no longer holds (below First or from Next)
	Whole   bool   // the whole store file (header included) was moved aside
}

// Repair makes the log in dir open again after damage that Open refuses,
// keeping the records [first, next) of Inspection.Keep(from): the intact,
// contiguous records from max(from, the first offset), up to the first
// damage (cut back to a whole Append). Everything else is set aside in
// side files that are never overwritten: store files outside the kept
// records are renamed to <B>.log.aside, the bytes after the kept part of
// a segment are copied to <B>.log.cut-<P> before it is truncated, and a
// segment whose kept part starts in its middle is rewritten as a new
// segment <first>.log (its frames copied unchanged) and the old file moved
// aside. Indexes of changed segments are removed (the next Open rebuilds
// them). from > the first offset lets a caller holding a snapshot of the
// records below from keep the intact records after damage it covers; from
// beyond every record leaves an empty log whose next offset is from.
//
// Repair takes the directory lock. Each step is durable before the next,
// and a Repair interrupted by a crash can be run again: it recomputes the
// same kept records from what is on disk. A log without corruption or a
// torn tail whose kept records are already exactly the log is left alone
// (Changed is false). Records set aside are lost to the log; a caller that
// replicates must treat its history as changed (shoal's node takes a new
// replica identity).
func Repair(dir string, opts *Options, from uint64) (*RepairInfo, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	in, err := Inspect(dir, &InspectOptions{MaxRecordBytes: o.MaxRecordBytes, FS: o.FS})
	if err != nil {
		return nil, err
	}
	first, next, chain := in.keepChain(from)
	info := &RepairInfo{First: first, Next: next}
	damaged := false
	for _, p := range in.Problems {
		damaged = damaged || p.Kind == ProblemCorrupt || p.Kind == ProblemTornTail
	}
	if !damaged && first == in.First && next == in.Next {
		return info, nil
	}
	info.Changed = true
	r := &repairer{fs: o.FS, dir: dir, maxLen: o.MaxRecordBytes, info: info, names: map[string]bool{}}
	names, err := o.FS.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: repair: list %s: %w", dir, err)
	}
	for _, n := range names {
		r.names[n] = true
	}
	inChain := map[int]int{}
	for _, lk := range chain {
		inChain[lk.seg] = lk.run
	}
	// Files that keep nothing leave the log first (oldest first), so that
	// what remains is always a contiguous log or the same repair to redo.
	for i := range in.Segments {
		if _, ok := inChain[i]; !ok {
			if err := r.moveAside(&in.Segments[i]); err != nil {
				return info, err
			}
		}
	}
	for _, lk := range chain {
		seg := &in.Segments[lk.seg]
		run := seg.Runs[lk.run]
		if err := r.keepPart(seg, run, max(first, run.First), min(next, run.Next)); err != nil {
			return info, err
		}
	}
	if len(chain) == 0 && !r.names[segmentName(first)+".log"] {
		if err := writeFileAtomic(o.FS, storePath(dir, first), encodeHeader(first)); err != nil {
			return info, err
		}
	}
	if err := o.FS.SyncDir(dir); err != nil {
		return info, fmt.Errorf("wal: repair: sync dir %s: %w", dir, err)
	}
	for i := range in.Segments {
		for _, run := range in.Segments[i].Runs {
			info.Before += span(run.First, run.Next, 0, first)
			info.Dropped += span(run.First, run.Next, next, ^uint64(0))
		}
	}
	return info, nil
}

type repairer struct {
	fs     FS
	dir    string
	maxLen int
	info   *RepairInfo
	names  map[string]bool
}

// span is the size of [a, b) ∩ [lo, hi).
func span(a, b, lo, hi uint64) uint64 {
	a, b = max(a, lo), min(b, hi)
	if a >= b {
		return 0
	}
	return b - a
}

func intact(seg *SegmentReport) uint64 {
	var n uint64
	for _, r := range seg.Runs {
		n += r.Next - r.First
	}
	return n
}

// moveAside renames a whole store file out of the log and removes its
// index.
func (r *repairer) moveAside(seg *SegmentReport) error {
	name := sideName(r.names, filepath.Base(seg.Store)+".aside")
	side := filepath.Join(r.dir, name)
	if err := r.fs.Rename(seg.Store, side); err != nil {
		return fmt.Errorf("wal: repair: move %s aside: %w", seg.Store, err)
	}
	if err := r.fs.SyncDir(r.dir); err != nil {
		return fmt.Errorf("wal: repair: sync dir %s: %w", r.dir, err)
	}
	r.info.SetAside = append(r.info.SetAside, SetAside{Path: side, From: seg.Store, Bytes: seg.Bytes, Records: intact(seg), Whole: true})
	return r.removeIndex(seg)
}

func (r *repairer) removeIndex(seg *SegmentReport) error {
	if err := r.fs.Remove(indexPath(r.dir, seg.Base)); err != nil && !isNotExist(err) {
		return fmt.Errorf("wal: repair: remove index of %s: %w", seg.Store, err)
	}
	return nil
}

// keepPart makes the records [ka, kb) of run (in seg) a segment of the
// log, setting the rest of seg's bytes aside.
func (r *repairer) keepPart(seg *SegmentReport, run Run, ka, kb uint64) error {
	f, err := r.fs.OpenFile(seg.Store, osReadRW, 0)
	if err != nil {
		return fmt.Errorf("wal: repair: open %s: %w", seg.Store, err)
	}
	defer f.Close()
	pa, pb, err := r.positions(f, seg, run, ka, kb)
	if err != nil {
		return err
	}
	dropped := intact(seg) - (kb - ka)
	dataEnd := seg.Bytes - seg.Preallocated // zeros written ahead are not data
	switch {
	case ka == seg.Base && pa == headerSize && pb == dataEnd && len(seg.Problems) == 0:
		return nil // whole and clean: untouched
	case ka == seg.Base && pa == headerSize:
		if pb == dataEnd {
			return r.removeIndex(seg) // only its index was in question
		}
		// A prefix: copy the rest aside, then cut.
		name := sideName(r.names, fmt.Sprintf("%s.log.cut-%d", segmentName(seg.Base), pb))
		side := filepath.Join(r.dir, name)
		if err := copyRange(r.fs, f, side, pb, seg.Bytes); err != nil {
			return err
		}
		if err := r.fs.SyncDir(r.dir); err != nil {
			return fmt.Errorf("wal: repair: sync dir %s: %w", r.dir, err)
		}
		if err := f.Truncate(pb); err != nil {
			return fmt.Errorf("wal: repair: truncate %s to %d: %w", seg.Store, pb, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("wal: repair: sync %s: %w", seg.Store, err)
		}
		r.info.SetAside = append(r.info.SetAside, SetAside{Path: side, From: seg.Store, Bytes: seg.Bytes - pb, Records: dropped})
		return r.removeIndex(seg)
	}
	// The kept part starts inside the file: a new segment based at ka with
	// the same frames (their checksums hold the offset, not the position),
	// then the old file aside.
	newPath := storePath(r.dir, ka)
	err = writeFileAtomicFrom(r.fs, newPath, func(out File) error {
		if _, err := out.WriteAt(encodeHeader(ka), 0); err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for pos := pa; pos < pb; {
			n := min(int64(len(buf)), pb-pos)
			if _, err := f.ReadAt(buf[:n], pos); err != nil {
				return err
			}
			if _, err := out.WriteAt(buf[:n], headerSize+pos-pa); err != nil {
				return err
			}
			pos += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.names[filepath.Base(newPath)] = true
	if err := r.fs.SyncDir(r.dir); err != nil {
		return fmt.Errorf("wal: repair: sync dir %s: %w", r.dir, err)
	}
	if err := r.removeIndex(&SegmentReport{Base: ka}); err != nil {
		return err
	}
	name := sideName(r.names, filepath.Base(seg.Store)+".aside")
	side := filepath.Join(r.dir, name)
	if err := r.fs.Rename(seg.Store, side); err != nil {
		return fmt.Errorf("wal: repair: move %s aside: %w", seg.Store, err)
	}
	r.info.SetAside = append(r.info.SetAside, SetAside{Path: side, From: seg.Store, Bytes: seg.Bytes, Records: dropped, Whole: true})
	return r.removeIndex(seg)
}

// positions finds the store positions where record ka starts and record
// kb-1 ends, within run.
func (r *repairer) positions(f File, seg *SegmentReport, run Run, ka, kb uint64) (pa, pb int64, err error) {
	pa, pb = -1, -1
	if kb == run.CompleteNext {
		pb = run.CompleteEnd
	}
	res, err := scanFrom(f, seg.Base, run.Pos, int(run.First-seg.Base), run.End, r.maxLen, func(i int, pos int64, _ []byte) error {
		switch seg.Base + uint64(i) {
		case ka:
			pa = pos
		case kb:
			if pb < 0 {
				pb = pos
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("wal: repair: read %s: %w", seg.Store, err)
	}
	if pb < 0 && seg.Base+uint64(res.count) == kb {
		pb = res.end
	}
	if pa < 0 || pb < pa {
		return 0, 0, fmt.Errorf("wal: repair: records %d..%d not found in %s (changed while repairing?)", ka, kb, seg.Store)
	}
	return pa, pb, nil
}
