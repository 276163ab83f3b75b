package wal

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// readTail reads what t returns until io.EOF.
func readTail(t *testing.T, tl *Tail) []uint64 {
	t.Helper()
	var offs []uint64
	for {
		off, got, err := tl.Next()
		if err == io.EOF {
			return offs
		}
		if err != nil {
			t.Fatalf("Next after %v: %v", offs, err)
		}
		if !bytes.Equal(got, rec(off)) {
			t.Fatalf("record %d = %q", off, got)
		}
		offs = append(offs, off)
	}
}

func TestTailReadsAClosedLogFromEveryOffset(t *testing.T) {
	dir, _, h := buildLog(t, 120)
	for _, withIndex := range []bool{true, false} {
		if !withIndex {
			idx, _ := filepath.Glob(filepath.Join(dir, "*.index"))
			for _, p := range idx {
				os.Remove(p)
			}
		}
		for from := uint64(0); from <= h.acked; from++ {
			offs := readTail(t, NewTail(dir, from, nil))
			if uint64(len(offs)) != h.acked-from || (len(offs) > 0 && offs[0] != from) {
				t.Fatalf("index %v, from %d: read %d records starting %v", withIndex, from, len(offs), offs[:min(len(offs), 1)])
			}
		}
	}
}

// TestTailFollowsALiveLog: a Tail reading beside the writing Log sees every
// record in order, across rolls, and only whole Appends.
func TestTailFollowsALiveLog(t *testing.T) {
	dir := memDir(t)
	l := mustOpen(t, dir, &Options{SegmentBytes: 1024})
	defer l.Close()
	tl := NewTail(dir, 0, nil)
	h := &history{}
	var got []uint64
	for round := 0; round < 20; round++ {
		writeGroups(t, l, h, l.NextOffset()+7)
		got = append(got, readTail(t, tl)...)
		if uint64(len(got)) != l.NextOffset() {
			t.Fatalf("round %d: read %d records, log has %d", round, len(got), l.NextOffset())
		}
	}
	for i, off := range got {
		if off != uint64(i) {
			t.Fatalf("record %d read as offset %d", i, off)
		}
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("only %d segments: no roll was followed", len(l.Segments()))
	}
	// Truncated below: gone.
	if err := l.TruncateFront(l.Segments()[2].Base); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewTail(dir, 0, nil).Next(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Next below the first offset: %v", err)
	}
}

func TestTailReportsCorruption(t *testing.T) {
	for _, seg := range []int{1, -1} {
		dir, _, h, bad := damagedLog(t, seg)
		tl := NewTail(dir, 0, nil)
		n := 0
		var err error
		for {
			var off uint64
			off, _, err = tl.Next()
			if err != nil {
				break
			}
			if off >= bad {
				t.Fatalf("segment %d: returned record %d past the damage at %d", seg, off, bad)
			}
			n++
		}
		if !errors.Is(err, ErrCorrupt) || uint64(n) != groupStartOf(h, bad) {
			t.Fatalf("segment %d: read %d records, then %v; want %d then ErrCorrupt", seg, n, err, groupStartOf(h, bad))
		}
		if !strings.Contains(err.Error(), ".log") {
			t.Fatalf("error names no file: %v", err)
		}
	}
}

// TestTailAndInspectBesideBusyWriter: appenders keep committing into the
// zeros written ahead while a Tail follows and Inspect looks: neither
// reports damage, and the Tail returns every record in order.
func TestTailAndInspectBesideBusyWriter(t *testing.T) {
	dir := memDir(t)
	l := mustOpen(t, dir, &Options{SegmentBytes: 1 << 20, Sync: SyncAlways})
	const n = 200000
	var wg sync.WaitGroup
	wrote := make(chan struct{}) // closed when the writer stops
	wg.Go(func() {
		defer close(wrote)
		for off := uint64(0); off < n; off++ {
			if _, err := l.Append(rec(off)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	tl := NewTail(dir, 0, nil)
	next, stopped := uint64(0), false
	for looks := 0; next < n; looks++ {
		off, got, err := tl.Next()
		if err == io.EOF {
			if stopped { // everything is on disk: nothing more will come
				t.Fatalf("the Tail read %d of %d records", next, n)
			}
			select {
			case <-wrote:
				stopped = true // one more look, after the last Append
				continue
			default:
			}
			if looks%20 == 0 {
				in, err := Inspect(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				if in.Corrupt() {
					t.Fatalf("Inspect beside the writer found damage: %+v", in.Problems)
				}
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			t.Fatalf("Next after %d: %v", next, err)
		}
		if off != next || !bytes.Equal(got, rec(off)) {
			t.Fatalf("read record %d (%q), want %d", off, got, next)
		}
		next++
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(segFiles(t, dir, "log")) < 3 {
		t.Fatal("no roll happened while the Tail read")
	}
}
