package wal

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestStickyErrors fails one write or sync (or cuts one write short) and
// checks that every later Append and Sync returns that error, that fsync is
// never retried, and that a reopen keeps every acknowledged record.
func TestStickyErrors(t *testing.T) {
	cases := []struct {
		name   string
		inject func(f *faultFS)
		want   error
	}{
		{"write", func(f *faultFS) { f.failWrite = syscall.EIO }, syscall.EIO},
		{"sync", func(f *faultFS) { f.failSync = syscall.EIO }, syscall.EIO},
		{"short write", func(f *faultFS) { f.shortWrite = true }, io.ErrShortWrite},
		{"disk full on write", func(f *faultFS) { f.writeENOSPC = true }, syscall.ENOSPC},
	}
	for _, pol := range []SyncPolicy{SyncAlways, SyncNever} {
		for _, c := range cases {
			t.Run(pol.String()+"/"+c.name, func(t *testing.T) {
				dir := memDir(t)
				fs := newFaultFS()
				o := &Options{FS: fs, Sync: pol}
				l := mustOpen(t, dir, o)
				h := &history{}
				writeGroups(t, l, h, 10)
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				acked := l.NextOffset()
				c.inject(fs)
				_, err := l.Append(rec(acked))
				if pol != SyncAlways {
					// The failure surfaces at the next Sync.
					err = l.Sync()
				}
				if !errors.Is(err, c.want) {
					t.Fatalf("first error = %v, want %v", err, c.want)
				}
				if c.want == syscall.ENOSPC && !strings.Contains(err.Error(), "no space left") {
					t.Fatalf("disk-full error is not clear: %v", err)
				}
				fs.mu.Lock()
				syncs := fs.syncCalls
				fs.mu.Unlock()
				for i := 0; i < 3; i++ {
					if _, err := l.Append(rec(acked + 1)); !errors.Is(err, c.want) {
						t.Fatalf("later Append = %v, want the sticky %v", err, c.want)
					}
					if err := l.Sync(); !errors.Is(err, c.want) {
						t.Fatalf("later Sync = %v, want the sticky %v", err, c.want)
					}
				}
				if !errors.Is(l.Err(), c.want) {
					t.Fatalf("Err() = %v", l.Err())
				}
				fs.mu.Lock()
				if fs.syncCalls != syncs {
					t.Errorf("fsync retried after failure: %d calls, had %d", fs.syncCalls, syncs)
				}
				fs.mu.Unlock()
				if err := l.Close(); !errors.Is(err, c.want) {
					t.Fatalf("Close = %v, want the sticky error", err)
				}
				if err := l.Close(); err != nil {
					t.Fatalf("second Close = %v", err)
				}
				l = checkProperty(t, dir, &Options{}, &history{bounds: append(slices.Clone(h.bounds), acked+1)}, acked)
				checkHealthy(t, l, dir, &Options{}, &history{bounds: append(slices.Clone(h.bounds), acked+1)})
			})
		}
	}
}

// TestIndexDiskFull makes the index growth fail as a full disk would: the
// log must report it, not die of SIGBUS on a store into the map.
func TestIndexDiskFull(t *testing.T) {
	dir := memDir(t)
	fs := newFaultFS()
	l := mustOpen(t, dir, &Options{FS: fs, Sync: SyncNever})
	fs.mu.Lock()
	fs.failAllocate = syscall.ENOSPC
	fs.mu.Unlock()
	var err error
	acked := uint64(0)
	for off := uint64(0); off < indexMinAlloc/indexEntrySize+10 && err == nil; off++ {
		_, err = l.Append([]byte("x"))
		if err == nil && off%500 == 0 {
			if err = l.Sync(); err == nil {
				acked = off + 1
			}
		}
	}
	if err == nil {
		err = l.Sync()
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ENOSPC", err)
	}
	if err := l.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close = %v", err)
	}
	l = mustOpen(t, dir, nil)
	defer l.Close()
	if n := l.NextOffset(); n < acked || acked < 8000 {
		t.Fatalf("reopened with %d records", n)
	}
}

// crashScenario runs work against a log on a faultFS that crashes at its
// crashAt-th mutating operation after the setup, applies the loss model,
// and checks the recovery property. It reports whether the crash point was
// reached (false: the scenario ran to completion).
type crashScenario struct {
	sync  SyncPolicy
	setup func(t *testing.T, l *Log, h *history)            // runs before the crash point is armed
	work  func(t *testing.T, l *Log, h *history) (hit bool) // runs with the crash armed
}

func runCrash(t *testing.T, sc crashScenario, base string, h0 *history, crashAt int, torn func(string, int64) int64, zero bool) bool {
	t.Helper()
	dir := memDir(t)
	copyDir(t, base, dir)
	h := &history{bounds: slices.Clone(h0.bounds), acked: h0.acked}
	fs := newFaultFS()
	l := mustOpen(t, dir, &Options{FS: fs, SegmentBytes: 1024, Sync: sc.sync})
	fs.mu.Lock()
	fs.crashAt = fs.ops + crashAt
	fs.keepTorn, fs.zeroTorn = torn, zero
	fs.mu.Unlock()
	sc.work(t, l, h)
	fs.mu.Lock()
	hit := fs.crashed
	fs.mu.Unlock()
	l.Close() // errors expected: the "machine" is down
	if err := fs.crash(); err != nil {
		t.Fatalf("applying crash: %v", err)
	}
	l = checkProperty(t, dir, &Options{SegmentBytes: 1024}, h, h.acked)
	checkHealthy(t, l, dir, &Options{SegmentBytes: 1024}, h)
	return hit
}

// buildBase runs a scenario's setup once into a closed log to copy from.
func buildBase(t *testing.T, sc crashScenario) (string, *history) {
	t.Helper()
	dir := memDir(t)
	l := mustOpen(t, dir, &Options{SegmentBytes: 1024, Sync: SyncNever})
	h := &history{}
	sc.setup(t, l, h)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, h
}

// appendUntilFail appends groups until an Append fails (the crash) or n
// records are acknowledged.
func appendUntilFail(l *Log, h *history, n uint64) {
	for g := len(h.bounds) - 1; l.NextOffset() < n; g++ {
		first := l.NextOffset()
		recs := make([][]byte, groupSize(g))
		for i := range recs {
			recs[i] = rec(first + uint64(i))
		}
		h.bounds = append(h.bounds, first+uint64(len(recs)))
		if _, err := l.Append(recs...); err != nil {
			return
		}
		h.acked = first + uint64(len(recs))
	}
}

// TestCrashEveryStep crashes at every mutating step of a roll (and of the
// appends around it), of TruncateFront, and of a recovery that cuts a tail,
// under several loss models for unsynced bytes.
func TestCrashEveryStep(t *testing.T) {
	tornModels := []struct {
		name string
		keep func(string, int64) int64
		zero bool
	}{
		{"lose unsynced", nil, false},
		{"keep half of unsynced", func(_ string, n int64) int64 { return n / 2 }, false},
		{"keep all unsynced", func(_ string, n int64) int64 { return n }, false},
		{"zero-filled unsynced", func(_ string, n int64) int64 { return n }, true},
	}
	scenarios := map[string]crashScenario{
		"roll": {
			setup: func(t *testing.T, l *Log, h *history) { writeGroups(t, l, h, 20) },
			work: func(t *testing.T, l *Log, h *history) bool {
				appendUntilFail(l, h, 60) // crosses at least two rolls
				return true
			},
		},
		"roll under SyncNever": {
			sync:  SyncNever,
			setup: func(t *testing.T, l *Log, h *history) { writeGroups(t, l, h, 20) },
			work: func(t *testing.T, l *Log, h *history) bool {
				// Only what a successful Sync covered is promised.
				for l.NextOffset() < 60 {
					acked := h.acked
					appendUntilFail(l, h, l.NextOffset()+7)
					h.acked = acked
					if l.Sync() != nil {
						break
					}
					h.acked = l.NextOffset()
				}
				return true
			},
		},
		"truncate front": {
			setup: func(t *testing.T, l *Log, h *history) { writeGroups(t, l, h, 80) },
			work: func(t *testing.T, l *Log, h *history) bool {
				l.TruncateFront(50)
				appendUntilFail(l, h, 90)
				return true
			},
		},
	}
	for name, sc := range scenarios {
		base, h := buildBase(t, sc)
		for _, m := range tornModels {
			t.Run(name+"/"+m.name, func(t *testing.T) {
				for k := 1; ; k++ {
					if !runCrash(t, sc, base, h, k, m.keep, m.zero) {
						if k < 5 {
							t.Fatalf("scenario finished after only %d steps", k)
						}
						return
					}
				}
			})
		}
	}
}

// TestCrashDuringRecovery crashes Open itself at every step of cutting a
// torn tail, then opens again.
func TestCrashDuringRecovery(t *testing.T) {
	dir0, o, h := buildLog(t, 60)
	stores := segFiles(t, dir0, "log")
	last := stores[len(stores)-1]
	pos := framePositions(t, last, baseOf(t, last))
	for k := 1; ; k++ {
		dir := memDir(t)
		copyDir(t, dir0, dir)
		p := dir + "/" + last[len(last)-24:]
		// Tear the last Append: cut inside its last frame.
		if err := truncateFile(p, pos[len(pos)-1]+5); err != nil {
			t.Fatal(err)
		}
		fs := newFaultFS()
		fs.crashAt = k
		l, err := Open(dir, &Options{FS: fs, SegmentBytes: o.SegmentBytes})
		if err == nil {
			l.Close()
			if k < 3 {
				t.Fatalf("recovery finished after only %d steps", k)
			}
			return
		}
		if !errors.Is(err, errCrashed) {
			t.Fatalf("step %d: Open failed with %v", k, err)
		}
		if err := fs.crash(); err != nil {
			t.Fatal(err)
		}
		min := h.acked - uint64(groupSize(len(h.bounds)-2))
		l = checkProperty(t, dir, o, h, min)
		checkHealthy(t, l, dir, o, &history{bounds: slices.Clone(h.bounds)})
	}
}

// TestCrashRandom interleaves random appends, syncs, truncations and
// crashes at random points under every policy (acknowledgement is only
// promised under SyncAlways, or before a successful Sync).
func TestCrashRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	for round := 0; round < 30; round++ {
		pol := []SyncPolicy{SyncAlways, SyncInterval, SyncNever}[rng.IntN(3)]
		dir := memDir(t)
		fs := newFaultFS()
		o := &Options{FS: fs, SegmentBytes: int64(1024 + rng.IntN(2048)), Sync: pol}
		l := mustOpen(t, dir, o)
		h := &history{bounds: []uint64{0}}
		fs.mu.Lock()
		fs.crashAt = 1 + rng.IntN(150)
		keep := rng.IntN(3)
		fs.keepTorn = func(_ string, n int64) int64 {
			switch keep {
			case 0:
				return 0
			case 1:
				return rng.Int64N(n + 1)
			}
			return n
		}
		fs.zeroTorn = rng.IntN(4) == 0
		fs.mu.Unlock()
		for g := 0; g < 200; g++ {
			first := l.NextOffset()
			recs := make([][]byte, groupSize(g))
			for i := range recs {
				recs[i] = rec(first + uint64(i))
			}
			h.bounds = append(h.bounds, first+uint64(len(recs)))
			if _, err := l.Append(recs...); err != nil {
				break
			}
			if pol == SyncAlways {
				h.acked = first + uint64(len(recs))
			}
			if rng.IntN(10) == 0 {
				if err := l.Sync(); err != nil {
					break
				}
				h.acked = first + uint64(len(recs))
			}
			if rng.IntN(40) == 0 {
				l.TruncateFront(first / 2)
			}
		}
		l.Close()
		if err := fs.crash(); err != nil {
			t.Fatal(err)
		}
		l = checkProperty(t, dir, &Options{}, h, h.acked)
		checkHealthy(t, l, dir, &Options{}, h)
	}
}

func truncateFile(path string, size int64) error { return osTruncate(path, size) }

var osTruncate = os.Truncate
