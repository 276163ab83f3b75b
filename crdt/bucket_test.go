package crdt

import (
	"encoding/binary"
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
