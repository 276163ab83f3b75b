package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ProblemKind classifies what Inspect found. The values are stable (tools
// print and match them).
type ProblemKind int

const (
	// ProblemTornTail: the last segment ends in bytes a crash can leave
	// (damage with nothing intact after it). Open cuts them into a side file.
	ProblemTornTail ProblemKind = 1
	// ProblemCorrupt: bytes that do not decode where intact data was
	// written (a bad header, damage in a sealed segment, damage followed by
	// intact records, a gap between segments). Open refuses the log;
	// Repair sets the damage and what follows it aside.
	ProblemCorrupt ProblemKind = 2
	// ProblemIndexWrong: an index entry that is present (not zero) and
	// disagrees with its store. Open or the first read rebuilds the index
	// (a cache), but something wrote wrong bytes.
	ProblemIndexWrong ProblemKind = 3
	// ProblemIndexIncomplete: an index that is missing, short, or has zero
	// entries where records are (a crash before the cache was written).
	// Open rebuilds it.
	ProblemIndexIncomplete ProblemKind = 4
	// ProblemLeftover: a temporary file or an index without its store,
	// which Open removes.
	ProblemLeftover ProblemKind = 5
)

func (k ProblemKind) String() string {
	switch k {
	case ProblemTornTail:
		return "torn tail"
	case ProblemCorrupt:
		return "corrupt"
	case ProblemIndexWrong:
		return "index wrong"
	case ProblemIndexIncomplete:
		return "index incomplete"
	case ProblemLeftover:
		return "leftover file"
	}
	return fmt.Sprintf("problem(%d)", int(k))
}

// Problem is one finding of Inspect.
type Problem struct {
	Kind   ProblemKind
	Path   string // the file
	Byte   int64  // position in Path where it starts (-1: the whole file)
	Record uint64 // log offset concerned (when Byte concerns a record)
	Reason string
}

// SegmentReport is what Inspect found in one segment.
type SegmentReport struct {
	Base    uint64
	Store   string // path of the store file
	Index   string // path of the index file; "" when missing
	Bytes   int64  // store size on disk
	Records int    // records in complete Appends before any damage
	End     int64  // store position just after them
	// Preallocated counts the zeros after End that the log wrote ahead of
	// its records (last segment only; doc.go, "Preallocation"): neither
	// data nor a problem.
	Preallocated int64
	// Runs are the stretches of intact records, including any after
	// damage (what Repair can keep).
	Runs     []Run
	Problems []Problem
}

// Inspection is what Inspect found in a log directory.
type Inspection struct {
	Dir      string
	Segments []SegmentReport
	Problems []Problem // every problem, in file order (also in Segments)
	// First and Next bound the records Open would hold; after a
	// ProblemCorrupt Next is where the intact, contiguous log ends.
	First, Next uint64
	Records     uint64 // records in [First, Next)
}

// Corrupt reports whether the log holds damage that Open refuses.
func (in *Inspection) Corrupt() bool { return in.count(ProblemCorrupt) > 0 }

func (in *Inspection) count(k ProblemKind) int {
	n := 0
	for _, p := range in.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}

// InspectOptions configure Inspect. The zero value (and nil) means
// defaults.
type InspectOptions struct {
	// MaxRecordBytes as in Options: 0 = DefaultMaxRecordBytes. Use the
	// value the log was written with.
	MaxRecordBytes int
	// OnRecord, when set, is called for every record Open would hold, in
	// offset order; rec is valid during the call only. An error stops
	// Inspect and is returned.
	OnRecord func(offset uint64, rec []byte) error
	// FS: nil = the operating system's.
	FS FS
}

// withDefaults returns a copy of the options (nil: none) with the
// defaults filled in.
func (opts *InspectOptions) withDefaults() InspectOptions {
	var o InspectOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxRecordBytes <= 0 || o.MaxRecordBytes > MaxRecordLimit {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	return o
}

// Inspect reads the log in dir and reports, per segment, what is intact,
// torn or damaged. It takes no lock and changes nothing, so it is safe on
// the directory of a running log (whose last segment may grow meanwhile:
// what Inspect sees is what was on disk as it read). It verifies every
// frame and every index entry. Only I/O failures are errors; damage is in
// the result.
func Inspect(dir string, opts *InspectOptions) (*Inspection, error) {
	o := opts.withDefaults()
	names, err := o.FS.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: inspect %s: %w", dir, err)
	}
	in := &Inspection{Dir: dir}
	listing := listDir(names)
	for _, name := range listing.tmps {
		in.Problems = append(in.Problems, Problem{Kind: ProblemLeftover, Path: joinPath(dir, name), Byte: -1, Reason: "temporary file of an unfinished write"})
	}
	for _, name := range listing.orphans {
		in.Problems = append(in.Problems, Problem{Kind: ProblemLeftover, Path: joinPath(dir, name), Byte: -1, Reason: "index without its store"})
	}
	bases := listing.bases
	if len(bases) > 0 {
		in.First, in.Next = bases[0], bases[0]
	}
	contiguous := true // the log Open would hold goes on
	for i, base := range bases {
		rep, err := inspectSegment(dir, base, i == len(bases)-1, o)
		if err != nil {
			return nil, err
		}
		if base != in.Next && contiguous {
			rep.Problems = append([]Problem{{Kind: ProblemCorrupt, Path: rep.Store, Byte: 0, Record: in.Next,
				Reason: fmt.Sprintf("segment starts at offset %d, the log before it ends at %d (a gap or an overlap)", base, in.Next)}}, rep.Problems...)
			contiguous = false
		}
		if contiguous && o.OnRecord != nil && rep.Records > 0 {
			if err := replayRecords(dir, base, rep, o); err != nil {
				return nil, err
			}
		}
		if contiguous {
			in.Next = base + uint64(rep.Records)
			for _, p := range rep.Problems {
				if p.Kind == ProblemCorrupt {
					contiguous = false
				}
			}
		}
		in.Segments = append(in.Segments, *rep)
		in.Problems = append(in.Problems, rep.Problems...)
	}
	in.Records = in.Next - in.First
	return in, nil
}

func joinPath(dir, name string) string { return strings.TrimSuffix(dir, "/") + "/" + name }

// liveLooks bounds the looks inspectSegment takes at a last segment that
// seems damaged, lookPause apart (Tail takes two, and looks again at its
// next call if they differ): beside a running log, the zeros written ahead
// of its records fill up while they are read, and a commit caught in the
// middle (zeros or half a frame, then records written since) looks like
// damage followed by intact data. Damage stays; a write completes. It is
// reported when two looks in a row agree.
const (
	liveLooks = 4
	lookPause = 5 * time.Millisecond
)

// inspectSegment checks one segment: header, every frame, the index, and
// (last segment) what follows the last complete Append.
func inspectSegment(dir string, base uint64, last bool, o InspectOptions) (*SegmentReport, error) {
	rep, err := inspectLook(dir, base, last, o)
	// Shorter than its size said: the writer cut the zeros ahead of its
	// records (a roll) while they were read.
	for look := 1; errors.Is(err, io.ErrUnexpectedEOF) && look < liveLooks; look++ {
		rep, err = inspectLook(dir, base, last, o)
	}
	if err != nil || !last || !rep.hasCorrupt() {
		return rep, err
	}
	for look := 1; look < liveLooks; look++ {
		time.Sleep(lookPause)
		again, err := inspectLook(dir, base, last, o)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !again.hasCorrupt() {
			return again, nil
		}
		if again.End == rep.End && again.Records == rep.Records {
			return again, nil // the same damage twice: confirmed
		}
		rep = again
	}
	// Damage seen at a new place each time: a log being written, whose
	// commits every look caught in the middle. Not confirmed.
	for i := range rep.Problems {
		if p := &rep.Problems[i]; p.Kind == ProblemCorrupt {
			p.Kind, p.Reason = ProblemTornTail, "a write in progress (each look found its end elsewhere): "+p.Reason
		}
	}
	return rep, nil
}

// hasCorrupt reports whether the segment holds damage that Open refuses.
func (r *SegmentReport) hasCorrupt() bool {
	for _, p := range r.Problems {
		if p.Kind == ProblemCorrupt {
			return true
		}
	}
	return false
}

// inspectLook is one look at a segment (inspectSegment).
func inspectLook(dir string, base uint64, last bool, o InspectOptions) (*SegmentReport, error) {
	rep := &SegmentReport{Base: base, Store: storePath(dir, base), Index: indexPath(dir, base)}
	f, err := o.FS.OpenFile(rep.Store, osReadOnly, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: inspect: open %s: %w", rep.Store, err)
	}
	defer f.Close()
	if rep.Bytes, err = f.Size(); err != nil {
		return nil, fmt.Errorf("wal: inspect: stat %s: %w", rep.Store, err)
	}
	idx, err := readIndexFile(o.FS, rep.Index, maxIndexBytes(rep.Bytes))
	if err != nil {
		return nil, err
	}
	ipath := rep.Index
	if idx == nil {
		rep.Index = ""
	}
	corrupt := func(at int64, record uint64, reason string) {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemCorrupt, Path: rep.Store, Byte: at, Record: record, Reason: reason})
	}
	if err := readHeader(f, rep.Store, base, rep.Bytes); err != nil {
		ce, ok := err.(*CorruptError)
		if !ok {
			return nil, err
		}
		corrupt(0, base, "bad segment header: "+ce.Reason)
		rep.End = 0
		return rep, nil
	}
	var positions []int64
	res, err := scanStore(f, base, rep.Bytes, o.MaxRecordBytes, func(i int, pos int64) error {
		positions = append(positions, pos)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("wal: inspect %s: %w", rep.Store, err)
	}
	rep.Records, rep.End = res.count, res.end
	if last {
		pre, err := preallocated(f, rep.Bytes, res, idx)
		if err != nil {
			return nil, fmt.Errorf("wal: inspect %s: %w", rep.Store, err)
		}
		if pre {
			rep.Preallocated = rep.Bytes - res.end
		}
	}
	if res.end < rep.Bytes-rep.Preallocated {
		reason := string(res.problem)
		if reason == "" {
			reason = "incomplete Append"
		}
		switch {
		case !last:
			corrupt(res.stopAt, base+uint64(res.count), reason+" in a sealed segment")
		default:
			err := classifyTail(f, rep.Store, base, rep.Bytes, res, idx, o.MaxRecordBytes)
			if ce, ok := err.(*CorruptError); ok {
				corrupt(ce.Offset, ce.Record, ce.Reason+"; followed by "+ce.Follows)
			} else if err != nil {
				return nil, err
			} else {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemTornTail, Path: rep.Store, Byte: res.end, Record: base + uint64(res.count),
					Reason: fmt.Sprintf("%s; Open cuts the last %d bytes (into a side file)", reason, rep.Bytes-res.end)})
			}
		}
	}
	if rep.Runs, err = salvage(f, base, rep.Bytes-rep.Preallocated, idx, o.MaxRecordBytes); err != nil {
		return nil, fmt.Errorf("wal: inspect %s: %w", rep.Store, err)
	}
	rep.Problems = append(rep.Problems, checkIndex(rep, ipath, idx, positions, last, res.end == rep.Bytes-rep.Preallocated)...)
	return rep, nil
}

// checkIndex compares an index with the record positions of its store.
// Entries past the records are judged only when the store scanned cleanly
// to its end (else they index records the damage hides).
func checkIndex(rep *SegmentReport, ipath string, idx []byte, positions []int64, last, storeOK bool) []Problem {
	if rep.Index == "" {
		if len(positions) == 0 {
			return nil
		}
		return []Problem{{Kind: ProblemIndexIncomplete, Path: ipath, Byte: -1, Reason: "index file missing"}}
	}
	var out []Problem
	missing := 0
	for i, want := range positions {
		if (i+1)*indexEntrySize > len(idx) {
			missing += len(positions) - i
			break
		}
		e := idx[i*indexEntrySize:]
		rel, pos := binary.LittleEndian.Uint32(e[0:4]), int64(binary.LittleEndian.Uint32(e[4:8]))
		switch {
		case rel == uint32(i) && pos == want:
		case rel == 0 && pos == 0:
			missing++
		default:
			if len(out) < 8 { // the first few say enough
				out = append(out, Problem{Kind: ProblemIndexWrong, Path: rep.Index, Byte: int64(i) * indexEntrySize, Record: rep.Base + uint64(i),
					Reason: fmt.Sprintf("entry says (%d, %d), the store has the record at %d", rel, pos, want)})
			}
		}
	}
	if missing > 0 {
		out = append(out, Problem{Kind: ProblemIndexIncomplete, Path: rep.Index, Byte: -1,
			Reason: fmt.Sprintf("%d of %d entries missing (zero or past the end of the file)", missing, len(positions))})
	}
	for i := len(positions); storeOK && (i+1)*indexEntrySize <= len(idx); i++ {
		e := idx[i*indexEntrySize:]
		if binary.LittleEndian.Uint64(e) == 0 {
			continue
		}
		if last {
			// Entries written for records a torn tail lost, or garbage.
			out = append(out, Problem{Kind: ProblemIndexIncomplete, Path: rep.Index, Byte: int64(i) * indexEntrySize, Record: rep.Base + uint64(i),
				Reason: "entries past the last complete Append (Open clears them)"})
		} else {
			out = append(out, Problem{Kind: ProblemIndexWrong, Path: rep.Index, Byte: int64(i) * indexEntrySize, Record: rep.Base + uint64(i),
				Reason: "entries past the segment's last record"})
		}
		break
	}
	if storeOK && !last && len(idx) > len(positions)*indexEntrySize && len(out) == 0 {
		out = append(out, Problem{Kind: ProblemIndexIncomplete, Path: rep.Index, Byte: int64(len(positions)) * indexEntrySize,
			Reason: "sealed index longer than its records (a zero tail; Open rebuilds it)"})
	}
	return out
}

// replayRecords calls o.OnRecord for the records of a segment's complete
// Appends before any damage.
func replayRecords(dir string, base uint64, rep *SegmentReport, o InspectOptions) error {
	f, err := o.FS.OpenFile(rep.Store, osReadOnly, 0)
	if err != nil {
		return fmt.Errorf("wal: inspect: open %s: %w", rep.Store, err)
	}
	defer f.Close()
	_, err = scanFrom(f, base, headerSize, 0, rep.End, o.MaxRecordBytes, func(i int, _ int64, payload []byte) error {
		return o.OnRecord(base+uint64(i), payload)
	})
	return err
}

// Keep returns the records [first, next) that Repair keeps when asked to
// keep from offset from: the longest stretch of intact, contiguous records
// starting at max(from, the first segment's base), across segments, cut
// back to the end of its last whole Append. first == next when there is
// no intact record there.
func (in *Inspection) Keep(from uint64) (first, next uint64) {
	first, next, _ = in.keepChain(from)
	return first, next
}

// link is one segment's part of the kept stretch: a run of it.
type link struct{ seg, run int }

func (in *Inspection) keepChain(from uint64) (first, next uint64, chain []link) {
	first = from
	if len(in.Segments) > 0 {
		first = max(from, in.Segments[0].Base)
	}
	next = first
	// The run holding first; of overlapping ones (a Repair interrupted
	// between its renames) the one in the newest file.
	si, ri := -1, -1
	for i := range in.Segments {
		for j, r := range in.Segments[i].Runs {
			if r.First <= first && first < r.Next {
				si, ri = i, j
			}
		}
	}
	if si < 0 {
		return first, first, nil
	}
	for {
		seg := &in.Segments[si]
		r := seg.Runs[ri]
		if r.CompleteNext <= first {
			break
		}
		next = r.CompleteNext
		chain = append(chain, link{si, ri})
		// Continue into the next segment only if this run ends it with a
		// whole Append and the next one starts where it ends.
		if r.End != seg.Bytes || r.CompleteNext != r.Next || si+1 >= len(in.Segments) {
			break
		}
		nextSeg := &in.Segments[si+1]
		if len(nextSeg.Runs) == 0 || nextSeg.Base != r.Next || nextSeg.Runs[0].First != r.Next || nextSeg.Runs[0].Pos != headerSize {
			break
		}
		si, ri = si+1, 0
	}
	return first, next, chain
}
