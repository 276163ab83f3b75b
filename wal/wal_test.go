package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	if os.Getenv(fsizeChildEnv) != "" {
		fsizeChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// rec is the deterministic record for offset off; sizes vary so frames
// straddle every kind of boundary.
func rec(off uint64) []byte {
	n := int(off*7919%97) + 1
	b := make([]byte, n+8)
	copy(b, fmt.Sprintf("%08d", off%100000000))
	for i := 8; i < len(b); i++ {
		b[i] = byte(off) ^ byte(i)
	}
	return b
}

func mustOpen(t testing.TB, dir string, o *Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func appendN(t testing.TB, l *Log, from, n uint64) {
	t.Helper()
	for off := from; off < from+n; off++ {
		got, err := l.Append(rec(off))
		if err != nil {
			t.Fatalf("Append(%d): %v", off, err)
		}
		if got != off {
			t.Fatalf("Append returned offset %d, want %d", got, off)
		}
	}
}

// checkAll reads [first, next) with Read and with a Reader and compares
// with rec.
func checkAll(t testing.TB, l *Log, first, next uint64) {
	t.Helper()
	if l.FirstOffset() != first || l.NextOffset() != next {
		t.Fatalf("offsets [%d, %d), want [%d, %d)", l.FirstOffset(), l.NextOffset(), first, next)
	}
	for off := first; off < next; off++ {
		b, err := l.Read(off)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if !bytes.Equal(b, rec(off)) {
			t.Fatalf("Read(%d) = %q, want %q", off, b, rec(off))
		}
	}
	r, err := l.NewReader(first)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for want := first; ; want++ {
		off, b, err := r.Next()
		if err == io.EOF {
			if want != next {
				t.Fatalf("Reader EOF at %d, want %d", want, next)
			}
			return
		}
		if err != nil {
			t.Fatalf("Reader.Next at %d: %v", want, err)
		}
		if off != want || !bytes.Equal(b, rec(off)) {
			t.Fatalf("Reader.Next = %d %q, want %d %q", off, b, want, rec(want))
		}
	}
}

func TestRoundTripManySegments(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{SegmentBytes: 2048, Sync: pol, SyncInterval: 5e6}
			l := mustOpen(t, dir, o)
			appendN(t, l, 0, 300)
			checkAll(t, l, 0, 300)
			if len(l.Segments()) < 5 {
				t.Fatalf("only %d segments", len(l.Segments()))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after Close: %v", err)
			}
			l = mustOpen(t, dir, o)
			if ri := l.Recovery(); ri.CutBytes != 0 || ri.RebuiltIndexes != 0 {
				t.Fatalf("clean reopen repaired something: %+v", ri)
			}
			checkAll(t, l, 0, 300)
			appendN(t, l, 300, 50)
			checkAll(t, l, 0, 350)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			names, _ := filepath.Glob(filepath.Join(dir, "*.index"))
			if len(names) < 5 {
				t.Fatalf("index files: %v", names)
			}
		})
	}
}

// fsizeChildEnv names the directory of the file-size-limit child
// (diskfull_linux_test.go).
const fsizeChildEnv = "SHOAL_WAL_FSIZE_CHILD"

// TestCloseWritesEverything: Close writes and syncs every queued batch,
// whatever the policy (many batches: more than one write's worth).
func TestCloseWritesEverything(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			fs := newFaultFS()
			l := mustOpen(t, dir, &Options{Sync: pol, SegmentBytes: 1 << 20, FS: fs})
			big := make([]byte, 10<<10)
			const n = 600 // about 6 MiB: several batches and segments
			if pol == SyncAlways {
				recs := make([][]byte, n)
				for i := range recs {
					recs[i] = big
				}
				// One Append per segment's worth, so this stays quick.
				for i := 0; i < n; i += 60 {
					if _, err := l.Append(recs[i : i+60]...); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				for i := 0; i < n; i++ {
					if _, err := l.Append(big); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// Only synced bytes survive the simulated crash.
			if err := fs.crash(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, nil)
			defer l.Close()
			if l.NextOffset() != n {
				t.Fatalf("reopened with %d records, want %d", l.NextOffset(), n)
			}
			if err := l.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// memDir is a temporary directory on tmpfs when there is one: for the
// simulation tables, which model durability themselves and would otherwise
// spend their time in a shared disk's journal creating files.
func memDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "wal-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestFrameCRCMatchesTheLibrary: the byte-at-a-time tail of the frame
// checksum is crc32.Update over word || offset.
func TestFrameCRCMatchesTheLibrary(t *testing.T) {
	for _, c := range []struct {
		p uint32
		w uint32
		o uint64
	}{{0, 0, 0}, {1, 0x80000001, 7}, {0xdeadbeef, 0xc0000fff, 1<<63 + 12345}, {0xffffffff, 0xffffffff, ^uint64(0)}} {
		var b [12]byte
		binary.LittleEndian.PutUint32(b[0:4], c.w)
		binary.LittleEndian.PutUint64(b[4:12], c.o)
		if got, want := frameCRC(c.p, c.w, c.o), crc32.Update(c.p, castagnoli, b[:]); got != want {
			t.Fatalf("frameCRC(%#x, %#x, %d) = %#x, want %#x", c.p, c.w, c.o, got, want)
		}
	}
}

// TestFirstOffset: a log created with FirstOffset starts there, survives a
// reopen (with or without the option) and reads below it as truncated.
func TestFirstOffset(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, &Options{FirstOffset: 1000})
	if l.FirstOffset() != 1000 || l.NextOffset() != 1000 {
		t.Fatalf("first %d next %d", l.FirstOffset(), l.NextOffset())
	}
	appendN(t, l, 1000, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, nil) // the option only matters for a new log
	defer l.Close()
	if l.FirstOffset() != 1000 || l.NextOffset() != 1005 {
		t.Fatalf("reopened: first %d next %d", l.FirstOffset(), l.NextOffset())
	}
	if b, err := l.Read(1003); err != nil || !bytes.Equal(b, rec(1003)) {
		t.Fatalf("Read(1003) = %q, %v", b, err)
	}
	if _, err := l.Read(999); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(999): %v", err)
	}
}
