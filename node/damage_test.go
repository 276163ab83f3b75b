package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// treeState maps every file under dir (but LOCK files) to its contents.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		b, err := os.ReadFile(p)
		m[strings.TrimPrefix(p, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func putKeys(t *testing.T, n *Node, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := n.Put(fmt.Sprintf("k%04d", i), i); err != nil {
			t.Fatal(err)
		}
	}
}

// lastSegmentPath returns the last WAL store file of a data directory.
func lastSegmentPath(t *testing.T, dir string) string {
	t.Helper()
	stores, err := filepath.Glob(filepath.Join(dir, "wal", "*.log"))
	if err != nil || len(stores) == 0 {
		t.Fatalf("no WAL segments in %s", dir)
	}
	slices.Sort(stores)
	return stores[len(stores)-1]
}

// flipMiddle XORs one byte in the middle of a file: inside some record of
// the segment, with intact records after it.
func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// walDots returns the dots issued by each record of a data directory's WAL.
func walDots(t *testing.T, dir string) map[crdt.Dot]uint64 {
	t.Helper()
	dots := map[crdt.Dot]uint64{}
	_, err := wal.Inspect(filepath.Join(dir, "wal"), &wal.InspectOptions{OnRecord: func(off uint64, rec []byte) error {
		op, err := DecodeOp(rec)
		if err != nil {
			return err
		}
		if op.Kind == OpDelta {
			for _, dr := range op.Delta.Dots() {
				for s := dr.First; s <= dr.Last; s++ {
					dots[crdt.Dot{Replica: dr.Replica, Seq: s}] = off
				}
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return dots
}

func readIdentityFile(t *testing.T, dir string) identity {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		t.Fatal(err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestOpenRefusesACorruptWAL: a flipped byte with intact records after it
// is not a torn tail: Open refuses, names the damage and the repair, and
// leaves every file as it was.
func TestOpenRefusesACorruptWAL(t *testing.T) {
	dir := t.TempDir()
	n := openAt(t, dir, nil)
	putKeys(t, n, 0, 300)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	flipMiddle(t, lastSegmentPath(t, dir))
	before := treeState(t, dir)
	_, err := Open(dir, nil)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), "shoal wal repair") {
		t.Fatalf("Open = %v, want ErrCorrupt naming the repair", err)
	}
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.Follows == "" {
		t.Fatalf("Open = %v, want the WAL's *CorruptError saying what follows", err)
	}
	if after := treeState(t, dir); !maps.Equal(before, after) {
		t.Fatal("a refused Open changed the data directory")
	}
}

// TestRepairThenOpen: Repair keeps what precedes the damage, sets the rest
// aside, takes a new replica ID, and the node opens and writes again
// without reusing a dot.
func TestRepairThenOpen(t *testing.T) {
	dir := t.TempDir()
	n := openAt(t, dir, nil)
	old := n.Status()
	putKeys(t, n, 0, 300)
	n.Close()
	oldDots := walDots(t, dir)
	flipMiddle(t, lastSegmentPath(t, dir))
	rep, err := Repair(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Changed || rep.OldReplica != old.Replica || rep.NewReplica == old.Replica || rep.Incarnation != old.Incarnation+1 ||
		rep.WAL == nil || rep.WAL.Dropped == 0 || len(rep.WAL.SetAside) == 0 {
		t.Fatalf("repair report %+v (wal %+v)", rep, rep.WAL)
	}
	id := readIdentityFile(t, dir)
	if !slices.Contains(id.Previous, old.Replica) || id.Replica != rep.NewReplica {
		t.Fatalf("identity after repair: %+v", id)
	}
	n = openAt(t, dir, nil)
	if st := n.Status(); st.Replica != rep.NewReplica || st.Incarnation != rep.Incarnation {
		t.Fatalf("opened as %s/%d, repair said %s/%d", st.Replica, st.Incarnation, rep.NewReplica, rep.Incarnation)
	}
	kept := int(rep.WAL.Next)
	for i := 0; i < 300; i++ {
		v, err := n.Get(fmt.Sprintf("k%04d", i))
		switch {
		case i < kept && (err != nil || fmt.Sprint(v.Data) != fmt.Sprint(i)):
			t.Fatalf("k%04d (kept) = %v, %v", i, v.Data, err)
		case i >= kept && !errors.Is(err, ErrNotFound):
			t.Fatalf("k%04d was set aside but reads %v, %v", i, v.Data, err)
		}
	}
	putKeys(t, n, 1000, 1050)
	n.Close()
	for d, off := range walDots(t, dir) {
		if prev, ok := oldDots[d]; ok && off >= rep.WAL.Next {
			t.Fatalf("dot %v of new record %d was already issued by record %d", d, off, prev)
		}
	}
	if again, err := Repair(dir, nil); err != nil || again.Changed {
		t.Fatalf("second repair: %+v, %v", again, err)
	}
}

// TestRepairWithASnapshotLosesNothing: the same damage under a snapshot
// that covers it (the "--snapshot-every-ops 50" directory, which
// used to never open again): the repair keeps the snapshot and the intact
// records after it, so every write is still there.
func TestRepairWithASnapshotLosesNothing(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{SnapshotEveryOps: 50}
	n := openAt(t, dir, opts)
	putKeys(t, n, 0, 300)
	eventually(t, "a snapshot of record 249", func() bool {
		offs, _ := scanSnapshotDir(filepath.Join(dir, snapDir), false)
		return len(offs) > 0 && offs[0] >= 249
	})
	n.Close()
	flipMiddle(t, lastSegmentPath(t, dir))
	if _, err := Open(dir, opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	rep, err := Repair(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Snapshot == "" || rep.WAL.Next != 300 {
		t.Fatalf("repair report %+v (wal %+v)", rep, rep.WAL)
	}
	n = openAt(t, dir, opts)
	for i := 0; i < 300; i++ {
		if v, err := n.Get(fmt.Sprintf("k%04d", i)); err != nil || fmt.Sprint(v.Data) != fmt.Sprint(i) {
			t.Fatalf("k%04d = %v, %v", i, v.Data, err)
		}
	}
	putKeys(t, n, 300, 320)
}

// TestRepairSnapshotBeyondTheWAL: a WAL shorter than a snapshot (its last
// segments lost) is refused. The repair keeps the newest valid snapshot
// (it holds the records the WAL lost) with an empty WAL after it; a
// damaged one is set aside and the WAL kept instead.
func TestRepairSnapshotBeyondTheWAL(t *testing.T) {
	for _, damaged := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot damaged=%v", damaged), func(t *testing.T) {
			dir := t.TempDir()
			opts := &Options{SnapshotEveryOps: 100, SegmentBytes: 4 << 10}
			n := openAt(t, dir, opts)
			putKeys(t, n, 0, 150)
			eventually(t, "a snapshot", func() bool {
				offs, _ := scanSnapshotDir(filepath.Join(dir, snapDir), false)
				return len(offs) > 0
			})
			n.Close()
			offs, _ := scanSnapshotDir(filepath.Join(dir, snapDir), false)
			snap := filepath.Join(dir, snapDir, snapName(offs[0]))
			// Lose the WAL segments past the start of the one holding the
			// snapshot's last record.
			for {
				in, err := wal.Inspect(filepath.Join(dir, "wal"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if in.Next <= offs[0] {
					break
				}
				if len(in.Segments) == 1 {
					t.Fatal("the WAL has a single segment")
				}
				last := lastSegmentPath(t, dir)
				os.Remove(last)
				os.Remove(strings.TrimSuffix(last, ".log") + ".index")
			}
			in, _ := wal.Inspect(filepath.Join(dir, "wal"), nil)
			if damaged {
				flipMiddle(t, snap)
			}
			before := treeState(t, dir)
			if _, err := Open(dir, opts); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "covers WAL records") {
				t.Fatalf("Open = %v, want a refusal of the snapshot", err)
			}
			if after := treeState(t, dir); !maps.Equal(before, after) {
				t.Fatal("a refused Open changed the data directory")
			}
			rep, err := Repair(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			kept := int(offs[0] + 1)
			if damaged {
				kept = int(in.Next)
				if rep.Snapshot != "" || len(rep.SnapshotsSetAside) != 1 {
					t.Fatalf("repair report %+v", rep)
				}
			} else if rep.Snapshot != snap || len(rep.SnapshotsSetAside) != 0 || rep.WAL.First != offs[0]+1 {
				t.Fatalf("repair report %+v (wal %+v)", rep, rep.WAL)
			}
			n = openAt(t, dir, opts)
			for i := 0; i < kept; i++ {
				if v, err := n.Get(fmt.Sprintf("k%04d", i)); err != nil || fmt.Sprint(v.Data) != fmt.Sprint(i) {
					t.Fatalf("k%04d = %v, %v", i, v.Data, err)
				}
			}
			putKeys(t, n, 500, 510)
		})
	}
}

// TestTornTailTakesANewIncarnation: a cut of the WAL's tail may remove an
// operation a peer holds, so the node takes a new replica ID before the
// cut; the old one is kept in the identity's history.
func TestTornTailTakesANewIncarnation(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := &Options{Sync: pol}
			n := openAt(t, dir, opts)
			st := n.Status()
			putKeys(t, n, 0, 50)
			n.Close()
			oldDots := walDots(t, dir)
			seg := lastSegmentPath(t, dir)
			fi, _ := os.Stat(seg)
			if err := os.Truncate(seg, fi.Size()-3); err != nil {
				t.Fatal(err)
			}
			n = openAt(t, dir, opts)
			st2 := n.Status()
			if st2.Replica == st.Replica || st2.Incarnation != st.Incarnation+1 {
				t.Fatalf("after a cut: %s/%d, before %s/%d", st2.Replica, st2.Incarnation, st.Replica, st.Incarnation)
			}
			if id := readIdentityFile(t, dir); !slices.Contains(id.Previous, st.Replica) || id.Reason == "" {
				t.Fatalf("identity %+v", id)
			}
			putKeys(t, n, 100, 120)
			n.Close()
			for d, off := range walDots(t, dir) {
				if prev, ok := oldDots[d]; ok && off >= 49 {
					t.Fatalf("dot %v of record %d was issued before by record %d", d, off, prev)
				}
			}
			// A clean reopen keeps the identity.
			n = openAt(t, dir, opts)
			if st3 := n.Status(); st3.Replica != st2.Replica {
				t.Fatalf("clean reopen took a new ID %s", st3.Replica)
			}
		})
	}
}

// TestClockNeverGoesBack: after the wall clock stepped back by more than
// MaxClockDrift between runs, a new write still sorts after the node's
// own earlier ones (its timestamps are restored unclamped at replay).
func TestClockNeverGoesBack(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			dir := t.TempDir()
			t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
			now := t0
			opts := &Options{Now: func() time.Time { return now }, MaxClockDrift: time.Minute}
			n := openAt(t, dir, opts)
			if err := n.Put("k", "old"); err != nil {
				t.Fatal(err)
			}
			if snapshot {
				if err := n.Snapshot(); err != nil {
					t.Fatal(err)
				}
				if err := n.Put("other", 1); err != nil { // a record after the snapshot
					t.Fatal(err)
				}
			}
			n.Close()
			now = t0.Add(-time.Hour)
			n = openAt(t, dir, opts)
			if err := n.Put("k", "new"); err != nil {
				t.Fatal(err)
			}
			if v, err := n.Get("k"); err != nil || v.Data != "new" {
				t.Fatalf("Get(k) = %v, %v", v.Data, err)
			}
			n.Close()
			// Every timestamp is above the ones issued before it.
			var last crdt.Timestamp
			_, err := wal.Inspect(filepath.Join(dir, "wal"), &wal.InspectOptions{OnRecord: func(off uint64, rec []byte) error {
				op, err := DecodeOp(rec)
				if err != nil {
					return err
				}
				if op.Time <= last {
					return fmt.Errorf("record %d has time %v, not after %v", off, op.Time, last)
				}
				last = op.Time
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
