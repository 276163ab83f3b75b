package crdt

import (
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestKeyIndex: the index lists exactly the live keys, in order, whatever
// mix of additions, deletions, re-additions and reads came before.
func TestKeyIndex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var x keyIndex
		live := map[string]*Entry{}
		key := rapid.StringMatching(`[ab]{0,3}`)
		for i, n := 0, rapid.IntRange(0, 200).Draw(t, "n"); i < n; i++ {
			k := key.Draw(t, "key")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				if _, ok := live[k]; !ok {
					live[k] = &Entry{}
					x.note(k, live)
				}
			case 1:
				if _, ok := live[k]; ok {
					delete(live, k)
					x.note(k, live)
				}
			case 2:
				var want []string
				for lk := range live {
					if strings.HasPrefix(lk, k) {
						want = append(want, lk)
					}
				}
				slices.Sort(want)
				if got := x.prefixed(k, live); !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Fatalf("prefix %q: %q, want %q", k, got, want)
				}
			}
		}
	})
}
