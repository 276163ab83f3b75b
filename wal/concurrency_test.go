package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitSharesOneSync holds the first fdatasync until every other
// appender has queued, then checks that they all went out in one write and
// one fdatasync, and that none returned before its sync.
func TestGroupCommitSharesOneSync(t *testing.T) {
	const n = 16
	dir := t.TempDir()
	fs := newFaultFS()
	gate := make(chan struct{})
	var gateOnce sync.Once
	l := mustOpen(t, dir, &Options{FS: fs})
	defer l.Close()
	fs.mu.Lock()
	fs.beforeSync = func() { gateOnce.Do(func() { <-gate }) }
	syncs0, writes0 := fs.syncCalls, fs.writes
	fs.mu.Unlock()

	var returned sync.WaitGroup
	var mu sync.Mutex
	done := 0
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		returned.Add(1)
		go func() {
			defer returned.Done()
			_, err := l.Append([]byte(fmt.Sprintf("r%d", i)))
			mu.Lock()
			done++
			mu.Unlock()
			errs <- err
		}()
	}
	// The first Append's sync is held; the other n-1 queue behind it.
	eventually(t, "all appenders to queue", func() bool { return l.NextOffset() == n })
	mu.Lock()
	if done != 0 {
		t.Errorf("%d Appends returned before any fdatasync finished", done)
	}
	mu.Unlock()
	close(gate)
	returned.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	fs.mu.Lock()
	syncs, writes := fs.syncCalls-syncs0, fs.writes-writes0
	fs.mu.Unlock()
	if syncs != 2 || writes != 2 {
		t.Fatalf("%d appenders took %d writes and %d fdatasyncs, want 2 and 2 (the held one, then one group)", n, writes, syncs)
	}
}

// TestConcurrentAppendersAndReaders runs many appenders and tailing readers
// (plus Read, Segments and TruncateFront callers) under -race, then checks
// that every acknowledged record is in the log exactly once and that the
// readers saw exactly the log.
func TestConcurrentAppendersAndReaders(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			const writers, perWriter, readers = 16, 150, 4
			dir := t.TempDir()
			l := mustOpen(t, dir, &Options{SegmentBytes: 4096, Sync: pol})
			var wg sync.WaitGroup
			acked := make([]map[uint64]string, writers)
			for w := 0; w < writers; w++ {
				acked[w] = map[uint64]string{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						var recs [][]byte
						for j := 0; j <= i%3; j++ {
							recs = append(recs, []byte(fmt.Sprintf("w%d-%d-%d", w, i, j)))
						}
						first, err := l.Append(recs...)
						if err != nil {
							t.Error(err)
							return
						}
						for j, r := range recs {
							acked[w][first+uint64(j)] = string(r)
						}
					}
				}()
			}
			total := uint64(0)
			for i := 0; i < perWriter; i++ {
				total += uint64(i%3 + 1)
			}
			total *= writers
			seen := make([][]string, readers)
			for r := 0; r < readers; r++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rd, err := l.NewReader(0)
					if err != nil {
						t.Error(err)
						return
					}
					defer rd.Close()
					deadline := time.Now().Add(time.Minute)
					for uint64(len(seen[r])) < total {
						off, b, err := rd.Next()
						if err == io.EOF {
							if time.Now().After(deadline) {
								t.Errorf("reader stuck at %d of %d", len(seen[r]), total)
								return
							}
							time.Sleep(100 * time.Microsecond) // tailing: poll for more
							continue
						}
						if err != nil {
							t.Error(err)
							return
						}
						if off != uint64(len(seen[r])) {
							t.Errorf("reader got offset %d, want %d", off, len(seen[r]))
							return
						}
						seen[r] = append(seen[r], string(b))
						if off%37 == 0 {
							if b2, err := l.Read(off); err != nil || !bytes.Equal(b, b2) {
								t.Errorf("Read(%d) = %q, %v; reader saw %q", off, b2, err, b)
								return
							}
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.Now().Add(time.Minute)
				for l.NextOffset() < total && time.Now().Before(deadline) {
					_ = l.Segments()
					_ = l.Size()
					time.Sleep(time.Millisecond)
				}
			}()
			wg.Wait()
			if t.Failed() {
				l.Close()
				return
			}
			// Every acknowledged record is where its Append said, exactly once.
			for w := range acked {
				for off, want := range acked[w] {
					for r := range seen {
						if seen[r][off] != want {
							t.Fatalf("reader %d saw %q at %d, writer %d wrote %q", r, seen[r][off], off, w, want)
						}
					}
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, nil)
			defer l.Close()
			if l.NextOffset() != total {
				t.Fatalf("reopened with %d records, want %d", l.NextOffset(), total)
			}
			if err := l.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTruncateFrontWithReaders removes segments under readers and checks
// they see ErrTruncated, never a closed file or wrong bytes.
func TestTruncateFrontWithReaders(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentBytes: 1024, Sync: SyncNever}
	l := mustOpen(t, dir, o)
	appendN(t, l, 0, 400)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	if len(segs) < 10 {
		t.Fatalf("%d segments", len(segs))
	}
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd, err := l.NewReader(uint64(r * 20))
			if err != nil {
				if !errors.Is(err, ErrTruncated) {
					t.Error(err)
				}
				return
			}
			for {
				off, b, err := rd.Next()
				if err == io.EOF || errors.Is(err, ErrTruncated) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(b, rec(off)) {
					t.Errorf("record %d wrong", off)
					return
				}
			}
		}()
	}
	cut := segs[len(segs)/2].Base + 1
	if err := l.TruncateFront(cut); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	first := l.FirstOffset()
	if first != segs[len(segs)/2].Base {
		t.Fatalf("FirstOffset %d, want %d", first, segs[len(segs)/2].Base)
	}
	if _, err := l.Read(first - 1); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read below first: %v", err)
	}
	if _, err := l.Read(400); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Read at next: %v", err)
	}
	if _, err := l.NewReader(0); !errors.Is(err, ErrTruncated) {
		t.Fatalf("NewReader below first: %v", err)
	}
	// A truncation beyond everything keeps the active segment.
	if err := l.TruncateFront(1 << 40); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments after truncating everything", n)
	}
	last := l.Segments()[0].Base
	checkAll(t, l, last, 400)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, o)
	checkAll(t, l, last, 400)
	appendN(t, l, 400, 30)
	checkAll(t, l, last, 430)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReadersFromEveryPosition starts a Reader at every offset.
func TestReadersFromEveryPosition(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, &Options{SegmentBytes: 1500, Sync: SyncNever})
	defer l.Close()
	appendN(t, l, 0, 200)
	for from := uint64(0); from <= 200; from++ {
		r, err := l.NewReader(from)
		if err != nil {
			t.Fatal(err)
		}
		for want := from; ; want++ {
			off, b, err := r.Next()
			if err == io.EOF {
				if want != 200 {
					t.Fatalf("from %d: EOF at %d", from, want)
				}
				break
			}
			if err != nil || off != want || !bytes.Equal(b, rec(off)) {
				t.Fatalf("from %d: Next = %d %q %v", from, off, b, err)
			}
		}
		r.Close()
		r.Close()
	}
	if _, err := l.NewReader(201); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("NewReader past the end: %v", err)
	}
}

// TestReaderTailsAppends: a Reader at the end sees EOF, then the records
// appended afterwards, under every policy (SyncNever must not leave an
// acknowledged record invisible).
func TestReaderTailsAppends(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		l := mustOpen(t, t.TempDir(), &Options{Sync: pol, SegmentBytes: 1024})
		r, err := l.NewReader(0)
		if err != nil {
			t.Fatal(err)
		}
		for off := uint64(0); off < 100; off++ {
			if _, _, err := r.Next(); err != io.EOF {
				t.Fatalf("%v: Next before append %d = %v, want EOF", pol, off, err)
			}
			appendN(t, l, off, 1)
			got, b, err := r.Next()
			if err != nil || got != off || !bytes.Equal(b, rec(off)) {
				t.Fatalf("%v: Next after append %d = %d %v", pol, off, got, err)
			}
			if b, err := l.Read(off); err != nil || !bytes.Equal(b, rec(off)) {
				t.Fatalf("%v: Read(%d) right after Append: %v", pol, off, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close = %v", err)
		}
		if _, err := l.Read(0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close = %v", err)
		}
	}
}

// TestReadNewestWhileAppending reads the newest visible record while one
// appender keeps adding groups. The newest record's frame ends at the
// segment's visible size; a Read that paired an old record count with a
// newer size read the next group's frames as part of its record.
func TestReadNewestWhileAppending(t *testing.T) {
	const records = 3000
	l := mustOpen(t, t.TempDir(), &Options{Sync: SyncNever})
	defer l.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				next := l.NextOffset()
				if next == 0 {
					continue
				}
				off := next - 1
				b, err := l.Read(off)
				if err == nil && string(b) != "record" {
					err = fmt.Errorf("Read(%d) = %q", off, b)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var appenders sync.WaitGroup
	for a := 0; a < 4; a++ {
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			for i := 0; i < records; i++ {
				if _, err := l.Append([]byte("record")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	appenders.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestExtentIsOnePair publishes extents whose size is a function of the
// count while readers load them: every pair read must be one that was
// published (two plain loads straddle a change within a few thousand).
func TestExtentIsOnePair(t *testing.T) {
	var s segment
	s.setExtent(0, headerSize)
	const changes = 200_000
	stop := make(chan struct{})
	bad := make(chan string, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, n := s.extent(); n != headerSize+10*int64(c) {
					bad <- fmt.Sprintf("extent() = %d records, %d bytes: never published together", c, n)
					return
				}
			}
		})
	}
	for c := 1; c <= changes; c++ {
		s.setExtent(c, headerSize+10*int64(c))
	}
	close(stop)
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Fatal(b)
	}
}
