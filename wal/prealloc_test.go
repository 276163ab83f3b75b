package wal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestPreallocatedTailAfterKill: a log that was never closed (a kill -9:
// the copy of its files taken while it runs) has zeros written ahead of its
// records. Open keeps them as free space, cuts nothing and sets nothing
// aside; appends go on in the zeros, and a clean Close leaves the store
// ending with its last record.
func TestPreallocatedTailAfterKill(t *testing.T) {
	dir := memDir(t)
	l := mustOpen(t, dir, nil)
	appendN(t, l, 0, 100)
	store := storePath(dir, 0)
	end := l.Segments()[0].Bytes
	size := fileSize(t, store)
	if size <= end || size > end+DefaultPreallocate {
		t.Fatalf("running store is %d bytes, want its %d bytes of records and at most %d of zeros", size, end, DefaultPreallocate)
	}
	if in, err := Inspect(dir, nil); err != nil || len(in.Problems) != 0 || in.Segments[0].Preallocated != size-end {
		t.Fatalf("Inspect of the running log: %v, %+v", err, in)
	}

	killed := memDir(t)
	copyDir(t, dir, killed)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, store); got != end {
		t.Fatalf("closed store is %d bytes, want %d", got, end)
	}

	l2 := mustOpen(t, killed, nil)
	if ri := l2.Recovery(); ri.CutBytes != 0 || len(ri.CutFiles) != 0 || ri.RebuiltIndexes != 0 {
		t.Fatalf("reopen after a kill repaired something: %+v", ri)
	}
	checkAll(t, l2, 0, 100)
	appendN(t, l2, 100, 100)
	kstore := storePath(killed, 0)
	if got := fileSize(t, kstore); got != size {
		t.Fatalf("appends after the reopen grew the store to %d bytes, want them written into the zeros (%d)", got, size)
	}
	checkAll(t, l2, 0, 200)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	l3 := mustOpen(t, killed, nil)
	defer l3.Close()
	checkAll(t, l3, 0, 200)
	if got, want := fileSize(t, kstore), l3.Segments()[0].Bytes; got != want {
		t.Fatalf("closed store is %d bytes, its records end at %d", got, want)
	}
}

// TestPreallocateWithinSegment: the zeros never run past SegmentBytes, and
// a roll cuts them before it seals the segment: a sealed store ends with
// its last record, as recovery requires.
func TestPreallocateWithinSegment(t *testing.T) {
	dir := memDir(t)
	const seg = 64 << 10
	l := mustOpen(t, dir, &Options{SegmentBytes: seg, Preallocate: 16 << 10})
	defer l.Close()
	for off := uint64(0); len(l.Segments()) < 4; off++ {
		appendN(t, l, off, 1)
		segs := l.Segments()
		last := segs[len(segs)-1]
		size := fileSize(t, storePath(dir, last.Base))
		if size > max(seg, last.Bytes) || size < last.Bytes {
			t.Fatalf("active store %d bytes with %d of records (segment %d)", size, last.Bytes, seg)
		}
		for _, s := range segs[:len(segs)-1] {
			if got := fileSize(t, storePath(dir, s.Base)); got != s.Bytes {
				t.Fatalf("sealed store %d is %d bytes, its records end at %d", s.Base, got, s.Bytes)
			}
		}
	}
	killed := memDir(t)
	copyDir(t, dir, killed)
	l2 := mustOpen(t, killed, &Options{SegmentBytes: seg})
	defer l2.Close()
	if ri := l2.Recovery(); ri.CutBytes != 0 || ri.RebuiltIndexes != 0 {
		t.Fatalf("reopen repaired something: %+v", ri)
	}
	checkAll(t, l2, 0, l.NextOffset())
}

// TestPreallocatedZerosWhereRecordsWere: zeros where the index says records
// were written (their bytes lost to a machine crash before the fdatasync, or
// to damage afterwards) are not free space but a cut, as without
// preallocation: reported (a node takes a new replica ID for it) and set
// aside.
func TestPreallocatedZerosWhereRecordsWere(t *testing.T) {
	dir := memDir(t)
	l := mustOpen(t, dir, nil)
	appendN(t, l, 0, 50)
	keep := l.Segments()[0].Bytes
	appendN(t, l, 50, 1)
	end := l.Segments()[0].Bytes
	killed := memDir(t)
	copyDir(t, dir, killed)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(killed, filepath.Base(storePath(dir, 0)))
	b := readFile(t, p)
	clear(b[keep:end])
	writeFile(t, p, b)

	l2 := mustOpen(t, killed, nil)
	defer l2.Close()
	ri := l2.Recovery()
	if ri.CutAt != keep || ri.CutBytes != int64(len(b))-keep || len(ri.CutFiles) != 1 {
		t.Fatalf("recovery %+v, want the zeros from %d cut", ri, keep)
	}
	checkAll(t, l2, 0, 50)
}

// TestPreallocateOff: a negative Preallocate writes nothing ahead.
func TestPreallocateOff(t *testing.T) {
	dir := memDir(t)
	l := mustOpen(t, dir, &Options{Preallocate: -1})
	defer l.Close()
	appendN(t, l, 0, 10)
	if got, want := fileSize(t, storePath(dir, 0)), l.Segments()[0].Bytes; got != want {
		t.Fatalf("store is %d bytes, its records end at %d", got, want)
	}
}

// TestPreallocateDiskFull: when the zeros do not fit (a full disk), the
// records written before them stand, the partial zeros are cut again, the
// log does not fail, and it does not try again at every commit.
func TestPreallocateDiskFull(t *testing.T) {
	dir := memDir(t)
	fs := newFaultFS()
	const ahead = 4096
	l := mustOpen(t, dir, &Options{FS: fs, Preallocate: ahead})
	fs.mu.Lock()
	fs.failZeros = &os.PathError{Op: "write", Path: "store", Err: syscall.ENOSPC}
	fs.mu.Unlock()
	store := storePath(dir, 0)
	appendN(t, l, 0, 1)
	if got, want := fileSize(t, store), l.Segments()[0].Bytes; got != want {
		t.Fatalf("store is %d bytes after a failed preallocation, its records end at %d", got, want)
	}
	appendN(t, l, 1, 99) // about 4 KiB of records: past the retry point
	if got, want := fileSize(t, store), l.Segments()[0].Bytes; got != want {
		t.Fatalf("store is %d bytes after failed preallocations, its records end at %d", got, want)
	}
	fs.mu.Lock()
	fails := fs.zeroFails
	fs.failZeros = nil
	fs.mu.Unlock()
	if fails < 1 || fails > 3 {
		t.Fatalf("tried to preallocate %d times on a full disk in 100 commits, want a try per %d bytes", fails, ahead)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("the log failed: %v", err)
	}
	appendN(t, l, 100, 200) // the disk has room again
	if got, end := fileSize(t, store), l.Segments()[0].Bytes; got <= end {
		t.Fatalf("no zeros ahead once the disk had room: store %d bytes, records end at %d", got, end)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, dir, nil)
	defer l2.Close()
	checkAll(t, l2, 0, 300)
}
