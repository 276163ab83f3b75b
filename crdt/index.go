package crdt

import (
	"cmp"
	"strings"

	"github.com/google/btree"
)

// indexDegree is the B-tree's minimum degree: nodes hold up to
// 2*indexDegree-1 keys. 32 keeps a node's keys in a few cache lines and
// the tree 4 levels deep at a million keys.
const indexDegree = 32

// keyIndex keeps the live keys in order for prefix listings and range
// joins: a B-tree, changed only when a key is created or dropped (O(log n)
// each; writes to an existing key do not touch it). It replaced a sorted
// slice that took additions and deletions as unsorted notes and sorted
// them in at the next listing or once they outgrew the keyspace: O(1) per
// write, but a sort of every note at once under the state lock, which a
// mass expiry or a listing after a bulk load turned into a stall of
// 70-100 ms at 100,000 keys (BenchmarkPutWhileExpiring in node).
type keyIndex struct {
	t *btree.BTreeG[string] // nil until the first key
}

func (x *keyIndex) tree() *btree.BTreeG[string] {
	if x.t == nil {
		x.t = btree.NewG(indexDegree, cmp.Less[string])
	}
	return x.t
}

// add records that key became live; remove, that it was dropped.
func (x *keyIndex) add(key string)    { x.tree().ReplaceOrInsert(key) }
func (x *keyIndex) remove(key string) { x.tree().Delete(key) }

// ascend calls fn for each key >= lo in order, until fn returns false.
func (x *keyIndex) ascend(lo string, fn func(key string) bool) {
	if x.t != nil {
		x.t.AscendGreaterOrEqual(lo, fn)
	}
}

// prefixed calls fn for each key with prefix that sorts after after (all
// of them when after is ""), in order, until fn returns false.
func (x *keyIndex) prefixed(prefix, after string, fn func(key string) bool) {
	x.ascend(max(prefix, after), func(key string) bool {
		if !strings.HasPrefix(key, prefix) {
			return false
		}
		if key == after {
			return true
		}
		return fn(key)
	})
}
