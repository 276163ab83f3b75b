package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// randomOps applies count random operations of every kind to n. Errors an
// operation may legitimately get (wrong type, not found) are ignored.
func randomOps(t testing.TB, n *Node, rng *rand.Rand, count int) {
	t.Helper()
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	for range count {
		var err error
		switch rng.IntN(12) {
		case 0, 1:
			err = n.Put(key(), map[string]any{"n": rng.IntN(1000), "s": "x"})
		case 2:
			_, err = n.Incr(key(), int64(rng.IntN(21)-10))
		case 3:
			err = n.SetAdd(key(), fmt.Sprint(rng.IntN(10)), fmt.Sprint(rng.IntN(10)))
		case 4:
			err = n.SetRemove(key(), fmt.Sprint(rng.IntN(10)))
		case 5:
			err = n.Update(key(), Patch{
				Set:  map[string]any{fmt.Sprint("f", rng.IntN(3)): rng.IntN(5)},
				Incr: map[string]int64{"cnt": 1},
			})
		case 6:
			err = n.Delete(key())
		case 7:
			var b Batch
			b.Put(key(), rng.IntN(9))
			b.Incr(key(), 1)
			err = n.Commit(&b)
		case 8:
			err = n.Put(key(), []any{rng.Float64(), nil, true})
		case 9: // expiries far enough ahead that no key expires during a test
			err = n.Expire(key(), time.Duration(1+rng.IntN(100))*time.Hour)
		case 10:
			err = n.Persist(key())
		case 11:
			err = n.PutWith(key(), rng.IntN(9), WriteOptions{TTL: time.Duration(1+rng.IntN(100)) * time.Hour})
		}
		if err != nil && !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrNotFound) {
			t.Fatalf("random op: %v", err)
		}
	}
}

// dump returns every key's value, for comparing states in detail.
func dump(t testing.TB, n *Node) map[string]Value {
	t.Helper()
	ks, err := n.Keys("", 0)
	must(t, err)
	out := make(map[string]Value, len(ks))
	for _, k := range ks {
		v, err := n.Get(k.Key)
		must(t, err)
		out[k.Key] = v
	}
	return out
}

func TestRestartEquality(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		snap bool // explicit snapshot in the middle
	}{
		{"wal only", Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1}, false},
		{"explicit snapshot", Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1}, true},
		{"periodic snapshots", Options{SnapshotEveryOps: 37, SegmentBytes: 4 << 10}, false},
		{"sync never", Options{Sync: SyncNever, SnapshotEveryOps: 50}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := rand.Uint64()
			rng := rand.New(rand.NewPCG(seed, 1))
			dir := t.TempDir()
			n := openAt(t, dir, &tc.opts)
			randomOps(t, n, rng, 300)
			if tc.snap {
				must(t, n.Snapshot())
			}
			randomOps(t, n, rng, 300)
			digest, values, replica := n.Digest(), dump(t, n), n.ReplicaID()
			if err := n.Snapshot(); err != nil { // waits for any periodic one as well
				t.Fatal(err)
			}
			randomOps(t, n, rng, 50)
			digest, values = n.Digest(), dump(t, n)
			must(t, n.Close())
			n = openAt(t, dir, &tc.opts)
			if n.Digest() != digest {
				t.Fatalf("seed %d: digest changed across restart", seed)
			}
			if got := dump(t, n); !reflect.DeepEqual(got, values) {
				t.Fatalf("seed %d: values changed across restart", seed)
			}
			if n.ReplicaID() != replica {
				t.Fatalf("replica changed across a clean restart")
			}
			// It keeps working: new writes do not collide with old dots.
			must(t, n.Put("after", 1))
			if v, err := n.Get("after"); err != nil || v.Data != int64(1) {
				t.Fatalf("write after restart: %v %v", v, err)
			}
			snaps, _ := scanSnapshotDir(filepath.Join(dir, snapDir), false)
			if len(snaps) > snapKeep {
				t.Fatalf("%d snapshots kept, want at most %d", len(snaps), snapKeep)
			}
			if tc.opts.SegmentBytes != 0 && n.Status().FirstOffset == 0 {
				t.Fatalf("periodic snapshots never truncated the WAL")
			}
		})
	}
}

// snapshotFixture writes, snapshots twice with writes in between and
// after, closes, and returns the directory and the final digest.
func snapshotFixture(t *testing.T, opts *Options) (string, string, []uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	dir := t.TempDir()
	n := openAt(t, dir, opts)
	randomOps(t, n, rng, 200)
	must(t, n.Snapshot())
	randomOps(t, n, rng, 200)
	must(t, n.Snapshot())
	randomOps(t, n, rng, 100)
	digest := n.Digest()
	must(t, n.Close())
	snaps, err := scanSnapshotDir(filepath.Join(dir, snapDir), false)
	must(t, err)
	if len(snaps) != 2 {
		t.Fatalf("snapshots: %v", snaps)
	}
	return dir, digest, snaps
}

func TestRestartDamagedSnapshot(t *testing.T) {
	opts := &Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1, SegmentBytes: 4 << 10}
	damage := map[string]func(path string){
		"bit flip in body":   func(p string) { flipByte(t, p, -10) },
		"bit flip in header": func(p string) { flipByte(t, p, 20) },
		"truncated": func(p string) {
			st, _ := os.Stat(p)
			must(t, os.Truncate(p, st.Size()/2))
		},
		"empty":      func(p string) { must(t, os.Truncate(p, 0)) },
		"garbage":    func(p string) { must(t, os.WriteFile(p, []byte("not a snapshot at all, really not"), 0o644)) },
		"wrong name": func(p string) { renameSnapshot(t, p, +1) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir, digest, snaps := snapshotFixture(t, opts)
			f(filepath.Join(dir, snapDir, snapName(snaps[0])))
			n := openAt(t, dir, opts)
			if n.Digest() != digest {
				t.Fatal("state differs after falling back to the older snapshot")
			}
		})
	}
	t.Run("both damaged and wal truncated", func(t *testing.T) {
		dir, _, snaps := snapshotFixture(t, opts)
		for _, off := range snaps {
			flipByte(t, filepath.Join(dir, snapDir, snapName(off)), -3)
		}
		_, err := Open(dir, opts)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open with no usable snapshot and a truncated WAL = %v, want ErrCorrupt", err)
		}
	})
	t.Run("snapshot ahead of the wal", func(t *testing.T) {
		dir, _, snaps := snapshotFixture(t, opts)
		renameSnapshot(t, filepath.Join(dir, snapDir, snapName(snaps[0])), 1_000_000)
		if _, err := Open(dir, opts); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if at < 0 {
		at += int64(len(b))
	}
	b[at] ^= 0x40
	must(t, os.WriteFile(path, b, 0o644))
}

// renameSnapshot moves a snapshot file to another offset's name.
func renameSnapshot(t *testing.T, path string, delta uint64) {
	t.Helper()
	var off uint64
	fmt.Sscanf(filepath.Base(path), "%d", &off)
	must(t, os.Rename(path, filepath.Join(filepath.Dir(path), snapName(off+delta))))
}

func TestRestartTornWAL(t *testing.T) {
	for _, cut := range []int64{1, 5, 9, 30} {
		t.Run(fmt.Sprint("cut ", cut), func(t *testing.T) {
			dir := t.TempDir()
			opts := &Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1}
			n := openAt(t, dir, opts)
			randomOps(t, n, rand.New(rand.NewPCG(3, 3)), 100)
			before, values := n.Digest(), dump(t, n)
			must(t, n.Put("last", "a value long enough that every cut lands inside its record"))
			must(t, n.Close())
			segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.log"))
			slices.Sort(segs)
			last := segs[len(segs)-1]
			st, err := os.Stat(last)
			must(t, err)
			must(t, os.Truncate(last, st.Size()-cut))
			n = openAt(t, dir, opts)
			if n.Digest() != before || !reflect.DeepEqual(dump(t, n), values) {
				t.Fatal("state after a torn tail is not the state before the torn record")
			}
			if _, err := n.Get("last"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("torn record visible: %v", err)
			}
			must(t, n.Put("last", 2)) // and the log goes on from there
			d := n.Digest()
			must(t, n.Close())
			n = openAt(t, dir, opts)
			if n.Digest() != d {
				t.Fatal("digest changed after writing past a repaired tail")
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{Sync: SyncNever}
	n := openAt(t, dir, opts)
	first := n.ReplicaID()
	_, err := n.Incr("c", 5)
	must(t, err)
	must(t, n.Close())

	// A clean close keeps the identity, whatever the policy.
	n = openAt(t, dir, opts)
	if n.ReplicaID() != first || n.Status().Incarnation != 1 {
		t.Fatalf("clean restart: replica %s incarnation %d", n.ReplicaID(), n.Status().Incarnation)
	}
	must(t, n.Close())

	// An unclean stop under a non-durable policy (the marker survives)
	// gives a new replica ID; the old contributions stay.
	must(t, os.WriteFile(filepath.Join(dir, dirtyFile), nil, 0o644))
	n = openAt(t, dir, nil) // now SyncAlways
	second := n.ReplicaID()
	if second == first || n.Status().Incarnation != 2 {
		t.Fatalf("after an unclean stop: replica %s (was %s), incarnation %d", second, first, n.Status().Incarnation)
	}
	if _, err := os.Stat(filepath.Join(dir, dirtyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SyncAlways run kept the dirty marker: %v", err)
	}
	if v, _ := n.Incr("c", 1); v != 6 {
		t.Fatalf("counter across incarnations = %d, want 6", v)
	}
	must(t, n.Close())

	// A damaged identity file costs only a new identity.
	must(t, os.WriteFile(filepath.Join(dir, identityFile), []byte("{garbage"), 0o644))
	n = openAt(t, dir, nil)
	if n.ReplicaID() == second {
		t.Fatal("damaged identity kept the old ID")
	}
	if v, err := n.Get("c"); err != nil || v.Data != int64(6) {
		t.Fatalf("counter = %v, %v", v, err)
	}
}

// An automatic snapshot copies the state a chunk at a time, and writes
// commit between the chunks; the copy it ends with is still the state at
// one instant, with that instant's applied offset, and a restart from it
// gives back every write.
func TestSnapshotCopyLetsWritesIn(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1}
	n := openAt(t, dir, opts)
	var batch Batch
	for i := range 300 {
		batch.Put(fmt.Sprintf("k/%03d", i), i)
	}
	batch.SetAdd("set", "a", "b")
	batch.Incr("counter", 5)
	must(t, n.Commit(&batch))
	defer func(c int) { copyChunkKeys, copyPaused = c, nil }(copyChunkKeys)
	copyChunkKeys = 16
	pauses := 0
	copyPaused = func() {
		pauses++
		writeBetweenChunks(t, n, pauses)
		must(t, n.SetAdd("set", fmt.Sprint(pauses)))
		_, err := n.Incr("counter", 1)
		must(t, err)
	}
	body, ok, err := n.snap.snapshotBody()
	copyPaused = nil
	must(t, err)
	if !ok {
		t.Fatal("nothing to save")
	}
	if pauses < 10 {
		t.Fatalf("the copy paused %d times for 300+ keys in chunks of 16", pauses)
	}
	n.mu.RLock()
	want, applied := n.ks.Snapshot(), n.applied
	n.mu.RUnlock()
	if !body.State.Equal(want) {
		t.Fatal("the copy is not the state at the instant it ended")
	}
	if body.Offset != applied-1 {
		t.Fatalf("the copy's offset %d, the state's %d", body.Offset, applied-1)
	}
	// Written as the snapshotter writes it, it is what a restart starts from.
	must(t, n.snap.write(&body))
	must(t, n.Put("after", 1))
	digest, values := n.Digest(), dump(t, n)
	must(t, n.Close())
	n = openAt(t, dir, opts)
	if snaps, _ := scanSnapshotDir(filepath.Join(dir, snapDir), false); len(snaps) != 1 || snaps[0] != body.Offset {
		t.Fatalf("snapshots %v, want the copy's at %d", snaps, body.Offset)
	}
	if n.Digest() != digest || !reflect.DeepEqual(dump(t, n), values) {
		t.Fatal("the state changed across a restart from the copy")
	}
}

// TestSnapshotDueWhileBusyStarts: a snapshot that falls due while the
// snapshotter is busy starts when it is done, though no write comes after
// (before, it waited for the next write or sweep step).
func TestSnapshotDueWhileBusyStarts(t *testing.T) {
	dir := t.TempDir()
	// No sweep: its empty groups would start the snapshot too, up to
	// SweepInterval late.
	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	snapshotCopied = func() { // holds the first snapshot's file until released
		once.Do(func() { close(blocked); <-release })
	}
	t.Cleanup(func() { snapshotCopied = nil }) // after the node's Close (cleanups run last first)
	n := openAt(t, dir, &Options{SnapshotEveryOps: 10, SnapshotEveryBytes: -1, SweepInterval: time.Hour})
	for i := range 10 {
		must(t, n.Put(fmt.Sprintf("k%02d", i), i))
	}
	<-blocked // the first snapshot, of offset 9, is being written
	for i := 10; i < 40; i++ {
		must(t, n.Put(fmt.Sprintf("k%02d", i), i)) // 30 more: the next one falls due
	}
	close(release)
	eventually(t, "a snapshot of the 30 writes made while the first was written", func() bool {
		offs, err := scanSnapshotDir(filepath.Join(dir, snapDir), false)
		must(t, err)
		return slices.Contains(offs, 39)
	})
}
