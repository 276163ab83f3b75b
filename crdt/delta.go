package crdt

import (
	"bytes"
	"fmt"
	"slices"
)

// maxDepth bounds the nesting of maps, so that hostile input cannot drive
// the recursive joins arbitrarily deep.
const maxDepth = 32

// Delta is a transportable state: keys with their dot stores, and a causal
// context. Every local mutation returns a Delta, which is itself a state of
// the keyspace lattice (a delta-state CRDT); a snapshot is a Delta too.
//
// The join of two deltas (Join) is commutative, associative and idempotent,
// so deltas may be delivered in any order, any number of times.
//
// A delta made by a Tx lists every path whose dots its context removes
// (a member or field with no dots, or an entry marked All), so it can be
// applied by visiting only the paths it lists. Snapshot marks its delta
// Full instead: applying it visits every key.
//
// Fields are exported with msgpack tags so that node encodes deltas with
// github.com/vmihailenco/msgpack/v5; crdt itself imports no encoder. A
// decoded delta may be in any shape: Validate it (Apply, FromSnapshot and
// JoinRange do so themselves).
type Delta struct {
	Keys map[string]*Entry `msgpack:"k,omitempty"`
	Ctx  Context           `msgpack:"c"`
	// Own are the dots of the operations whose effects the delta fully
	// includes: for a delta made by Tx, the fresh dots its operations
	// consumed (each consumes at least one, removals included); for a
	// Snapshot, the keyspace's applied set; none for a key state. Own is
	// a subset of the context.
	Own []DotRange `msgpack:"o,omitempty"`
	// Full marks a whole state (Snapshot): Apply visits every local key.
	Full bool `msgpack:"f,omitempty"`
}

// Dots returns the Own dots as ranges sorted by replica and seq,
// overlapping and adjacent ranges merged: for an operation's delta, the
// dots it issued. These index an operation for deduplication and
// anti-entropy; the context holds more (a removal's context also holds the
// dots it removed, whose operations the delta does not include).
func (d *Delta) Dots() []DotRange { return mergeRanges(slices.Clone(d.Own)) }

func mergeRanges(rs []DotRange) []DotRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b DotRange) int {
		if c := compareDots(Dot{a.Replica, a.First}, Dot{b.Replica, b.First}); c != 0 {
			return c
		}
		return compareDots(Dot{a.Replica, a.Last}, Dot{b.Replica, b.Last})
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		p := &out[len(out)-1]
		if r.Replica == p.Replica && (r.First <= p.Last || r.First == p.Last+1) {
			p.Last = max(p.Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// addRanges returns the merged ranges of dst (merged, as mergeRanges
// returns them) and src. When src is in order and starts after dst's
// last range, as when a transaction or a batch joins its operations one
// by one, it appends: O(len(src)) instead of a sort of everything each
// time, which made joining k operations whose dots are not contiguous
// O(k² log k).
func addRanges(dst, src []DotRange) []DotRange {
	last := func(rs []DotRange) Dot {
		r := rs[len(rs)-1]
		return Dot{r.Replica, r.Last}
	}
	if len(src) == 0 {
		return dst
	}
	if len(dst) == 0 {
		return mergeRanges(append(dst, src...))
	}
	for i, r := range src {
		if r.First > r.Last {
			return mergeRanges(append(dst, src...)) // not canonical: the general case
		}
		if i > 0 && compareDots(Dot{r.Replica, r.First}, last(src[:i])) <= 0 {
			return mergeRanges(append(dst, src...))
		}
	}
	if compareDots(Dot{src[0].Replica, src[0].First}, last(dst)) <= 0 {
		return mergeRanges(append(dst, src...))
	}
	for _, r := range src {
		if p := &dst[len(dst)-1]; p.Replica == r.Replica && r.First == p.Last+1 {
			p.Last = r.Last
			continue
		}
		dst = append(dst, r)
	}
	return dst
}

// Validate checks what a delta from disk or network must satisfy: no nil
// entry, no empty key, every dot has a non-zero seq and is in the delta's
// context, every Own range is in the context, maps nest at most 32 deep.
// It does not modify d.
func (d *Delta) Validate() error {
	_, err := d.check(nil)
	return err
}

// check validates d and returns its context in canonical form (d.Ctx itself
// when it already is). Store dots are checked against ctx when given.
func (d *Delta) check(ctx *Context) (*Context, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil delta", ErrInvalid)
	}
	own := canonical(&d.Ctx)
	if ctx == nil {
		ctx = own
	}
	for key, e := range d.Keys {
		if key == "" {
			return nil, fmt.Errorf("%w: empty key", ErrInvalid)
		}
		if err := checkEntry(e, ctx, 0); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
	}
	if err := d.checkOwn(own); err != nil {
		return nil, err
	}
	return own, nil
}

// checkOwn checks that every Own range is in own, d's canonical context.
func (d *Delta) checkOwn(own *Context) error {
	for _, r := range d.Own {
		if r.First == 0 || r.Last < r.First || !own.containsRange(r.Replica, r.First, r.Last) {
			return fmt.Errorf("%w: own range %v:%d..%d not in context", ErrInvalid, r.Replica, r.First, r.Last)
		}
	}
	return nil
}

func checkDot(d Dot, ctx *Context) error {
	if d.Seq == 0 {
		return fmt.Errorf("%w: dot with seq 0", ErrInvalid)
	}
	if !ctx.Contains(d) {
		return fmt.Errorf("%w: dot %v not in context", ErrInvalid, d)
	}
	return nil
}

func checkEntry(e *Entry, ctx *Context, depth int) error {
	if e == nil {
		return fmt.Errorf("%w: nil entry", ErrInvalid)
	}
	if depth > maxDepth {
		return fmt.Errorf("%w: maps nested deeper than %d", ErrInvalid, maxDepth)
	}
	for i := range e.Reg {
		if err := checkDot(e.Reg[i].Dot, ctx); err != nil {
			return err
		}
	}
	for i := range e.Cnt {
		if err := checkDot(e.Cnt[i].Dot, ctx); err != nil {
			return err
		}
	}
	for _, d := range e.Flag {
		if err := checkDot(d, ctx); err != nil {
			return err
		}
	}
	if len(e.Exp) > 0 {
		if depth > 0 {
			return fmt.Errorf("%w: expiry on a map field", ErrInvalid)
		}
		for i := range e.Exp {
			if err := checkDot(e.Exp[i].Dot, ctx); err != nil {
				return err
			}
		}
	}
	if len(e.Set) > 0 { // ranging over a nil map still costs an iterator
		for _, ds := range e.Set {
			for _, d := range ds {
				if err := checkDot(d, ctx); err != nil {
					return err
				}
			}
		}
	}
	if len(e.Map) > 0 {
		for f, c := range e.Map {
			if err := checkEntry(c, ctx, depth+1); err != nil {
				return fmt.Errorf("field %q: %w", f, err)
			}
		}
	}
	return nil
}

// canonical returns c when it is in canonical form, else a canonical copy.
func canonical(c *Context) *Context {
	if len(c.VV) > 0 {
		for _, s := range c.VV {
			if s == 0 {
				return normalized(c)
			}
		}
	}
	for i, d := range c.Cloud {
		if d.Seq <= c.VV[d.Replica]+1 || (i > 0 && compareDots(c.Cloud[i-1], d) >= 0) {
			return normalized(c)
		}
	}
	return c
}

func normalized(c *Context) *Context {
	n := c.Clone()
	n.compact()
	return n
}

// Join returns the lattice join of two states: every path of both, each
// dotted value kept unless the other side has seen its dot and dropped it,
// and the union of the contexts. Neither argument is modified, and the
// result shares no memory with them. Paths that end up holding no dot stay
// listed (they record removals, see Delta). Join is commutative,
// associative and idempotent.
func Join(a, b *Delta) *Delta {
	out := a.clone()
	out.join(b, true)
	return out
}

// JoinDeltas joins deltas made by Tx (or joins of them) into one, for a
// batch that becomes one WAL record. It visits only the paths each delta
// lists, which for such deltas gives the same result as Join. The
// arguments are not modified; nil deltas are skipped.
func JoinDeltas(ds ...*Delta) *Delta {
	var out *Delta
	for _, d := range ds {
		if d == nil {
			continue
		}
		if out == nil {
			out = d.clone()
			continue
		}
		out.join(d, false)
	}
	if out == nil {
		out = &Delta{}
	}
	return out
}

// JoinDeltasOwned is JoinDeltas for deltas nobody modifies, such as a
// Tx's own: the result shares their values and small stores instead of
// copying them (as the Tx's deltas share them with each other), so it must
// not be modified either. Keyspace.ApplyOwned takes it as it takes a Tx's
// delta.
func JoinDeltasOwned(ds ...*Delta) *Delta {
	out := &Delta{}
	for _, d := range ds {
		if d != nil {
			out.joinShared(d)
		}
	}
	return out
}

// join joins b into d in place (keeping listed paths); full visits every
// path of d too. d's context must be canonical.
func (d *Delta) join(b *Delta, full bool) { d.joinWith(b, full, false) }

// joinShared is join where d may share b's values and small stores: for a
// Tx's own deltas, which nobody modifies in place.
func (d *Delta) joinShared(b *Delta) { d.joinWith(b, false, true) }

func (d *Delta) joinWith(b *Delta, full, alias bool) {
	bctx := canonical(&b.Ctx)
	j := joiner{actx: &d.Ctx, bctx: bctx, keep: true, alias: alias}
	for key, be := range b.Keys {
		if be == nil {
			continue
		}
		ae := d.Keys[key]
		if ae == nil {
			ae = &Entry{}
			if d.Keys == nil {
				d.Keys = make(map[string]*Entry, len(b.Keys))
			}
			d.Keys[key] = ae
		}
		j.entry(ae, be, full)
	}
	if full {
		for key, ae := range d.Keys {
			if _, ok := b.Keys[key]; !ok {
				j.entry(ae, nil, true)
			}
		}
	}
	d.Ctx.Merge(bctx)
	d.Own = addRanges(d.Own, b.Own)
	d.Full = d.Full || b.Full
}

// clone returns a deep copy with a canonical context and Own (addRanges
// relies on the latter).
func (d *Delta) clone() *Delta {
	out := &Delta{Ctx: *normalized(&d.Ctx), Own: mergeRanges(slices.Clone(d.Own)), Full: d.Full}
	if len(d.Keys) > 0 {
		out.Keys = make(map[string]*Entry, len(d.Keys))
		for k, e := range d.Keys {
			if e != nil {
				out.Keys[k] = e.clone()
			}
		}
	}
	return out
}

// clone returns a deep copy of e (markers and hash included; not its place
// in a keyspace's expiry queue).
func (e *Entry) clone() *Entry { return e.copyEntry(false) }

// shareClone is clone sharing the stores the keyspace replaces and never
// writes into: register siblings (and their values), counter
// contributions, flag dots and expiry items. What changes in place (a
// set's members, a map's fields) is copied. For a reader that only reads
// the copy (CopyScan).
func (e *Entry) shareClone() *Entry { return e.copyEntry(true) }

func (e *Entry) copyEntry(share bool) *Entry {
	c := &Entry{All: e.All, h: e.h}
	if share {
		c.Reg, c.Cnt, c.Flag, c.Exp = e.Reg, e.Cnt, e.Flag, e.Exp
	} else {
		if len(e.Reg) > 0 {
			c.Reg = make([]RegValue, len(e.Reg))
			for i, v := range e.Reg {
				c.Reg[i] = cloneReg(v)
			}
		}
		c.Cnt = slices.Clone(e.Cnt)
		c.Flag = slices.Clone(e.Flag)
		c.Exp = slices.Clone(e.Exp)
	}
	if e.Set != nil {
		c.Set = make(map[string][]Dot, len(e.Set))
		for m, ds := range e.Set {
			if ds == nil {
				ds = []Dot{}
			}
			c.Set[m] = slices.Clone(ds)
		}
	}
	if e.Map != nil {
		c.Map = make(map[string]*Entry, len(e.Map))
		for f, ch := range e.Map {
			if ch != nil {
				c.Map[f] = ch.copyEntry(share)
			}
		}
	}
	return c
}

// appendDots appends every dot e holds.
func (e *Entry) appendDots(out []Dot) []Dot {
	for i := range e.Reg {
		out = append(out, e.Reg[i].Dot)
	}
	for i := range e.Cnt {
		out = append(out, e.Cnt[i].Dot)
	}
	out = append(out, e.Flag...)
	for i := range e.Exp {
		out = append(out, e.Exp[i].Dot)
	}
	for _, ds := range e.Set {
		out = append(out, ds...)
	}
	for _, c := range e.Map {
		if c != nil {
			out = c.appendDots(out)
		}
	}
	return out
}

// hollow reports whether e holds no dot at all (markers only).
func (e *Entry) hollow() bool {
	if e == nil {
		return true
	}
	if len(e.Reg) > 0 || len(e.Cnt) > 0 || len(e.Flag) > 0 || len(e.Exp) > 0 {
		return false
	}
	for _, ds := range e.Set {
		if len(ds) > 0 {
			return false
		}
	}
	for _, c := range e.Map {
		if !c.hollow() {
			return false
		}
	}
	return true
}

// normalize returns a canonical copy of a validated entry: stores sorted
// and free of duplicates, no empty paths, no All mark, hashes computed;
// nil when the entry holds nothing.
func (e *Entry) normalize(depth int) *Entry {
	if e == nil || depth > maxDepth {
		return nil
	}
	n := &Entry{}
	n.Reg = normSmall(e.Reg, regDot, cloneReg)
	n.Cnt = normSmall(e.Cnt, cntDot, nil)
	n.Flag = normSmall(e.Flag, idDot, nil)
	if depth == 0 { // expiry items live on keys only (Validate refuses others)
		n.Exp = normSmall(e.Exp, expDot, nil)
	}
	n.h = sumItems(n.Reg, hashReg).add(sumItems(n.Cnt, hashCnt)).add(sumItems(n.Flag, hashFlag)).add(sumItems(n.Exp, hashExp))
	for m, ds := range e.Set {
		if len(ds) == 0 {
			continue
		}
		ds = sortDots(slices.Clone(ds))
		if n.Set == nil {
			n.Set = make(map[string][]Dot)
		}
		n.Set[m] = ds
		n.h = n.h.add(hashMember(m, ds))
	}
	for f, c := range e.Map {
		c = c.normalize(depth + 1)
		if c == nil {
			continue
		}
		if n.Map == nil {
			n.Map = make(map[string]*Entry)
		}
		n.Map[f] = c
		n.h = n.h.add(hashChild(tagField, f, c.h))
	}
	if n.empty() {
		return nil
	}
	return n
}

// normSmall sorts a small store by dot and keeps one value per dot (the
// first in input order: a valid state never holds two values for one dot).
func normSmall[T any](xs []T, dot func(*T) Dot, cp func(T) T) []T {
	if len(xs) == 0 {
		return nil
	}
	out := make([]T, len(xs))
	for i, x := range xs {
		if cp != nil {
			x = cp(x)
		}
		out[i] = x
	}
	slices.SortStableFunc(out, func(x, y T) int { return compareDots(dot(&x), dot(&y)) })
	return slices.CompactFunc(out, func(x, y T) bool { return dot(&x) == dot(&y) })
}

// Equal reports whether d and o hold the same state: the same dotted values
// at the same paths and the same context. Paths without dots, All marks,
// Own and Full are not part of the state and are ignored.
func (d *Delta) Equal(o *Delta) bool {
	if !canonical(&d.Ctx).Equal(canonical(&o.Ctx)) {
		return false
	}
	return entriesEqual(d.Keys, o.Keys, 0)
}

func entriesEqual(a, b map[string]*Entry, depth int) bool {
	if depth > maxDepth {
		return false
	}
	n := 0
	for k, x := range a {
		if x.hollow() {
			continue
		}
		n++
		if !entryEqual(x, b[k], depth) {
			return false
		}
	}
	for _, y := range b {
		if !y.hollow() {
			n--
		}
	}
	return n == 0
}

func entryEqual(x, y *Entry, depth int) bool {
	if y == nil {
		return false
	}
	if !slices.EqualFunc(normSmall(x.Reg, regDot, nil), normSmall(y.Reg, regDot, nil), func(a, b RegValue) bool {
		return a.Dot == b.Dot && a.Time == b.Time && bytes.Equal(a.Value, b.Value)
	}) {
		return false
	}
	if !slices.Equal(normSmall(x.Cnt, cntDot, nil), normSmall(y.Cnt, cntDot, nil)) ||
		!slices.Equal(normSmall(x.Flag, idDot, nil), normSmall(y.Flag, idDot, nil)) ||
		!slices.Equal(normSmall(x.Exp, expDot, nil), normSmall(y.Exp, expDot, nil)) {
		return false
	}
	n := 0
	for m, ds := range x.Set {
		if len(ds) == 0 {
			continue
		}
		n++
		if !slices.Equal(sortDots(slices.Clone(ds)), sortDots(slices.Clone(y.Set[m]))) {
			return false
		}
	}
	for _, ds := range y.Set {
		if len(ds) > 0 {
			n--
		}
	}
	return n == 0 && entriesEqual(x.Map, y.Map, depth+1)
}
