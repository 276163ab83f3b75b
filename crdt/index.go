package crdt

import (
	"slices"
	"strings"
)

// keyIndex keeps the keys in order for prefix listings and range joins.
// Writes stay O(1): a new key is appended to an unsorted tail and a deleted
// key is only counted. The next ordered read sorts the tail and merges it
// in, dropping deleted keys, in O(n + t log t) for n keys and t new ones.
// Ordered reads are rare next to writes (listings, catch-up), so this costs
// far less than keeping a tree ordered on every write, and adds only a
// string header (16 bytes) per key.
type keyIndex struct {
	sorted []string // sorted, unique; may hold keys deleted since
	tail   []string // keys added since the last merge, any order
	dead   int      // deletions since the last merge
}

func (x *keyIndex) add(key string, live map[string]*Entry) {
	x.tail = append(x.tail, key)
	// Keys deleted and re-added between reads would grow the tail
	// without bound: merge once it outgrows the keyspace.
	if len(x.tail) > len(live)+1024 {
		x.merge(live)
	}
}

func (x *keyIndex) remove() { x.dead++ }

// merge brings sorted up to date with live.
func (x *keyIndex) merge(live map[string]*Entry) {
	if len(x.tail) == 0 && x.dead == 0 {
		return
	}
	slices.Sort(x.tail)
	out := make([]string, 0, len(live))
	i, j := 0, 0
	for i < len(x.sorted) || j < len(x.tail) {
		var k string
		switch {
		case j == len(x.tail) || (i < len(x.sorted) && x.sorted[i] < x.tail[j]):
			k = x.sorted[i]
			i++
		default:
			k = x.tail[j]
			j++
		}
		if n := len(out); n > 0 && out[n-1] == k {
			continue
		}
		if _, ok := live[k]; ok {
			out = append(out, k)
		}
	}
	x.sorted, x.tail, x.dead = out, nil, 0
}

// from returns the sorted keys starting at the first key >= lo.
func (x *keyIndex) from(lo string, live map[string]*Entry) []string {
	x.merge(live)
	i, _ := slices.BinarySearch(x.sorted, lo)
	return x.sorted[i:]
}

// prefixed returns the sorted keys with prefix.
func (x *keyIndex) prefixed(prefix string, live map[string]*Entry) []string {
	ks := x.from(prefix, live)
	n, _ := slices.BinarySearchFunc(ks, prefix, func(k, p string) int {
		if strings.HasPrefix(k, p) {
			return -1
		}
		return strings.Compare(k, p)
	})
	return ks[:n]
}
