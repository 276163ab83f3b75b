package wal

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// damagedLog builds a closed log and flips a byte in the payload of record
// k of segment seg (-1: the last), which has intact records after it.
func damagedLog(t *testing.T, seg int) (dir string, o *Options, h *history, bad uint64) {
	t.Helper()
	dir, o, h = buildLog(t, 150)
	stores := segFiles(t, dir, "log")
	if seg < 0 {
		seg = len(stores) - 1
	}
	base := baseOf(t, stores[seg])
	pos := framePositions(t, stores[seg], base)
	k := len(pos) / 2
	b := readFile(t, stores[seg])
	b[pos[k]+frameHeaderSize] ^= 0x40
	writeFile(t, stores[seg], b)
	return dir, o, h, base + uint64(k)
}

// groupStartOf is the first offset of the Append holding off.
func groupStartOf(h *history, off uint64) uint64 {
	k, found := slices.BinarySearch(h.bounds, off)
	if found {
		return off
	}
	return h.bounds[k-1]
}

// readAll checks that the log holds exactly rec(off) for [first, next).
func readAll(t *testing.T, l *Log, first, next uint64) {
	t.Helper()
	if l.FirstOffset() != first || l.NextOffset() != next {
		t.Fatalf("log holds [%d, %d), want [%d, %d)", l.FirstOffset(), l.NextOffset(), first, next)
	}
	for off := first; off < next; off++ {
		got, err := l.Read(off)
		if err != nil || !bytes.Equal(got, rec(off)) {
			t.Fatalf("Read(%d) = %q, %v", off, got, err)
		}
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestInspectIsReadOnlyAndFindsDamage(t *testing.T) {
	for _, seg := range []int{1, -1} {
		dir, _, h, bad := damagedLog(t, seg)
		before := dirState(t, dir)
		var seen []uint64
		in, err := Inspect(dir, &InspectOptions{OnRecord: func(off uint64, rec []byte) error {
			seen = append(seen, off)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if after := dirState(t, dir); !maps.Equal(before, after) {
			t.Fatal("Inspect changed the directory")
		}
		if !in.Corrupt() {
			t.Fatalf("segment %d: no corruption found: %+v", seg, in.Problems)
		}
		want := groupStartOf(h, bad)
		if in.First != 0 || in.Next != want || len(seen) != int(want) || (len(seen) > 0 && seen[len(seen)-1] != want-1) {
			t.Fatalf("segment %d: Inspect says [%d, %d), %d records seen; want [0, %d)", seg, in.First, in.Next, len(seen), want)
		}
		if first, next := in.Keep(0); first != 0 || next != want {
			t.Fatalf("Keep(0) = [%d, %d), want [0, %d)", first, next, want)
		}
		if first, next := in.Keep(bad + 1); first != bad+1 || next != h.acked {
			t.Fatalf("Keep(%d) = [%d, %d), want up to %d", bad+1, first, next, h.acked)
		}
	}
}

func TestInspectCleanLog(t *testing.T) {
	dir, _, h := buildLog(t, 100)
	in, err := Inspect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Problems) != 0 || in.Next != h.acked || in.Records != h.acked {
		t.Fatalf("clean log: %+v", in)
	}
}

func TestRepairKeepsWhatPrecedesTheDamage(t *testing.T) {
	for _, seg := range []int{1, -1} {
		dir, o, h, bad := damagedLog(t, seg)
		if seg < 0 {
			if _, err := Open(dir, o); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open of the damaged log: %v", err)
			}
		}
		info, err := Repair(dir, o, 0)
		if err != nil {
			t.Fatal(err)
		}
		keep := groupStartOf(h, bad)
		if !info.Changed || info.First != 0 || info.Next != keep || len(info.SetAside) == 0 {
			t.Fatalf("segment %d: %+v", seg, info)
		}
		// Every intact record after the damage is counted as dropped: all
		// written but the kept ones and the damaged one.
		if info.Dropped != h.acked-keep-1 {
			t.Fatalf("segment %d: Dropped %d, want %d", seg, info.Dropped, h.acked-keep-1)
		}
		for _, sa := range info.SetAside {
			if st, err := os.Stat(sa.Path); err != nil || st.Size() != sa.Bytes {
				t.Fatalf("side file %+v: %v", sa, err)
			}
		}
		l := mustOpen(t, dir, o)
		readAll(t, l, 0, keep)
		checkHealthy(t, l, dir, o, &history{bounds: slices.Clone(h.bounds)})
		again, err := Repair(dir, o, 0)
		if err != nil || again.Changed {
			t.Fatalf("second Repair: %+v, %v", again, err)
		}
	}
}

// TestRepairFromKeepsWhatFollows: a caller whose snapshot covers the
// damage keeps the intact records after it.
func TestRepairFromKeepsWhatFollows(t *testing.T) {
	dir, o, h, bad := damagedLog(t, -1)
	info, err := Repair(dir, o, bad+1)
	if err != nil {
		t.Fatal(err)
	}
	if info.First != bad+1 || info.Next != h.acked || info.Before != bad || info.Dropped != 0 {
		t.Fatalf("%+v (damaged record %d, written %d)", info, bad, h.acked)
	}
	l := mustOpen(t, dir, o)
	readAll(t, l, bad+1, h.acked)
	l.Close()
	// Beyond every record: an empty log that goes on from there.
	info, err = Repair(dir, o, h.acked+10)
	if err != nil || info.First != h.acked+10 || info.Next != h.acked+10 {
		t.Fatalf("%+v, %v", info, err)
	}
	l = mustOpen(t, dir, o)
	defer l.Close()
	readAll(t, l, h.acked+10, h.acked+10)
	if off, err := l.Append(rec(h.acked + 10)); err != nil || off != h.acked+10 {
		t.Fatalf("Append = %d, %v", off, err)
	}
}

// TestRepairInterrupted crashes Repair at every step; running it again
// gives the same log as an uninterrupted one, and no side file is lost.
func TestRepairInterrupted(t *testing.T) {
	dir0, o, h, bad := damagedLog(t, -1)
	for k := 1; ; k++ {
		dir := memDir(t)
		copyDir(t, dir0, dir)
		fs := newFaultFS()
		fs.crashAt = k
		fo := *o
		fo.FS = fs
		_, err := Repair(dir, &fo, bad+1)
		if err == nil {
			if k < 4 {
				t.Fatalf("Repair finished after only %d steps", k)
			}
			return
		}
		if !errors.Is(err, errCrashed) {
			t.Fatalf("step %d: %v", k, err)
		}
		if err := fs.crash(); err != nil {
			t.Fatal(err)
		}
		if _, err := Repair(dir, o, bad+1); err != nil {
			t.Fatalf("step %d: second Repair: %v", k, err)
		}
		l := mustOpen(t, dir, o)
		readAll(t, l, bad+1, h.acked)
		l.Close()
		asides, _ := filepath.Glob(filepath.Join(dir, "*.aside*"))
		if len(asides) == 0 {
			t.Fatalf("step %d: no side file left", k)
		}
	}
}
