package crdt

import (
	"slices"
	"strings"
)

// keyIndex keeps the keys in order for prefix listings and range joins.
// Writes stay O(1): a new or deleted key is only noted. The next ordered
// read resolves the notes against the live map and splices them into the
// sorted slice: O((a + d) log n) comparisons plus one copy of the slice
// headers, for a additions and d deletions among n keys. Ordered reads are
// rare next to writes (listings, catch-up), so this costs less than keeping
// a tree ordered on every write, and adds a string header (16 bytes) per
// key.
type keyIndex struct {
	sorted []string // sorted, unique; exactly the live keys after merge
	notes  []string // keys added or deleted since the last merge
}

// note records that key was added to or deleted from live.
func (x *keyIndex) note(key string, live map[string]*Entry) {
	x.notes = append(x.notes, key)
	// Keys deleted and re-added between reads would grow the notes
	// without bound: merge once they outgrow the keyspace, counted as the
	// larger of the live keys and the index (a mass removal shrinks the
	// live keys: measured against them alone, it merged, O(n log n) under
	// the state lock, every time half of the rest were gone).
	if len(x.notes) > max(len(live), len(x.sorted))+1024 {
		x.merge(live)
	}
}

// merge brings sorted up to date with live.
func (x *keyIndex) merge(live map[string]*Entry) {
	if len(x.notes) == 0 {
		return
	}
	slices.Sort(x.notes)
	notes := slices.Compact(x.notes)
	type edit struct {
		pos int    // index in sorted
		key string // insert key before sorted[pos]...
		del bool   // ...or delete sorted[pos]
	}
	var edits []edit
	for _, k := range notes {
		pos, found := slices.BinarySearch(x.sorted, k)
		_, alive := live[k]
		switch {
		case alive && !found:
			edits = append(edits, edit{pos: pos, key: k})
		case !alive && found:
			edits = append(edits, edit{pos: pos, del: true})
		}
	}
	clear(x.notes)
	x.notes = x.notes[:0]
	if len(edits) == 0 {
		return
	}
	// Keys that all sort after the last indexed one (a bootstrap receiving
	// ranges in ascending order, an append-mostly workload) are appended
	// in place: amortised O(a) instead of a copy of the whole index.
	if edits[0].pos == len(x.sorted) && !edits[0].del {
		for _, e := range edits {
			x.sorted = append(x.sorted, e.key)
		}
		return
	}
	// Notes are sorted, so edits are in position order, an insertion
	// before the deletion at the same position (its key sorts before).
	out := make([]string, 0, len(live))
	from := 0
	for _, e := range edits {
		out = append(out, x.sorted[from:e.pos]...)
		from = e.pos
		if e.del {
			from++
		} else {
			out = append(out, e.key)
		}
	}
	out = append(out, x.sorted[from:]...)
	x.sorted = out
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
