package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// groupSize is the number of records in the g-th Append of a test log, so
// that atomicity of multi-record Appends is exercised everywhere.
func groupSize(g int) int { return g%3 + 1 }

// history describes what a test wrote: the Append boundaries (offsets where
// an Append starts, plus the end) and each record's frame position.
type history struct {
	bounds []uint64 // sorted; bounds[0] == 0
	acked  uint64   // every offset below was acknowledged under SyncAlways
}

func (h *history) isBound(off uint64) bool {
	_, ok := slices.BinarySearch(h.bounds, off)
	return ok
}

// writeGroups appends groups starting at offset from until at least n
// records are written; it returns the history.
func writeGroups(t testing.TB, l *Log, h *history, n uint64) {
	t.Helper()
	if len(h.bounds) == 0 {
		h.bounds = []uint64{l.NextOffset()}
	}
	for g := len(h.bounds) - 1; l.NextOffset() < n; g++ {
		first := l.NextOffset()
		recs := make([][]byte, groupSize(g))
		for i := range recs {
			recs[i] = rec(first + uint64(i))
		}
		got, err := l.Append(recs...)
		if err != nil {
			t.Fatalf("Append at %d: %v", first, err)
		}
		if got != first {
			t.Fatalf("Append returned %d, want %d", got, first)
		}
		h.bounds = append(h.bounds, first+uint64(len(recs)))
		h.acked = first + uint64(len(recs))
	}
}

// checkProperty reopens dir and checks the recovery property: the log is a
// prefix of what was written, ends on an Append boundary, and holds at least
// minNext records. It returns the reopened log.
func checkProperty(t testing.TB, dir string, o *Options, h *history, minNext uint64) *Log {
	t.Helper()
	// The reopened log is written by checkHealthy and closed (which syncs),
	// so it need not pay an fdatasync per Append.
	fast := Options{}
	if o != nil {
		fast = *o
	}
	fast.Sync = SyncNever
	// Nor a real fsync per file: a fault FS that never fails only models
	// durability (the real file system has its own tests).
	fast.FS = newFaultFS()
	l, err := Open(dir, &fast)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	next := l.NextOffset()
	if next < minNext {
		l.Close()
		t.Fatalf("after reopen NextOffset = %d, want >= %d (acknowledged records lost)", next, minNext)
	}
	if !h.isBound(next) {
		l.Close()
		t.Fatalf("after reopen NextOffset = %d is inside an Append (bounds %v)", next, h.bounds)
	}
	for off := l.FirstOffset(); off < next; off++ {
		b, err := l.Read(off)
		if err != nil {
			l.Close()
			t.Fatalf("Read(%d) after reopen: %v", off, err)
		}
		if !bytes.Equal(b, rec(off)) {
			l.Close()
			t.Fatalf("Read(%d) after reopen = %q, want %q", off, b, rec(off))
		}
	}
	if err := l.Verify(); err != nil {
		l.Close()
		t.Fatalf("Verify after reopen: %v", err)
	}
	return l
}

// checkHealthy appends after recovery, reopens once more and checks all.
func checkHealthy(t testing.TB, l *Log, dir string, o *Options, h *history) {
	t.Helper()
	next := l.NextOffset()
	// Forget the bounds past what survived, then write on.
	k, _ := slices.BinarySearch(h.bounds, next)
	h.bounds = h.bounds[:k+1]
	writeGroups(t, l, h, next+20)
	want := l.NextOffset()
	if err := l.Close(); err != nil {
		t.Fatalf("Close after recovery: %v", err)
	}
	l = checkProperty(t, dir, o, h, want)
	defer l.Close()
	if l.NextOffset() != want {
		t.Fatalf("clean reopen NextOffset = %d, want %d", l.NextOffset(), want)
	}
	if ri := l.Recovery(); ri.CutBytes != 0 {
		t.Fatalf("clean reopen cut %d bytes", ri.CutBytes)
	}
}

// buildLog writes a closed log of about n records over several segments.
func buildLog(t testing.TB, n uint64) (dir string, o *Options, h *history) {
	t.Helper()
	dir = memDir(t)
	o = &Options{SegmentBytes: 2048}
	l := mustOpen(t, dir, o)
	h = &history{}
	writeGroups(t, l, h, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, o, h
}

func segFiles(t testing.TB, dir, ext string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*."+ext))
	if err != nil || len(names) == 0 {
		t.Fatalf("no %s files in %s", ext, dir)
	}
	slices.Sort(names)
	return names
}

// framePositions scans a store and returns each record's frame position
// and the Append each ends (the boundaries, as positions).
func framePositions(t testing.TB, path string, base uint64) []int64 {
	t.Helper()
	f, err := OSFS{}.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	var pos []int64
	if _, err := scanStore(f, base, size, DefaultMaxRecordBytes, func(i int, p int64) error {
		pos = append(pos, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return pos
}

func baseOf(t testing.TB, path string) uint64 {
	b, _, ok := parseSegmentName(filepath.Base(path))
	if !ok {
		t.Fatalf("bad segment name %s", path)
	}
	return b
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverTornTailEveryByte cuts the last segment at every byte offset
// of its last frames and checks exactly the complete Appends survive, with
// the cut bytes kept in a side file.
func TestRecoverTornTailEveryByte(t *testing.T) {
	dir0, o, h := buildLog(t, 120)
	stores := segFiles(t, dir0, "log")
	last := stores[len(stores)-1]
	base := baseOf(t, last)
	pos := framePositions(t, last, base)
	full := readFile(t, last)
	if len(pos) < 4 {
		t.Fatalf("last segment has only %d records", len(pos))
	}
	from := pos[len(pos)-4]
	for cut := from; cut <= int64(len(full)); cut++ {
		dir := memDir(t)
		copyDir(t, dir0, dir)
		p := filepath.Join(dir, filepath.Base(last))
		if err := os.Truncate(p, cut); err != nil {
			t.Fatal(err)
		}
		// Expected: records whose Append ends at or before cut.
		want := base
		for i := range pos {
			end := int64(len(full))
			if i+1 < len(pos) {
				end = pos[i+1]
			}
			off := base + uint64(i) + 1
			if end <= cut && h.isBound(off) {
				want = off
			}
		}
		l := checkProperty(t, dir, o, h, want)
		if l.NextOffset() != want {
			t.Fatalf("cut at %d: NextOffset %d, want %d", cut, l.NextOffset(), want)
		}
		ri := l.Recovery()
		if keep := wantEnd(pos, base, want, int64(len(full))); keep < cut {
			if len(ri.CutFiles) != 1 || ri.CutBytes != cut-keep {
				t.Fatalf("cut at %d: recovery %+v, want %d bytes cut", cut, ri, cut-keep)
			}
			if side := readFile(t, ri.CutFiles[0]); !bytes.Equal(side, full[keep:cut]) {
				t.Fatalf("cut at %d: side file holds %d bytes, not the cut ones", cut, len(side))
			}
		} else if ri.CutBytes != 0 {
			t.Fatalf("cut at a boundary %d still cut %d bytes", cut, ri.CutBytes)
		}
		checkHealthy(t, l, dir, o, &history{bounds: slices.Clone(h.bounds)})
	}
}

// wantEnd is the store position where the record want starts (the end of
// the kept data).
func wantEnd(pos []int64, base, want uint64, size int64) int64 {
	i := int(want - base)
	if i < len(pos) {
		return pos[i]
	}
	return size
}

// dirState maps each file name of dir (but LOCK, which Open may create)
// to its contents.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		if e.Name() != "LOCK" {
			m[e.Name()] = string(readFile(t, filepath.Join(dir, e.Name())))
		}
	}
	return m
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		writeFile(t, filepath.Join(to, e.Name()), readFile(t, filepath.Join(from, e.Name())))
	}
}

// TestRecoverTable damages a closed log in one way per row and checks the
// recovery property (or the typed error, for damage recovery must refuse).
func TestRecoverTable(t *testing.T) {
	dir0, o, h := buildLog(t, 150)
	stores := segFiles(t, dir0, "log")
	if len(stores) < 3 {
		t.Fatalf("want >= 3 segments, have %d", len(stores))
	}
	lastStore := filepath.Base(stores[len(stores)-1])
	lastBase := baseOf(t, stores[len(stores)-1])
	sealedStore := filepath.Base(stores[1])
	sealedBase := baseOf(t, stores[1])
	lastIndex := lastStore[:20] + ".index"
	sealedIndex := sealedStore[:20] + ".index"
	total := h.acked
	lastPos := framePositions(t, stores[len(stores)-1], lastBase)
	sealedPos := framePositions(t, stores[1], sealedBase)
	midLast := len(lastPos) / 2

	flip := func(name string, at int64, bit uint) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			b := readFile(t, p)
			b[at] ^= 1 << bit
			writeFile(t, p, b)
		}
	}
	appendBytes := func(name string, extra []byte) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			writeFile(t, p, append(readFile(t, p), extra...))
		}
	}
	garbage := make([]byte, 300)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	// groupStart is the first offset of the Append holding off.
	groupStart := func(off uint64) uint64 {
		k, found := slices.BinarySearch(h.bounds, off)
		if found {
			return off
		}
		return h.bounds[k-1]
	}

	type row struct {
		name    string
		damage  func(t *testing.T, dir string)
		minNext uint64 // property: at least this many records survive
		exact   bool   // and exactly that many
		openErr error  // Open must fail with this instead, changing no file
		follows bool   // and say what intact data follows the damage
		readErr uint64 // if > 0: Read of this offset must fail with ErrCorrupt
		rebuilt bool   // Recovery must report a rebuilt index
	}
	rows := []row{
		{name: "clean", damage: func(*testing.T, string) {}, minNext: total, exact: true},
		{name: "garbage tail", damage: appendBytes(lastStore, garbage), minNext: total, exact: true},
		{name: "zero tail", damage: appendBytes(lastStore, make([]byte, 4096)), minNext: total, exact: true},
		{name: "tail of one marker word", damage: appendBytes(lastStore, []byte{0, 0, 0, 0x80}), minNext: total, exact: true},
		{name: "header magic", damage: flip(lastStore, 0, 0), openErr: ErrCorrupt},
		{name: "header version", damage: flip(lastStore, 8, 1), openErr: ErrCorrupt},
		{name: "header base", damage: flip(lastStore, 12, 0), openErr: ErrCorrupt},
		{name: "header checksum", damage: flip(lastStore, 21, 3), openErr: ErrCorrupt},
		{name: "sealed header base", damage: flip(sealedStore, 13, 2), openErr: ErrCorrupt},
		{name: "sealed header magic", damage: flip(sealedStore, 7, 6), openErr: ErrCorrupt},
		{name: "frame length bit", damage: flip(lastStore, lastPos[midLast], 2), openErr: ErrCorrupt, follows: true},
		{name: "frame high length bit", damage: flip(lastStore, lastPos[midLast]+3, 5), openErr: ErrCorrupt, follows: true},
		{name: "frame marker bit", damage: flip(lastStore, lastPos[midLast]+3, 7), openErr: ErrCorrupt, follows: true},
		{name: "frame last-record bit", damage: flip(lastStore, lastPos[midLast]+3, 6), openErr: ErrCorrupt, follows: true},
		{name: "frame checksum", damage: flip(lastStore, lastPos[midLast]+5, 4), openErr: ErrCorrupt, follows: true},
		{name: "frame payload", damage: flip(lastStore, lastPos[midLast]+9, 0), openErr: ErrCorrupt, follows: true},
		{name: "last frame payload", damage: flip(lastStore, lastPos[len(lastPos)-1]+8, 7),
			minNext: groupStart(lastBase + uint64(len(lastPos)-1)), exact: true},
		{name: "sealed frame payload", damage: flip(sealedStore, sealedPos[1]+10, 1),
			minNext: total, exact: true, readErr: sealedBase + 1},
		{name: "sealed last frame payload", damage: flip(sealedStore, sealedPos[len(sealedPos)-1]+9, 0), openErr: ErrCorrupt},
		{name: "sealed store garbage tail", damage: appendBytes(sealedStore, garbage), openErr: ErrCorrupt},
		{name: "sealed store cut", damage: func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, sealedStore), sealedPos[len(sealedPos)-1]+3)
		}, openErr: ErrCorrupt},
		{name: "index missing", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, lastIndex))
		}, minNext: total, exact: true, rebuilt: true},
		{name: "index zeroed", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, lastIndex)
			writeFile(t, p, make([]byte, len(readFile(t, p))))
		}, minNext: total, exact: true, rebuilt: true},
		{name: "index behind", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, lastIndex)
			writeFile(t, p, readFile(t, p)[:8*3])
		}, minNext: total, exact: true, rebuilt: true},
		{name: "index ahead", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, lastIndex)
			b := readFile(t, p)
			n := len(b) / 8
			for i := n; i < n+5; i++ {
				var e [8]byte
				putEntry(e[:], i, 40+int64(i)*50)
				b = append(b, e[:]...)
			}
			writeFile(t, p, b)
		}, minNext: total, exact: true, rebuilt: true},
		{name: "index entry wrong", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, lastIndex)
			b := readFile(t, p)
			binary.LittleEndian.PutUint32(b[8*2+4:], 999)
			writeFile(t, p, b)
		}, minNext: total, exact: true, rebuilt: true},
		{name: "index torn size", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, lastIndex)
			b := readFile(t, p)
			writeFile(t, p, b[:len(b)-3])
		}, minNext: total, exact: true, rebuilt: true},
		{name: "sealed index missing", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, sealedIndex))
		}, minNext: total, exact: true, rebuilt: true},
		{name: "sealed index zeroed", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, sealedIndex)
			writeFile(t, p, make([]byte, len(readFile(t, p))))
		}, minNext: total, exact: true, rebuilt: true},
		{name: "sealed index behind", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, sealedIndex)
			writeFile(t, p, readFile(t, p)[:16])
		}, minNext: total, exact: true, rebuilt: true},
		{name: "sealed index ahead (preallocated tail)", damage: appendBytes(sealedIndex, make([]byte, 4096)),
			minNext: total, exact: true, rebuilt: true},
		{name: "sealed index garbage", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, sealedIndex)
			writeFile(t, p, garbage[:len(readFile(t, p))%len(garbage)])
		}, minNext: total, exact: true, rebuilt: true},
		{name: "orphan index and tmp files", damage: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "99999999999999999999.index"), garbage)
			writeFile(t, filepath.Join(dir, "00000000000000099999.log.tmp"), garbage)
			writeFile(t, filepath.Join(dir, "unrelated.txt"), garbage)
		}, minNext: total, exact: true},
		{name: "missing middle segment", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, sealedStore))
		}, openErr: ErrCorrupt},
		{name: "missing first segment (truncated front)", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, filepath.Base(stores[0])))
		}, minNext: total, exact: true},
		{name: "last segment is an empty new one", damage: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, segmentName(total)+".log"), encodeHeader(total))
		}, minNext: total, exact: true},
		{name: "new last segment with a wrong base", damage: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, segmentName(total+1)+".log"), encodeHeader(total+1))
		}, openErr: ErrCorrupt},
		{name: "last store shorter than its header", damage: func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, lastStore), 10)
		}, openErr: ErrCorrupt},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			dir := memDir(t)
			copyDir(t, dir0, dir)
			r.damage(t, dir)
			if r.openErr != nil {
				before := dirState(t, dir)
				l, err := Open(dir, o)
				if err == nil {
					l.Close()
					t.Fatalf("Open succeeded, want %v", r.openErr)
				}
				if !errors.Is(err, r.openErr) {
					t.Fatalf("Open: %v, want %v", err, r.openErr)
				}
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.Path == "" {
					t.Fatalf("Open: %v is not a *CorruptError with a path", err)
				}
				if r.follows != (ce.Follows != "") {
					t.Fatalf("Open: %v: Follows = %q, want it set: %v", err, ce.Follows, r.follows)
				}
				if after := dirState(t, dir); !maps.Equal(before, after) {
					t.Fatalf("a refused Open changed the directory:\nbefore %v\nafter  %v", before, after)
				}
				return
			}
			if r.readErr > 0 {
				l := mustOpen(t, dir, o)
				defer l.Close()
				if _, err := l.Read(r.readErr); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read(%d) = %v, want ErrCorrupt", r.readErr, err)
				}
				if err := l.Verify(); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Verify = %v, want ErrCorrupt", err)
				}
				return
			}
			l := checkProperty(t, dir, o, h, r.minNext)
			if r.exact && l.NextOffset() != r.minNext {
				l.Close()
				t.Fatalf("NextOffset = %d, want %d", l.NextOffset(), r.minNext)
			}
			if r.rebuilt && l.Recovery().RebuiltIndexes == 0 {
				l.Close()
				t.Fatalf("index was not rebuilt: %+v", l.Recovery())
			}
			checkHealthy(t, l, dir, o, &history{bounds: slices.Clone(h.bounds)})
		})
	}
}
