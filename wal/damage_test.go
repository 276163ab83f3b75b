package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// lastSegment returns the path, base and frame positions of the last
// segment of dir.
func lastSegment(t testing.TB, dir string) (string, uint64, []int64) {
	t.Helper()
	stores := segFiles(t, dir, "log")
	last := stores[len(stores)-1]
	base := baseOf(t, last)
	return last, base, framePositions(t, last, base)
}

// TestFlipEveryByteOfAMiddleRecord flips each byte of a record in the
// middle of the last segment, with and without its index: Open must never
// cut the intact records that follow. It refuses with a *CorruptError that
// says what follows, and changes no file.
func TestFlipEveryByteOfAMiddleRecord(t *testing.T) {
	dir0, o, _ := buildLog(t, 120)
	last, base, pos := lastSegment(t, dir0)
	if len(pos) < 6 {
		t.Fatalf("last segment has only %d records", len(pos))
	}
	k := len(pos) / 2
	from, to := pos[k], pos[k+1]
	for _, withIndex := range []bool{true, false} {
		for at := from; at < to; at++ {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				dir := memDir(t)
				copyDir(t, dir0, dir)
				p := filepath.Join(dir, filepath.Base(last))
				b := readFile(t, p)
				b[at] ^= mask
				writeFile(t, p, b)
				if !withIndex {
					os.Remove(strings.TrimSuffix(p, ".log") + ".index")
				}
				before := dirState(t, dir)
				l, err := Open(dir, o)
				if err == nil {
					l.Close()
					t.Fatalf("index %v, byte %d of record %d ^ %#x: Open cut intact records (next %d)", withIndex, at-from, base+uint64(k), mask, l.NextOffset())
				}
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.Follows == "" || ce.Record != base+uint64(k) || ce.Offset != from {
					t.Fatalf("index %v, byte %d ^ %#x: Open = %v, want a *CorruptError at record %d, byte %d, saying what follows", withIndex, at-from, mask, err, base+uint64(k), from)
				}
				if after := dirState(t, dir); !maps.Equal(before, after) {
					t.Fatalf("byte %d: a refused Open changed the directory", at-from)
				}
			}
		}
	}
}

// TestFlipEveryByteOfASealedRecord: the same damage in a sealed segment is
// never read as data: Open (which checks sealed segments only at their
// ends) accepts the log, and the read of that record, a Reader passing it,
// and Verify all report the store as corrupt.
func TestFlipEveryByteOfASealedRecord(t *testing.T) {
	dir0, o, _ := buildLog(t, 120)
	stores := segFiles(t, dir0, "log")
	sealed := stores[1]
	base := baseOf(t, sealed)
	pos := framePositions(t, sealed, base)
	k := len(pos) / 2
	if k == 0 || k+1 >= len(pos) {
		t.Fatalf("sealed segment has only %d records", len(pos))
	}
	for at := pos[k]; at < pos[k+1]; at++ {
		dir := memDir(t)
		copyDir(t, dir0, dir)
		p := filepath.Join(dir, filepath.Base(sealed))
		b := readFile(t, p)
		b[at] ^= 0x10
		writeFile(t, p, b)
		l := mustOpen(t, dir, o)
		off := base + uint64(k)
		var ce *CorruptError
		if _, err := l.Read(off); !errors.As(err, &ce) || ce.Path != p {
			l.Close()
			t.Fatalf("byte %d: Read(%d) = %v, want a *CorruptError blaming %s", at-pos[k], off, err, p)
		}
		r, err := l.NewReader(base)
		if err != nil {
			t.Fatal(err)
		}
		for {
			o, _, err := r.Next()
			if err == nil && o >= off {
				t.Fatalf("byte %d: Reader returned record %d", at-pos[k], o)
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("byte %d: Reader: %v, want ErrCorrupt", at-pos[k], err)
				}
				break
			}
		}
		if err := l.Verify(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d: Verify = %v", at-pos[k], err)
		}
		if n := l.IndexRebuilds(); n != 0 {
			t.Fatalf("byte %d: the intact index was rebuilt %d times", at-pos[k], n)
		}
		l.Close()
	}
}

// TestRecoverZeroedTailEveryByte zeroes the last segment from every byte
// of its last frames to its end (size kept, as a crash that extended the
// file without writing its blocks leaves it): Open keeps the complete
// Appends before the zeros and sets the rest aside.
func TestRecoverZeroedTailEveryByte(t *testing.T) {
	dir0, o, h := buildLog(t, 120)
	last, base, pos := lastSegment(t, dir0)
	full := readFile(t, last)
	for cut := pos[len(pos)-4]; cut < int64(len(full)); cut++ {
		dir := memDir(t)
		copyDir(t, dir0, dir)
		p := filepath.Join(dir, filepath.Base(last))
		b := slices.Clone(full)
		clear(b[cut:])
		writeFile(t, p, b)
		want := base
		for i := range pos {
			end := int64(len(full))
			if i+1 < len(pos) {
				end = pos[i+1]
			}
			if off := base + uint64(i) + 1; end <= cut && h.isBound(off) {
				want = off
			}
		}
		l := checkProperty(t, dir, o, h, want)
		if l.NextOffset() != want {
			t.Fatalf("zeros from %d: NextOffset %d, want %d", cut, l.NextOffset(), want)
		}
		ri := l.Recovery()
		keep := wantEnd(pos, base, want, int64(len(full)))
		if len(ri.CutFiles) != 1 || ri.CutBytes != int64(len(full))-keep || ri.CutAt != keep {
			t.Fatalf("zeros from %d: recovery %+v, want a cut at %d", cut, ri, keep)
		}
		if side := readFile(t, ri.CutFiles[0]); !bytes.Equal(side, b[keep:]) {
			t.Fatalf("zeros from %d: side file holds other bytes", cut)
		}
		checkHealthy(t, l, dir, o, &history{bounds: slices.Clone(h.bounds)})
	}
}

// TestSideFilesNeverOverwritten: two cuts at the same position keep both
// side files.
func TestSideFilesNeverOverwritten(t *testing.T) {
	dir, o, _ := buildLog(t, 60)
	last, _, _ := lastSegment(t, dir)
	var sides []string
	for i, tail := range [][]byte{[]byte("first torn tail"), []byte("second, other torn tail")} {
		writeFile(t, last, append(readFile(t, last), tail...))
		l := mustOpen(t, dir, o)
		ri := l.Recovery()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if len(ri.CutFiles) != 1 {
			t.Fatalf("cut %d: %+v", i, ri)
		}
		sides = append(sides, ri.CutFiles[0])
	}
	if sides[0] == sides[1] {
		t.Fatalf("both cuts wrote %s", sides[0])
	}
	if got := string(readFile(t, sides[0])); got != "first torn tail" {
		t.Fatalf("first side file now holds %q", got)
	}
	if got := string(readFile(t, sides[1])); got != "second, other torn tail" {
		t.Fatalf("second side file holds %q", got)
	}
}

// TestSealedIndexEntryCheckedOnRead: a wrong entry in the middle of a
// sealed index passes Open's cheap checks; the first read that uses it
// finds the store intact, rebuilds the index and answers; the next Open
// trusts the rebuilt index.
func TestSealedIndexEntryCheckedOnRead(t *testing.T) {
	for _, via := range []string{"Read", "Reader"} {
		t.Run(via, func(t *testing.T) {
			dir, o, h := buildLog(t, 150)
			stores := segFiles(t, dir, "log")
			base := baseOf(t, stores[1])
			ipath := strings.TrimSuffix(stores[1], ".log") + ".index"
			b := readFile(t, ipath)
			n := len(b) / indexEntrySize
			if n < 4 {
				t.Fatalf("sealed segment has %d records", n)
			}
			k := n / 2
			// Plausible: still increasing, within the store.
			binary.LittleEndian.PutUint32(b[k*indexEntrySize+4:], binary.LittleEndian.Uint32(b[k*indexEntrySize+4:])+3)
			writeFile(t, ipath, b)
			l := mustOpen(t, dir, o)
			if ri := l.Recovery(); ri.RebuiltIndexes != 0 {
				t.Fatalf("Open already rebuilt: %+v", ri)
			}
			off := base + uint64(k)
			var got []byte
			var err error
			if via == "Read" {
				got, err = l.Read(off)
			} else {
				var r *Reader
				if r, err = l.NewReader(off); err == nil {
					_, got, err = r.Next()
				}
			}
			if err != nil || !bytes.Equal(got, rec(off)) {
				t.Fatalf("%s(%d) = %q, %v; want %q", via, off, got, err, rec(off))
			}
			if l.IndexRebuilds() != 1 {
				t.Fatalf("IndexRebuilds = %d, want 1", l.IndexRebuilds())
			}
			if err := l.Verify(); err != nil {
				t.Fatalf("Verify after the rebuild: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = checkProperty(t, dir, o, h, h.acked)
			defer l.Close()
			if ri := l.Recovery(); ri.RebuiltIndexes != 0 {
				t.Fatalf("reopen rebuilt again: %+v", ri)
			}
		})
	}
}

// TestBeforeRecoveryVeto: the hook sees the cut Open is about to make, and
// its error leaves the directory as it was.
func TestBeforeRecoveryVeto(t *testing.T) {
	dir, o, h := buildLog(t, 60)
	last, _, pos := lastSegment(t, dir)
	size := int64(len(readFile(t, last)))
	cut := pos[len(pos)-1] + 3
	if err := os.Truncate(last, cut); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, dir)
	veto := errors.New("not today")
	var seen RecoveryInfo
	oo := *o
	oo.BeforeRecovery = func(ri RecoveryInfo) error { seen = ri; return veto }
	if _, err := Open(dir, &oo); !errors.Is(err, veto) {
		t.Fatalf("Open = %v, want the hook's error", err)
	}
	if seen.CutBytes != cut-pos[len(pos)-1] && seen.CutBytes <= 0 || seen.CutSegment != last || len(seen.CutFiles) != 0 {
		t.Fatalf("hook saw %+v", seen)
	}
	if seen.Next >= h.acked || seen.Next == 0 {
		t.Fatalf("hook saw Next %d (written %d)", seen.Next, h.acked)
	}
	if after := dirState(t, dir); !maps.Equal(before, after) {
		t.Fatal("a vetoed Open changed the directory")
	}
	oo.BeforeRecovery = func(RecoveryInfo) error { return nil }
	l := mustOpen(t, dir, &oo)
	defer l.Close()
	if l.NextOffset() != seen.Next || l.Recovery().CutBytes != seen.CutBytes {
		t.Fatalf("Open did %+v (next %d), the hook was told %+v", l.Recovery(), l.NextOffset(), seen)
	}
	_ = size
}

// TestOpenSyncsNewDirectories: creating the log's directory (and missing
// parents) is made durable in each parent.
func TestOpenSyncsNewDirectories(t *testing.T) {
	root := memDir(t)
	dir := filepath.Join(root, "a", "wal")
	fs := newFaultFS()
	l := mustOpen(t, dir, &Options{FS: fs})
	defer l.Close()
	fs.mu.Lock()
	synced := slices.Clone(fs.syncedDirs)
	fs.mu.Unlock()
	for _, want := range []string{root, filepath.Join(root, "a")} {
		if !slices.Contains(synced, want) {
			t.Errorf("%s was not fsynced after creating a directory in it (synced: %v)", want, synced)
		}
	}
}

// TestVerifyDoesNotBlockAppends: while Verify is stuck reading a sealed
// segment, appends (including rolls to new segments) complete.
func TestVerifyDoesNotBlockAppends(t *testing.T) {
	dir := memDir(t)
	fs := newFaultFS()
	l := mustOpen(t, dir, &Options{FS: fs, SegmentBytes: 1024})
	defer l.Close()
	h := &history{}
	writeGroups(t, l, h, 60)
	sealed := storePath(dir, l.Segments()[0].Base)
	stuck, release := make(chan struct{}), make(chan struct{})
	var once bool
	fs.mu.Lock()
	fs.beforeRead = func(path string, off int64) {
		if path == sealed && off >= headerSize && !once {
			once = true
			close(stuck)
			<-release
		}
	}
	fs.mu.Unlock()
	verified := make(chan error, 1)
	go func() { verified <- l.Verify() }()
	select {
	case <-stuck:
	case err := <-verified:
		t.Fatalf("Verify returned %v before reading the sealed segment", err)
	}
	appended := make(chan error, 1)
	go func() {
		for i := 0; i < 40; i++ {
			if _, err := l.Append(rec(l.NextOffset())); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("appends waited for Verify")
	}
	close(release)
	if err := <-verified; err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

var _ = fmt.Sprint
var _ = io.EOF
