package crdt

import (
	"encoding/binary"
	"slices"
	"sort"
	"sync"
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
		sums[i] = sums[i].add(e.kh)
	}
	return encodeSums(sums)
}

func encodeSums(sums []sum128) [][16]byte {
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

// RangeScan computes RangeSums a chunk of keys at a time, in key order, so
// that a caller holding a lock can release it between chunks and let
// writers in: RangeSums walks every key at once (about 0.6 s at a million
// keys, with every writer waiting). While a scan is open the keyspace
// corrects its sums for each change to a key the scan has passed, so when
// Step reports the last chunk done the sums are those of the state at that
// moment, exactly what RangeSums would return then, and they stay so
// until Close.
//
// Start, Step, Sums and Close need the keyspace read-locked against its
// writer (any reader lock will do, and several scans may run at once,
// each used by one goroutine); changes happen under the writer's lock.
type RangeScan struct {
	k      *Keyspace
	bounds []string
	sums   []sum128
	after  string // with passed, every key <= after has been summed
	passed bool
	done   bool // every key has been summed
}

// StartRangeScan opens a scan for RangeSums(bounds); nil when bounds are
// not valid for RangeSums. Close it when done.
func (k *Keyspace) StartRangeScan(bounds []string) *RangeScan {
	for i, b := range bounds {
		if b == "" || i > 0 && b <= bounds[i-1] {
			return nil
		}
	}
	s := &RangeScan{k: k, bounds: bounds, sums: make([]sum128, len(bounds)+1)}
	k.scanMu.Lock()
	k.scans = append(k.scans, s)
	k.scanMu.Unlock()
	return s
}

// Step sums up to n more keys and reports whether keys remain after them.
// It walks the index a run of keys at a time, with their entries, and
// finds where a range ends in a run by a binary search: a key's bytes
// are read only to hash them, not compared one by one with the cursor and
// the next bound (each comparison a cache miss, as was the lookup of the
// key's entry in the map: BenchmarkRangeScan).
func (s *RangeScan) Step(n int) bool {
	if s.done {
		return false
	}
	k := s.k
	k.flushIndex()
	count, more := 0, false
	k.index.ascendRuns(s.after, func(run []indexed) bool {
		if s.passed && run[0].key == s.after { // only the first run can start at the cursor
			run = run[1:]
		}
		if len(run) == 0 {
			return true
		}
		if count == n {
			more = true
			return false
		}
		if len(run) > n-count { // the rest of this run for the next step
			run, more = run[:n-count], true
		}
		for rest := run; len(rest) > 0; {
			i := rangeOf(s.bounds, rest[0].key)
			end := len(rest)
			if i < len(s.bounds) { // the keys of rest before bound i are in range i
				hi := s.bounds[i]
				end = sort.Search(len(rest), func(j int) bool { return rest[j].key >= hi })
			}
			sum := s.sums[i]
			for _, it := range rest[:end] {
				sum = sum.add(it.e.kh)
			}
			s.sums[i] = sum
			rest = rest[end:]
		}
		count += len(run)
		s.after, s.passed = run[len(run)-1].key, true
		return !more
	})
	s.done = !more
	return more
}

// Sums returns the sums as RangeSums does. Once Step reported the end they
// are the current state's.
func (s *RangeScan) Sums() [][16]byte { return encodeSums(s.sums) }

// Close ends the scan: the keyspace stops correcting it.
func (s *RangeScan) Close() { unregister(&s.k.scanMu, &s.k.scans, s) }

// unregister removes x from the list mu guards.
func unregister[T comparable](mu *sync.Mutex, list *[]T, x T) {
	mu.Lock()
	if i := slices.Index(*list, x); i >= 0 {
		*list = slices.Delete(*list, i, i+1)
	}
	mu.Unlock()
}

// rehashed records, for the open scans and copies, that key changed and
// its hash went from old to new (zero: the key did not exist, or no longer
// does). Called by the writer wherever an entry changes (and k.sum with
// it).
func (k *Keyspace) rehashed(key string, old, new sum128) {
	for _, s := range k.scans {
		if s.done || s.passed && key <= s.after {
			i := rangeOf(s.bounds, key)
			s.sums[i] = s.sums[i].sub(old).add(new)
		}
	}
	for _, c := range k.copies {
		if c.walked || c.passed && key <= c.after {
			c.dirty[key] = struct{}{}
		}
	}
}

// CopyScan takes a copy of the state a chunk of keys at a time, in key order,
// so that the writer need not wait for a copy of the whole state: the
// keyspace notes each key that changes behind the copy's cursor, and Step
// copies those again before it goes on. Once Step reports nothing left,
// the copy is the state at that moment (Snapshot).
//
// Like RangeScan, its methods need the keyspace read-locked against its
// writer (or to be called by the writer itself).
type CopyScan struct {
	k      *Keyspace
	keys   map[string]*Entry
	after  string // with passed, every key <= after has been copied
	passed bool
	walked bool                // every key has been copied once
	dirty  map[string]struct{} // keys changed since they were copied
}

// StartCopy opens a copy. Close it when done.
func (k *Keyspace) StartCopy() *CopyScan {
	c := &CopyScan{k: k, keys: make(map[string]*Entry, len(k.keys)), dirty: make(map[string]struct{})}
	k.scanMu.Lock()
	k.copies = append(k.copies, c)
	k.scanMu.Unlock()
	return c
}

// Step copies up to n keys, the keys changed since they were copied first
// and then the next ones in order, and reports whether any remain.
func (c *CopyScan) Step(n int) bool {
	k := c.k
	for key := range c.dirty {
		if n == 0 {
			return true
		}
		if e := k.keys[key]; e != nil {
			c.keys[key] = e.shareClone()
		} else {
			delete(c.keys, key)
		}
		delete(c.dirty, key)
		n--
	}
	if c.walked {
		return false
	}
	k.flushIndex()
	more := false
	k.index.ascendRuns(c.after, func(run []indexed) bool {
		if c.passed && run[0].key == c.after { // only the first run can start at the cursor
			run = run[1:]
		}
		for _, it := range run {
			if n == 0 {
				more = true
				return false
			}
			c.keys[it.key] = it.e.shareClone()
			c.after, c.passed = it.key, true
			n--
		}
		return true
	})
	c.walked = !more
	return more
}

// Pending is how many keys Step has yet to copy again, and whether it has
// yet to copy some for the first time.
func (c *CopyScan) Pending() (again int, walking bool) { return len(c.dirty), !c.walked }

// Snapshot returns the copy, as Snapshot of the keyspace would but
// sharing what the keyspace never writes into (Entry.shareClone): call it
// when Step reported nothing left, in the same hold of the lock, and only
// read it.
func (c *CopyScan) Snapshot() *Delta {
	k := c.k
	d := &Delta{Ctx: *k.ctx.Clone(), Own: k.applied.ranges(), Full: true}
	if len(c.keys) > 0 {
		d.Keys = c.keys
	}
	return d
}

// Close ends the copy: the keyspace stops noting changes for it.
func (c *CopyScan) Close() { unregister(&c.k.scanMu, &c.k.copies, c) }

// KeyQuantiles returns up to m-1 keys that cut the keys, in order, into m
// ranges of about equal size (the keys at positions i*n/m of n, i = 1 ..
// m-1; fewer when the keyspace holds fewer keys): bounds for RangeSums,
// found without a walk over every key.
func (k *Keyspace) KeyQuantiles(m int) []string {
	k.flushIndex()
	n := k.index.size()
	if m > n {
		m = n
	}
	var out []string
	b, start := 0, 0 // the block holding position start
	for i := 1; i < m; i++ {
		pos := i * n / m
		for start+len(k.index.blocks[b]) <= pos {
			start += len(k.index.blocks[b])
			b++
		}
		out = append(out, k.index.blocks[b][pos-start].key)
	}
	return out
}
