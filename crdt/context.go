package crdt

import (
	"slices"
	"sort"
)

// Context is a causal context: the set of dots a state has seen, kept as a
// version vector (every dot 1..VV[r] of replica r) plus a cloud of the dots
// seen beyond the vector's gaps.
//
// Canonical form, kept by every method: VV has no zero entries; Cloud is
// sorted by (replica, seq), has no duplicates, holds no dot the VV covers and
// no dot (r, VV[r]+1) (that one would extend the VV). Two canonical contexts
// hold the same dots exactly when they are equal field by field.
//
// Merge is set union: commutative, associative and idempotent.
//
// The zero value is an empty context. A decoded Context may be in any shape:
// call Normalize before relying on it (Keyspace does this for every delta).
type Context struct {
	VV    VersionVector `msgpack:"v,omitempty"`
	Cloud []Dot         `msgpack:"c,omitempty"` // sorted, never contains a dot the VV covers
}

// Contains reports whether dot d has been seen. Seq 0 is never contained.
func (c *Context) Contains(d Dot) bool {
	if d.Seq == 0 {
		return false
	}
	if d.Seq <= c.VV[d.Replica] {
		return true
	}
	_, found := slices.BinarySearchFunc(c.Cloud, d, compareDots)
	return found
}

// Add records dot d (Seq 0 is ignored) and keeps the context canonical.
func (c *Context) Add(d Dot) {
	v := c.VV[d.Replica]
	if d.Seq == 0 || d.Seq <= v {
		return
	}
	if d.Seq == v+1 { // canonical: the cloud never holds VV+1
		if c.VV == nil {
			c.VV = make(VersionVector)
		}
		c.VV[d.Replica] = d.Seq
		c.absorb(d.Replica)
		return
	}
	i, found := slices.BinarySearchFunc(c.Cloud, d, compareDots)
	if !found {
		c.Cloud = slices.Insert(c.Cloud, i, d)
	}
}

// addRange records the dots first..last of replica r. Beyond the VV it
// costs O(range), so callers pass ranges proven to be held elsewhere
// (validated deltas).
func (c *Context) addRange(r ReplicaID, first, last uint64) {
	first = max(first, 1)
	if last < first {
		return
	}
	if first <= c.VV[r]+1 {
		if last > c.VV[r] {
			if c.VV == nil {
				c.VV = make(VersionVector)
			}
			c.VV[r] = last
			c.absorb(r)
		}
		return
	}
	dots := make([]Dot, 0, last-first+1)
	for s := first; s <= last && s != 0; s++ {
		dots = append(dots, Dot{r, s})
	}
	c.Merge(&Context{Cloud: dots})
}

// ranges returns the dots of c as ranges sorted by replica and seq.
func (c *Context) ranges() []DotRange {
	var out []DotRange
	for _, d := range c.VV.Sorted() {
		out = append(out, DotRange{Replica: d.Replica, First: 1, Last: d.Seq})
	}
	for _, d := range c.Cloud {
		out = append(out, DotRange{Replica: d.Replica, First: d.Seq, Last: d.Seq})
	}
	return mergeRanges(out)
}

// intersect returns the dots both c and o hold (both canonical).
func (c *Context) intersect(o *Context) *Context {
	out := &Context{}
	for r, s := range o.VV {
		v := min(s, c.VV[r])
		if v > 0 {
			if out.VV == nil {
				out.VV = make(VersionVector)
			}
			out.VV[r] = v
		}
		// c's cloud dots of r in (c.VV[r], s].
		i, _ := slices.BinarySearchFunc(c.Cloud, Dot{r, v + 1}, compareDots)
		for ; i < len(c.Cloud) && c.Cloud[i].Replica == r && c.Cloud[i].Seq <= s; i++ {
			out.Cloud = append(out.Cloud, c.Cloud[i])
		}
	}
	for _, d := range o.Cloud {
		if c.Contains(d) {
			out.Cloud = append(out.Cloud, d)
		}
	}
	out.compact()
	return out
}

// absorb moves cloud dots of r that the VV now reaches into the VV.
func (c *Context) absorb(r ReplicaID) {
	i, _ := slices.BinarySearchFunc(c.Cloud, Dot{r, 0}, compareDots)
	j := i
	for j < len(c.Cloud) && c.Cloud[j].Replica == r && c.Cloud[j].Seq <= c.VV[r]+1 {
		if c.Cloud[j].Seq == c.VV[r]+1 {
			c.VV[r]++
		}
		j++
	}
	if j > i {
		c.Cloud = slices.Delete(c.Cloud, i, j)
	}
}

// Merge adds every dot of o.
func (c *Context) Merge(o *Context) {
	if o == nil {
		return
	}
	changed := false
	if len(o.VV) > 0 {
		for r, s := range o.VV {
			if s > c.VV[r] {
				if c.VV == nil {
					c.VV = make(VersionVector, len(o.VV))
				}
				c.VV[r] = s
				changed = true
			}
		}
	}
	if len(o.Cloud) <= 4 {
		if changed {
			c.compact()
		}
		for _, d := range o.Cloud {
			c.Add(d)
		}
		return
	}
	c.Cloud = append(c.Cloud, o.Cloud...)
	c.compact()
}

// Normalize brings a context of any shape (for example freshly decoded)
// into canonical form. It drops dots with Seq 0.
func (c *Context) Normalize() { c.compact() }

// compact restores the canonical form.
func (c *Context) compact() {
	for r, s := range c.VV {
		if s == 0 {
			delete(c.VV, r)
		}
	}
	if !slices.IsSortedFunc(c.Cloud, compareDots) {
		slices.SortFunc(c.Cloud, compareDots)
	}
	out := c.Cloud[:0]
	for _, d := range c.Cloud {
		if d.Seq == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1] == d {
			continue
		}
		v := c.VV[d.Replica]
		switch {
		case d.Seq <= v:
			continue
		case d.Seq == v+1:
			if c.VV == nil {
				c.VV = make(VersionVector)
			}
			c.VV[d.Replica] = d.Seq
			continue
		}
		out = append(out, d)
	}
	clear(c.Cloud[len(out):])
	c.Cloud = out
	if len(c.Cloud) == 0 {
		c.Cloud = nil
	}
	if len(c.VV) == 0 {
		c.VV = nil
	}
}

// Clone returns a deep copy.
func (c *Context) Clone() *Context {
	n := &Context{VV: c.VV.Clone()}
	if len(c.Cloud) > 0 {
		n.Cloud = slices.Clone(c.Cloud)
	}
	return n
}

// Equal reports whether both canonical contexts hold the same dots.
func (c *Context) Equal(o *Context) bool {
	return c.VV.Equal(o.VV) && slices.Equal(c.Cloud, o.Cloud)
}

// Empty reports whether the context holds no dot.
func (c *Context) Empty() bool { return len(c.VV) == 0 && len(c.Cloud) == 0 }

// Covers reports whether every dot of o is in c (both canonical).
func (c *Context) Covers(o *Context) bool {
	for r, s := range o.VV {
		if s > c.VV[r] && !c.containsRange(r, c.VV[r]+1, s) {
			return false
		}
	}
	for _, d := range o.Cloud {
		if !c.Contains(d) {
			return false
		}
	}
	return true
}

// containsRange reports whether every dot first..last of r is in c.
func (c *Context) containsRange(r ReplicaID, first, last uint64) bool {
	if first == 0 {
		first = 1
	}
	if last < first {
		return true
	}
	v := c.VV[r]
	if last <= v {
		return true
	}
	if first <= v {
		first = v + 1
	}
	// Cloud dots are unique and sorted: the range is held exactly when the
	// cloud holds last-first+1 dots of r in it.
	i, _ := slices.BinarySearchFunc(c.Cloud, Dot{r, first}, compareDots)
	j, _ := slices.BinarySearchFunc(c.Cloud, Dot{r, last}, compareDots)
	if j < len(c.Cloud) && c.Cloud[j] == (Dot{r, last}) {
		j++
	}
	return uint64(j-i) == last-first+1
}

// Missing returns the dots o holds that c lacks, as ranges sorted by
// replica and first seq. Both contexts must be canonical.
func (c *Context) Missing(o *Context) []DotRange {
	var out []DotRange
	emit := func(r ReplicaID, first, last uint64) {
		if n := len(out); n > 0 && out[n-1].Replica == r && out[n-1].Last+1 == first {
			out[n-1].Last = last
			return
		}
		out = append(out, DotRange{Replica: r, First: first, Last: last})
	}
	replicas := make([]ReplicaID, 0, len(o.VV))
	for r := range o.VV {
		replicas = append(replicas, r)
	}
	for _, d := range o.Cloud {
		if n := len(replicas); n == 0 || replicas[n-1] != d.Replica {
			replicas = append(replicas, d.Replica)
		}
	}
	slices.Sort(replicas)
	replicas = slices.Compact(replicas)
	for _, r := range replicas {
		// The part of o's vector above c's vector, minus c's cloud.
		lo, hi := c.VV[r]+1, o.VV[r]
		if lo <= hi {
			i := sort.Search(len(c.Cloud), func(i int) bool { return compareDots(c.Cloud[i], Dot{r, lo}) >= 0 })
			next := lo
			for ; i < len(c.Cloud) && c.Cloud[i].Replica == r && c.Cloud[i].Seq <= hi; i++ {
				if s := c.Cloud[i].Seq; s > next {
					emit(r, next, s-1)
				}
				next = c.Cloud[i].Seq + 1
			}
			if next <= hi {
				emit(r, next, hi)
			}
		}
		i := sort.Search(len(o.Cloud), func(i int) bool { return o.Cloud[i].Replica >= r })
		for ; i < len(o.Cloud) && o.Cloud[i].Replica == r; i++ {
			if !c.Contains(o.Cloud[i]) {
				emit(r, o.Cloud[i].Seq, o.Cloud[i].Seq)
			}
		}
	}
	return out
}
