package wal

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenOptions(t *testing.T) {
	bad := []Options{
		{SegmentBytes: 10},
		{SegmentBytes: MaxSegmentBytes + 1},
		{Sync: SyncPolicy(7)},
		{SyncInterval: -time.Second},
		{MaxRecordBytes: -1},
		{MaxRecordBytes: MaxRecordLimit + 1},
		{MaxPendingBytes: -1},
	}
	for _, o := range bad {
		if l, err := Open(t.TempDir(), &o); !errors.Is(err, ErrInvalidOptions) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Open(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	// Open copies the options and never writes into them.
	o := Options{SegmentBytes: 4096}
	l := mustOpen(t, t.TempDir(), &o)
	defer l.Close()
	if o.SegmentBytes != 4096 || o.MaxRecordBytes != 0 || o.SyncInterval != 0 || o.FS != nil || o.MaxPendingBytes != 0 {
		t.Fatalf("Open changed the caller's options: %+v", o)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, nil)
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, nil) // the lock went with Close
	l.Close()
}

func TestAppendErrors(t *testing.T) {
	l := mustOpen(t, t.TempDir(), &Options{MaxRecordBytes: 100, Sync: SyncNever})
	defer l.Close()
	cases := []struct {
		name    string
		records [][]byte
		want    error
		next    uint64
	}{
		{"empty call", nil, nil, 0},
		{"empty record", [][]byte{{}}, nil, 1},
		{"at the limit", [][]byte{make([]byte, 100)}, nil, 2},
		{"over the limit", [][]byte{make([]byte, 101)}, ErrTooLarge, 2},
		{"one of several over", [][]byte{{1}, make([]byte, 101), {2}}, ErrTooLarge, 2},
		{"several", [][]byte{{1}, {2}, {3}}, nil, 5},
	}
	for _, c := range cases {
		first, err := l.Append(c.records...)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if err == nil && len(c.records) > 0 && first+uint64(len(c.records)) != c.next {
			t.Fatalf("%s: first = %d", c.name, first)
		}
		if l.NextOffset() != c.next {
			t.Fatalf("%s: NextOffset = %d, want %d", c.name, l.NextOffset(), c.next)
		}
	}
	if b, err := l.Read(0); err != nil || len(b) != 0 {
		t.Fatalf("empty record read back as %q, %v", b, err)
	}
}

// TestHooks: the metrics hooks see commits, syncs, rolls and truncations.
func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var commits []CommitStats
	var syncs, rolls, truncated atomic.Int64
	o := &Options{SegmentBytes: 1024, Hooks: Hooks{
		OnCommit: func(c CommitStats) {
			mu.Lock()
			commits = append(commits, c)
			mu.Unlock()
		},
		OnSync:          func(d time.Duration, err error) { syncs.Add(1) },
		OnRoll:          func(base uint64) { rolls.Add(1) },
		OnTruncateFront: func(n int, bytes int64) { truncated.Add(int64(n)) },
	}}
	l := mustOpen(t, t.TempDir(), o)
	appendN(t, l, 0, 60)
	if err := l.TruncateFront(30); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, c := range commits {
		records += c.Records
		if !c.Synced || c.Bytes == 0 || c.Appends == 0 {
			t.Fatalf("SyncAlways commit %+v", c)
		}
	}
	if records != 60 || syncs.Load() < int64(len(commits)) || rolls.Load() == 0 || truncated.Load() == 0 {
		t.Fatalf("hooks saw %d records in %d commits, %d syncs, %d rolls, %d segments truncated",
			records, len(commits), syncs.Load(), rolls.Load(), truncated.Load())
	}
}

// TestSyncIntervalSyncs: under SyncInterval the committer fdatasyncs on its
// own, without Sync being called.
func TestSyncIntervalSyncs(t *testing.T) {
	fs := newFaultFS()
	l := mustOpen(t, t.TempDir(), &Options{FS: fs, Sync: SyncInterval, SyncInterval: 5 * time.Millisecond})
	defer l.Close()
	fs.mu.Lock()
	before := fs.syncCalls
	fs.mu.Unlock()
	if _, err := l.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an interval fdatasync", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.syncCalls > before
	})
}
