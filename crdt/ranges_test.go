package crdt

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestAddRanges: addRanges gives what sorting and merging everything gives,
// whatever the order and overlap of the ranges added.
func TestAddRanges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.Custom(func(t *rapid.T) DotRange {
			first := rapid.Uint64Range(1, 40).Draw(t, "first")
			return DotRange{Replica: ReplicaID(rapid.IntRange(1, 3).Draw(t, "r")), First: first, Last: first + rapid.Uint64Range(0, 3).Draw(t, "len")}
		})
		var got, all []DotRange
		for range rapid.IntRange(0, 12).Draw(t, "joins") {
			src := rapid.SliceOfN(gen, 0, 4).Draw(t, "src")
			if rapid.Bool().Draw(t, "canonical") {
				src = mergeRanges(slices.Clone(src))
			}
			all = append(all, src...)
			got = addRanges(got, slices.Clone(src))
		}
		if want := mergeRanges(all); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}
