package crdt

import (
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestKeyIndex: a prefix listing after a cursor finds exactly the live keys
// with the prefix after it, in order, whatever mix of additions, deletions
// and re-additions came before, also across suspensions (a replay); and
// the index holds each key with the entry it was added with.
func TestKeyIndex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x := keyIndex{max: rapid.IntRange(2, 6).Draw(t, "block")}
		live := map[string]*Entry{}
		key := rapid.StringMatching(`[abc]{0,3}`)
		var built []indexed
		for _, k := range rapid.SliceOfDistinct(key, func(k string) string { return k }).Draw(t, "built") {
			live[k] = &Entry{}
			built = append(built, indexed{k, live[k]})
		}
		x.build(built)
		has := func(k string) *Entry { return live[k] }
		for i, n := 0, rapid.IntRange(0, 200).Draw(t, "n"); i <= n; i++ {
			k := key.Draw(t, "key")
			op := rapid.IntRange(0, 3).Draw(t, "op")
			if i == n {
				op = 3 // end resumed, and checked
				if !x.suspended {
					x.suspend()
				}
			}
			switch op {
			case 3:
				if x.suspended {
					x.resume(has)
				} else {
					x.suspend()
				}
			case 0:
				if live[k] == nil { // an entry stays the same while its key lives
					live[k] = &Entry{}
				}
				x.add(k, live[k])
			case 1:
				delete(live, k)
				x.remove(k)
			case 2:
				after := key.Draw(t, "after")
				var want []string
				for lk := range live {
					if strings.HasPrefix(lk, k) && lk > after {
						want = append(want, lk)
					}
				}
				slices.Sort(want)
				if x.suspended {
					x.flush(has) // as the keyspace does before a listing
				}
				var got []string
				x.prefixed(k, after, func(key string) bool {
					got = append(got, key)
					return true
				})
				if !slices.Equal(got, want) {
					t.Fatalf("prefix %q after %q: %q, want %q", k, after, got, want)
				}
			}
			if x.suspended {
				continue
			}
			// The blocks stay sorted, non-empty, within the limit, in order.
			var all []string
			for _, blk := range x.blocks {
				if len(blk) == 0 || len(blk) > x.max {
					t.Fatalf("a block of %d keys (limit %d)", len(blk), x.max)
				}
				for _, it := range blk {
					if it.e != live[it.key] {
						t.Fatalf("key %q indexed with another entry than it was added with", it.key)
					}
					all = append(all, it.key)
				}
			}
			if !slices.IsSorted(all) || len(all) != len(live) {
				t.Fatalf("index %q, %d live keys", all, len(live))
			}
		}
	})
}
