package crdt

import (
	"bytes"
	"slices"
)

// joiner joins a dot store b (seen under context bctx) into a dot store a
// (seen under context actx), in place in a. For every dotted value:
//
//	a ⊔ b = (a ∩ b) ∪ (a \ bctx) ∪ (b \ actx)
//
// A value survives when both sides hold it, or when one side holds it and
// the other has never seen its dot. A value one side holds and the other has
// seen but no longer holds was removed, and stays removed.
//
// By default only the paths b lists are visited (a delta touches only the
// paths it lists); full visits every path of a as well, which is the
// complete lattice join.
type joiner struct {
	actx, bctx *Context
	// keep: join of deltas. Listed paths stay listed even when they hold
	// no dot, and All marks are kept (they tell Apply what to visit).
	// Otherwise empty paths are dropped and All is cleared: a state.
	keep bool
	// hash: maintain Entry.h (keyspace entries only).
	hash bool
	// alias: a may share b's values and small stores instead of copying
	// them. Only for a Tx's own deltas: neither side is ever modified in
	// place (joins replace small stores, never write into them).
	alias bool
	// own: b's register values are handed over (Keyspace.ApplyOwned): a
	// keeps them instead of copying.
	own bool
}

// empty reports whether a normalized (state) entry holds no dot: no value
// and no expiry item. An entry holding only expiry items is not empty (it
// stays in the state, see Entry) but has no value (visibleType is 0).
func (e *Entry) empty() bool {
	return len(e.Reg) == 0 && len(e.Cnt) == 0 && len(e.Set) == 0 && len(e.Map) == 0 && len(e.Flag) == 0 && len(e.Exp) == 0
}

func regDot(v *RegValue) Dot   { return v.Dot }
func cntDot(v *CountValue) Dot { return v.Dot }
func expDot(v *ExpValue) Dot   { return v.Dot }
func idDot(d *Dot) Dot         { return *d }

// entry joins b into a and reports whether a's dots changed. b may be nil
// (nothing listed): with full set, a's values whose dots bctx has seen are
// removed.
func (j *joiner) entry(a, b *Entry, full bool) bool {
	var br []RegValue
	var bn []CountValue
	var bf []Dot
	var bx []ExpValue
	var bs map[string][]Dot
	var bm map[string]*Entry
	if b != nil {
		br, bn, bf, bx, bs, bm = b.Reg, b.Cnt, b.Flag, b.Exp, b.Set, b.Map
		if b.All {
			full = true
			if j.keep {
				a.All = true
			}
		}
	}
	changed := false
	if len(a.Reg) > 0 || len(br) > 0 {
		cp := cloneReg
		if j.alias || j.own {
			cp = nil
		}
		out, ch := joinSmall(a.Reg, br, regDot, j.actx, j.bctx, cp, j.alias)
		if ch {
			if j.hash {
				if len(a.Cnt) == 0 && len(a.Flag) == 0 && len(a.Exp) == 0 && len(a.Set) == 0 && len(a.Map) == 0 {
					// a.h is the sum of a.Reg alone: spare hashing the
					// old values again (their bytes are rarely in cache).
					a.h = sumItems(out, hashReg)
				} else {
					a.h = a.h.sub(sumItems(a.Reg, hashReg)).add(sumItems(out, hashReg))
				}
			}
			a.Reg, changed = out, true
		}
	}
	if len(a.Cnt) > 0 || len(bn) > 0 {
		out, ch := joinSmall(a.Cnt, bn, cntDot, j.actx, j.bctx, nil, j.alias)
		if ch {
			if j.hash {
				a.h = a.h.sub(sumItems(a.Cnt, hashCnt)).add(sumItems(out, hashCnt))
			}
			a.Cnt, changed = out, true
		}
	}
	if len(a.Flag) > 0 || len(bf) > 0 {
		out, ch := joinSmall(a.Flag, bf, idDot, j.actx, j.bctx, nil, j.alias)
		if ch {
			if j.hash {
				a.h = a.h.sub(sumItems(a.Flag, hashFlag)).add(sumItems(out, hashFlag))
			}
			a.Flag, changed = out, true
		}
	}
	if len(a.Exp) > 0 || len(bx) > 0 {
		out, ch := joinSmall(a.Exp, bx, expDot, j.actx, j.bctx, nil, j.alias)
		if ch {
			if j.hash {
				a.h = a.h.sub(sumItems(a.Exp, hashExp)).add(sumItems(out, hashExp))
			}
			a.Exp, changed = out, true
		}
	}
	if len(bs) > 0 || (full && len(a.Set) > 0) {
		if j.set(a, bs, full) {
			changed = true
		}
	}
	if len(bm) > 0 || (full && len(a.Map) > 0) {
		if j.fields(a, bm, full) {
			changed = true
		}
	}
	return changed
}

// set joins the members bs lists (and with full, all of a's) into a.Set.
func (j *joiner) set(a *Entry, bs map[string][]Dot, full bool) bool {
	changed := false
	one := func(m string, bd []Dot, listed bool) {
		ad, had := a.Set[m]
		nd, ch := joinDots(ad, bd, j.actx, j.bctx, j.alias)
		if ch {
			changed = true
			if j.hash {
				if len(ad) > 0 {
					a.h = a.h.sub(hashMember(m, ad))
				}
				if len(nd) > 0 {
					a.h = a.h.add(hashMember(m, nd))
				}
			}
		}
		switch {
		case len(nd) > 0 || (j.keep && (listed || had)):
			if ch || !had {
				if a.Set == nil {
					a.Set = make(map[string][]Dot, len(bs))
				}
				if nd == nil {
					nd = []Dot{}
				}
				a.Set[m] = nd
			}
		case had:
			delete(a.Set, m)
		}
	}
	for m, bd := range bs {
		one(m, bd, true)
	}
	if full {
		for m := range a.Set {
			if _, ok := bs[m]; !ok {
				one(m, nil, false)
			}
		}
	}
	if len(a.Set) == 0 && !j.keep {
		a.Set = nil
	}
	return changed
}

// fields joins the fields bm lists (and with full, all of a's) into a.Map.
func (j *joiner) fields(a *Entry, bm map[string]*Entry, full bool) bool {
	changed := false
	one := func(f string, bc *Entry) {
		ac := a.Map[f]
		had := ac != nil
		if !had {
			ac = &Entry{}
		}
		wasEmpty := ac.empty()
		old := ac.h
		if !j.entry(ac, bc, full) {
			if !had && j.keep {
				a.setField(f, ac, len(bm))
			}
			return
		}
		changed = true
		if j.hash {
			if !wasEmpty {
				a.h = a.h.sub(hashChild(tagField, f, old))
			}
			if !ac.empty() {
				a.h = a.h.add(hashChild(tagField, f, ac.h))
			}
		}
		switch {
		case !ac.empty() || j.keep:
			if !had {
				a.setField(f, ac, len(bm))
			}
		case had:
			delete(a.Map, f)
		}
	}
	for f, bc := range bm {
		if bc == nil {
			bc = &Entry{}
		}
		one(f, bc)
	}
	if full {
		for f := range a.Map {
			if _, ok := bm[f]; !ok {
				one(f, nil)
			}
		}
	}
	if len(a.Map) == 0 && !j.keep {
		a.Map = nil
	}
	return changed
}

func (e *Entry) setField(f string, c *Entry, hint int) {
	if e.Map == nil {
		e.Map = make(map[string]*Entry, hint)
	}
	e.Map[f] = c
}

func cloneReg(v RegValue) RegValue {
	v.Value = bytes.Clone(v.Value)
	return v
}

// joinSmall joins two small dotted stores (register siblings, counter
// contributions, flag dots). The result is sorted by dot; values taken from
// b are copied with cp (nil: plain copy). When nothing changes it returns a
// itself. With alias, a single new value of b into an empty a is b itself
// (the common step of a Tx).
func joinSmall[T any](a, b []T, dot func(*T) Dot, actx, bctx *Context, cp func(T) T, alias bool) ([]T, bool) {
	if alias && len(a) == 0 && len(b) == 1 && !actx.Contains(dot(&b[0])) {
		return b[:1:1], true
	}
	inB := newDotIndex(b, dot)
	inA := newDotIndex(a, dot)
	changed := false
	for i := range a {
		d := dot(&a[i])
		if !inB.has(d) && bctx.Contains(d) {
			changed = true
			break
		}
	}
	if !changed {
		for i := range b {
			d := dot(&b[i])
			if !inA.has(d) && !actx.Contains(d) {
				changed = true
				break
			}
		}
	}
	if !changed {
		return a, false
	}
	out := make([]T, 0, len(a)+len(b))
	for i := range a {
		if d := dot(&a[i]); inB.has(d) || !bctx.Contains(d) {
			out = append(out, a[i])
		}
	}
	for i := range b {
		if d := dot(&b[i]); !inA.has(d) && !actx.Contains(d) {
			v := b[i]
			if cp != nil {
				v = cp(v)
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(x, y T) int { return compareDots(dot(&x), dot(&y)) })
	out = slices.CompactFunc(out, func(x, y T) bool { return dot(&x) == dot(&y) })
	if len(out) == 0 {
		out = nil
	}
	return out, true
}

// dotIndex answers membership of a dot in a small store: a linear scan for
// a few values, a map beyond (decoded input may hold many).
type dotIndex[T any] struct {
	xs  []T
	dot func(*T) Dot
	big map[Dot]struct{}
}

func newDotIndex[T any](xs []T, dot func(*T) Dot) dotIndex[T] {
	x := dotIndex[T]{xs: xs, dot: dot}
	if len(xs) > 8 {
		x.big = make(map[Dot]struct{}, len(xs))
		for i := range xs {
			x.big[dot(&xs[i])] = struct{}{}
		}
	}
	return x
}

func (x dotIndex[T]) has(d Dot) bool {
	if x.big != nil {
		_, ok := x.big[d]
		return ok
	}
	for i := range x.xs {
		if x.dot(&x.xs[i]) == d {
			return true
		}
	}
	return false
}

// joinDots joins the dots of one set member: sorted, unique slices in, a
// sorted unique slice out (a itself when unchanged).
func joinDots(a, b []Dot, actx, bctx *Context, alias bool) ([]Dot, bool) {
	if len(b) == 0 {
		// Fast path: removal or full visit of a's member.
		keep := 0
		for _, d := range a {
			if !bctx.Contains(d) {
				keep++
			}
		}
		if keep == len(a) {
			return a, false
		}
		out := make([]Dot, 0, keep)
		for _, d := range a {
			if !bctx.Contains(d) {
				out = append(out, d)
			}
		}
		return out, true
	}
	out, ch := joinSmall(a, b, idDot, actx, bctx, nil, alias)
	return out, ch
}
