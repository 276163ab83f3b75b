package crdt

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// candidateBounds are range bounds around and between the test keys.
var candidateBounds = []string{"a", "a\x00", "b", "bb", "c", "d"}

// keysIn returns the keys of k in [lo, hi) ("" = no end).
func keysIn(k *Keyspace, lo, hi string) []string {
	var out []string
	for _, ki := range k.Keys("", 0, 0) {
		if ki.Key >= lo && (hi == "" || ki.Key < hi) {
			out = append(out, ki.Key)
		}
	}
	return out
}

// A catch-up that joins only the ranges whose sums differ, then the
// context and the applied set, ends in the same state as the transfer of
// the whole state; equal sums mean equal entries.
func TestRangeSumsPartialTransfer(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				rs, _ := genStates(t, m.m, 3)
				src, dst := rs[0].ks, rs[1].ks
				var bounds []string
				for _, b := range candidateBounds {
					if rapid.Bool().Draw(t, "bound "+b) {
						bounds = append(bounds, b)
					}
				}
				ctx := src.Context()
				rangeAt := func(i int) (lo, hi string) {
					if i > 0 {
						lo = bounds[i-1]
					}
					if i < len(bounds) {
						hi = bounds[i]
					}
					return lo, hi
				}

				full := fromState(t, dst.Snapshot())
				full.JoinRange("", "", src.KeyState(keysIn(src, "", "")...), ctx)
				full.MergeContext(ctx)
				full.MergeApplied(src.Applied())

				part := fromState(t, dst.Snapshot())
				ss, ds := src.RangeSums(bounds), part.RangeSums(bounds)
				if len(ss) != len(bounds)+1 || len(ds) != len(ss) {
					t.Fatalf("got %d and %d sums for %d bounds", len(ss), len(ds), len(bounds))
				}
				var total sum128
				for i := range ss {
					total = total.add(sum128{hi: binary.BigEndian.Uint64(ss[i][:8]), lo: binary.BigEndian.Uint64(ss[i][8:])})
					lo, hi := rangeAt(i)
					same := src.KeyState(keysIn(src, lo, hi)...).Equal(part.KeyState(keysIn(part, lo, hi)...))
					if same != (ss[i] == ds[i]) {
						t.Fatalf("range [%q, %q): entries equal %v, sums equal %v", lo, hi, same, ss[i] == ds[i])
					}
					if !same {
						part.JoinRange(lo, hi, src.KeyState(keysIn(src, lo, hi)...), ctx)
					}
				}
				if total != src.sum {
					t.Fatalf("range sums add up to %v, the keyspace's sum is %v", total, src.sum)
				}
				part.MergeContext(ctx)
				part.MergeApplied(src.Applied())
				sameState(t, "partial vs full transfer", full, part)
			})
		})
	}
}

func TestRangeSumsBadBounds(t *testing.T) {
	k := NewKeyspace()
	for _, bounds := range [][]string{{""}, {"b", "a"}, {"a", "a"}} {
		if got := k.RangeSums(bounds); got != nil {
			t.Fatalf("RangeSums(%q) = %v, want nil", bounds, got)
		}
	}
	if got := k.RangeSums(nil); len(got) != 1 || got[0] != [16]byte{} {
		t.Fatalf("RangeSums(nil) on an empty keyspace = %v", got)
	}
}

// A RangeScan stepped a few keys at a time, with writes, deliveries and
// sweeps between the steps (and a second scan opened midway), ends with
// the sums RangeSums gives for the state at its last step, and keeps them
// so until it is closed.
func TestRangeScanMatchesRangeSums(t *testing.T) {
	checkScans(t, func(t *rapid.T, r rnd, k *Keyspace, change func()) {
		var bounds []string
		for _, b := range candidateBounds {
			if rapid.Bool().Draw(t, "bound "+b) {
				bounds = append(bounds, b)
			}
		}
		scans := []*RangeScan{k.StartRangeScan(bounds)}
		done := make([]bool, 1)
		for steps := 0; steps < 60 && slices.Contains(done, false); steps++ {
			if r.intn(2, "step?") == 0 {
				i := r.intn(len(scans), "which scan")
				if !scans[i].Step(1 + r.intn(2, "chunk")) {
					done[i] = true
				}
			} else {
				change()
			}
			if len(scans) == 1 && r.intn(8, "second?") == 0 {
				scans, done = append(scans, k.StartRangeScan(bounds)), append(done, false)
			}
		}
		for i, s := range scans {
			for s.Step(1) {
			}
			if got, want := s.Sums(), k.RangeSums(bounds); !slices.Equal(got, want) {
				t.Fatalf("scan %d: sums %x, RangeSums %x", i, got, want)
			}
		}
		for range 3 {
			change()
		}
		for i, s := range scans {
			if got, want := s.Sums(), k.RangeSums(bounds); !slices.Equal(got, want) {
				t.Fatalf("scan %d after more changes: sums %x, RangeSums %x", i, got, want)
			}
			s.Close()
		}
		if len(k.scans) != 0 {
			t.Fatalf("%d scans left open", len(k.scans))
		}
	})
}

// KeyQuantiles cuts the keys into ranges whose sizes differ by at most one.
func TestKeyQuantiles(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := NewKeyspace()
		k.index.max = rapid.IntRange(2, 8).Draw(t, "block")
		n := rapid.IntRange(0, 60).Draw(t, "keys")
		tx := k.Begin(1, 0)
		for i := range n {
			d, err := tx.Put(fmt.Sprintf("k%03d", i), []byte("1"), 1)
			if err != nil {
				t.Fatal(err)
			}
			k.Apply(d)
		}
		m := rapid.IntRange(1, 70).Draw(t, "m")
		bounds := k.KeyQuantiles(m)
		if want := min(m, n) - 1; len(bounds) != max(want, 0) {
			t.Fatalf("%d keys, m %d: %d bounds %q", n, m, len(bounds), bounds)
		}
		if k.StartRangeScan(bounds) == nil {
			t.Fatalf("bounds %q not valid for RangeSums", bounds)
		}
		lo, sizes := "", []int{}
		for _, b := range append(bounds, "") {
			sizes = append(sizes, len(keysIn(k, lo, b)))
			lo = b
		}
		if n > 0 && slices.Max(sizes)-slices.Min(sizes) > 1 {
			t.Fatalf("range sizes %v", sizes)
		}
	})
}

// A CopyScan stepped a few keys at a time, with writes, deliveries and
// sweeps between the steps, ends with a copy equal to Snapshot of the
// state at its last step, and the copy does not change with the keyspace
// after it is closed.
func TestCopyScanMatchesSnapshot(t *testing.T) {
	checkScans(t, func(t *rapid.T, r rnd, k *Keyspace, change func()) {
		c := k.StartCopy()
		for steps := 0; steps < 40; steps++ {
			if r.intn(2, "step?") == 0 {
				if !c.Step(1+r.intn(2, "chunk")) && r.intn(3, "stop?") == 0 {
					break
				}
			} else {
				change()
			}
		}
		for c.Step(1) {
		}
		if again, walking := c.Pending(); again != 0 || walking {
			t.Fatalf("Step reported nothing left with %d keys to copy again, walking %v", again, walking)
		}
		got, want := c.Snapshot(), k.Snapshot()
		c.Close()
		if !got.Equal(want) {
			t.Fatalf("copy\n%s\nstate\n%s", dump(got), dump(want))
		}
		for range 4 {
			change()
		}
		if !got.Equal(want) {
			t.Fatalf("the closed copy changed with the keyspace\n%s\nwas\n%s", dump(got), dump(want))
		}
		if len(k.copies) != 0 {
			t.Fatalf("%d copies left open", len(k.copies))
		}
	})
}

// KeysFrom lists the keys of a range in order, from any starting key.
func TestKeysFrom(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := NewKeyspace()
		k.index.max = rapid.IntRange(2, 8).Draw(t, "block")
		tx := k.Begin(1, 0)
		for i := range rapid.IntRange(0, 40).Draw(t, "keys") {
			d, err := tx.Put(fmt.Sprintf("k%02d", i*3), []byte("1"), 1)
			if err != nil {
				t.Fatal(err)
			}
			k.Apply(d)
		}
		from := fmt.Sprintf("k%02d", rapid.IntRange(0, 130).Draw(t, "from"))
		to := ""
		if rapid.Bool().Draw(t, "bounded") {
			to = fmt.Sprintf("k%02d", rapid.IntRange(0, 130).Draw(t, "to"))
		}
		limit := rapid.IntRange(1, 50).Draw(t, "limit")
		var want []string
		for _, ki := range k.Keys("", 0, 0) {
			if ki.Key >= from && (to == "" || ki.Key < to) && len(want) < limit {
				want = append(want, ki.Key)
			}
		}
		if got := k.KeysFrom(from, to, limit); !slices.Equal(got, want) {
			t.Fatalf("KeysFrom(%q, %q, %d) = %q, want %q", from, to, limit, got, want)
		}
	})
}

// checkScans runs body, in every mode, on the keyspace of the first of two
// replicas with a random history (with small index blocks, so that scans
// cross them); change changes it between two steps (changeDuringScan).
func checkScans(t *testing.T, body func(t *rapid.T, r rnd, k *Keyspace, change func())) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				r := rapidRnd{t}
				rs, _ := history(t, r, m.m, 2, rapid.IntRange(0, 10).Draw(t, "before"), nil)
				k := rs[0].ks
				k.index.max = rapid.IntRange(2, 4).Draw(t, "block")
				var items []indexed
				for _, key := range slices.Sorted(maps.Keys(k.keys)) {
					items = append(items, indexed{key, k.keys[key]})
				}
				k.index.buildSorted(items)
				body(t, r, k, func() { changeDuringScan(t, r, rs, m.m) })
			})
		})
	}
}

// changeDuringScan changes the first replica's keyspace between two steps
// of a scan: a write of its own, a delivery of the other's, or a sweep.
func changeDuringScan(t *rapid.T, r rnd, rs []*replica, m mode) {
	switch r.intn(3, "change") {
	case 0:
		step(t, r, rs[0], m)
	case 1:
		if d := step(t, r, rs[1], m); d != nil {
			rs[0].ks.Apply(d) // a delivery
		}
	case 2:
		rs[0].now += int64(r.intn(20, "time"))
		rs[0].sweep(1 + r.intn(3, "sweep limit"))
	}
}
