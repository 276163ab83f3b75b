package crdt

import (
	"slices"
	"sort"
	"strings"
)

// indexBlock is the largest block of the key index: a block splits in two
// beyond it. 1,024 keys (24 KiB of string headers and entry pointers) keep
// an insertion's copy small next to its binary searches, whose comparisons
// each miss the cache (random keys: 1.8 µs an insertion with blocks of 256,
// 512 or 1,024 alike), and the block list short (a thousand blocks per
// million keys).
const indexBlock = 1024

// keyIndex keeps the live keys in order, each with its entry, for prefix
// listings, range joins and range sums: sorted blocks of at most
// indexBlock keys, in order (a one-level B+ tree). It changes only when a
// key is created or dropped, O(log n + indexBlock) each; writes to an
// existing key do not touch it. It replaced a sorted slice that took
// additions and deletions as unsorted notes and sorted them in at the
// next listing or once they outgrew the keyspace:
// O(1) per write, but a sort of every note at once under the state lock,
// which a mass expiry or a listing after a bulk load turned into a stall
// of 70-100 ms at 100,000 keys (BenchmarkPutWhileExpiring in node).
type keyIndex struct {
	blocks [][]indexed // each sorted by key and non-empty; every key of a block sorts before the next block's
	max    int         // the largest block; 0: indexBlock (tests set it small)

	// While suspended (a replay: nothing lists until it ends), keys
	// created are noted in pending, unsorted, and merged in by one sort at
	// resume. Removals go to the blocks as usual; pending is filtered at
	// resume. Inserting one by one costs a copy of half a block each,
	// write barriers included while the collector runs, which a replay
	// keeps busy: a fifth of its time.
	suspended bool
	pending   []string
}

// indexed is one key of the index with its entry in the keyspace. A key's
// entry stays the same while the key lives (joins change it in place), so
// a walk in key order reads the entries without a lookup in the keyspace's
// map for each (RangeScan: a map lookup was two cache misses of a key's
// four).
type indexed struct {
	key string
	e   *Entry
}

// block returns the index of the block where key is or would go: the
// last one whose first key is <= key (the first block when none is).
func (x *keyIndex) block(key string) int {
	i := sort.Search(len(x.blocks), func(i int) bool { return x.blocks[i][0].key > key })
	return max(i-1, 0)
}

// build replaces the index with keys (unique, in any order): sorted once
// and cut into blocks three quarters full, which costs less than adding
// them one by one and leaves room to grow (a keyspace read from a
// snapshot).
func (x *keyIndex) build(keys []indexed) {
	slices.SortFunc(keys, func(a, b indexed) int { return strings.Compare(a.key, b.key) })
	x.buildSorted(keys)
}

// buildSorted is build for keys already sorted.
func (x *keyIndex) buildSorted(keys []indexed) {
	size := max(x.limit()*3/4, 1)
	x.blocks = make([][]indexed, 0, (len(keys)+size-1)/size)
	for len(keys) > 0 {
		n := min(size, len(keys))
		x.blocks = append(x.blocks, keys[:n:n])
		keys = keys[n:]
	}
}

// suspend starts noting created keys instead of inserting them.
func (x *keyIndex) suspend() { x.suspended = true }

// resume inserts the keys noted while suspended that live still reports
// (with their entries), and goes back to inserting keys as they come.
func (x *keyIndex) resume(live func(key string) *Entry) {
	x.suspended = false
	x.flush(live)
}

// flush inserts the keys noted so far that live reports with an entry (a
// key noted and then dropped has none) and keeps the index suspended if it
// was.
func (x *keyIndex) flush(live func(key string) *Entry) {
	if len(x.pending) == 0 {
		return
	}
	noted := x.pending
	x.pending = nil
	slices.Sort(noted)
	noted = slices.Compact(noted)
	pending := make([]indexed, 0, len(noted))
	for _, key := range noted {
		if e := live(key); e != nil {
			pending = append(pending, indexed{key, e})
		}
	}
	if len(pending) < x.size()/8 {
		// Few: one by one costs less than rewriting every block.
		for _, it := range pending {
			x.insert(it.key, it.e)
		}
		return
	}
	all := make([]indexed, 0, x.size()+len(pending))
	i := 0
	for _, blk := range x.blocks {
		for _, it := range blk {
			for ; i < len(pending) && pending[i].key < it.key; i++ {
				all = append(all, pending[i])
			}
			if i < len(pending) && pending[i].key == it.key {
				it = pending[i] // a key already in: its entry as of now, as insert takes it
				i++
			}
			all = append(all, it)
		}
	}
	all = append(all, pending[i:]...)
	x.buildSorted(all)
}

// size returns the number of keys in the blocks.
func (x *keyIndex) size() int {
	n := 0
	for _, blk := range x.blocks {
		n += len(blk)
	}
	return n
}

// add records that key became live with entry e.
func (x *keyIndex) add(key string, e *Entry) {
	if x.suspended {
		x.pending = append(x.pending, key) // its entry is looked up at the flush
		return
	}
	x.insert(key, e)
}

// find returns where key is or would go in blk, and whether it is there.
func find(blk []indexed, key string) (int, bool) {
	return slices.BinarySearchFunc(blk, key, func(it indexed, key string) int { return strings.Compare(it.key, key) })
}

// insert puts key with entry e in its block.
func (x *keyIndex) insert(key string, e *Entry) {
	if len(x.blocks) == 0 {
		x.blocks = [][]indexed{{{key, e}}}
		return
	}
	b := x.block(key)
	blk := x.blocks[b]
	j, found := find(blk, key)
	if found {
		blk[j].e = e // the keyspace adds a key only when it has none: never stale, but the newest is right
		return
	}
	blk = slices.Insert(blk, j, indexed{key, e})
	limit := x.limit()
	if len(blk) <= limit {
		x.blocks[b] = blk
		return
	}
	half := len(blk) / 2
	hi := slices.Clone(blk[half:])
	clear(blk[half:])
	x.blocks[b] = blk[:half:half] // an append to it must not reach hi's old place
	x.blocks = slices.Insert(x.blocks, b+1, hi)
}

// remove records that key was dropped.
func (x *keyIndex) remove(key string) {
	if len(x.blocks) == 0 {
		return
	}
	b := x.block(key)
	blk := x.blocks[b]
	j, found := find(blk, key)
	if !found {
		return
	}
	blk = slices.Delete(blk, j, j+1)
	if len(blk) == 0 {
		x.blocks = slices.Delete(x.blocks, b, b+1)
		return
	}
	x.blocks[b] = blk
	// A block a mass removal left nearly empty joins a neighbour, or
	// gives back its memory, so the index stays about 16 bytes a key.
	limit := x.limit()
	if len(blk) >= limit/4 {
		return
	}
	lo := b
	if lo == len(x.blocks)-1 {
		lo--
	}
	if lo >= 0 && len(x.blocks[lo])+len(x.blocks[lo+1]) <= limit {
		x.blocks[lo] = slices.Concat(x.blocks[lo], x.blocks[lo+1])
		x.blocks = slices.Delete(x.blocks, lo+1, lo+2)
		return
	}
	if cap(blk) >= 4*len(blk) {
		x.blocks[b] = slices.Clone(blk)
	}
}

func (x *keyIndex) limit() int {
	if x.max > 0 {
		return x.max
	}
	return indexBlock
}

// ascend calls fn for each key >= lo in order, until fn returns false.
func (x *keyIndex) ascend(lo string, fn func(key string) bool) {
	x.ascendRuns(lo, func(run []indexed) bool {
		for _, it := range run {
			if !fn(it.key) {
				return false
			}
		}
		return true
	})
}

// ascendRuns calls fn with the keys >= lo in order, a run of them at a time
// (the rest of a block), until fn returns false. fn must not change the
// index, nor keep run.
func (x *keyIndex) ascendRuns(lo string, fn func(run []indexed) bool) {
	if len(x.blocks) == 0 {
		return
	}
	b := x.block(lo)
	j, _ := find(x.blocks[b], lo)
	for ; b < len(x.blocks); b, j = b+1, 0 {
		if run := x.blocks[b][j:]; len(run) > 0 && !fn(run) {
			return
		}
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
