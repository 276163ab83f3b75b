package crdt

import (
	"encoding/binary"
	"slices"
)

// Range sums let two replicas find, in one exchange, which parts of their
// states differ, so a catch-up after the deltas were truncated from the WAL
// sends only those parts (JoinRange per differing range, then MergeContext
// and MergeApplied) instead of the whole state. The buckets are key ranges,
// not hash buckets, so a differing bucket is exactly one JoinRange: the
// receiver removes the values of its keys in the range that the sender has
// seen removed, without a new kind of join.

// RangeSums returns the sum of the key hashes (the ones the digest adds up)
// of the keys in each range that bounds cut the key space into: ["",
// bounds[0]), [bounds[0], bounds[1]), ..., [bounds[len-1], end), so
// len(bounds)+1 sums. Two keyspaces with equal sums for a range hold the
// same entries for its keys (up to hash collisions). bounds must be
// non-empty and strictly increasing, else RangeSums returns nil. It costs O(keys *
// log(len(bounds))) and allocates only the result.
func (k *Keyspace) RangeSums(bounds []string) [][16]byte {
	for i, b := range bounds {
		if b == "" || i > 0 && b <= bounds[i-1] {
			return nil // "" would read as "no bound" in JoinRange
		}
	}
	sums := make([]sum128, len(bounds)+1)
	for key, e := range k.keys {
		i := rangeOf(bounds, key)
		sums[i] = sums[i].add(keyHash(key, e))
	}
	out := make([][16]byte, len(sums))
	for i, s := range sums {
		binary.BigEndian.PutUint64(out[i][0:], s.hi)
		binary.BigEndian.PutUint64(out[i][8:], s.lo)
	}
	return out
}

// rangeOf returns the index of the range of RangeSums(bounds) holding key:
// the number of bounds <= key.
func rangeOf(bounds []string, key string) int {
	i, found := slices.BinarySearch(bounds, key)
	if found {
		i++
	}
	return i
}
