package crdt

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Tx builds the deltas of local operations. It reads the keyspace plus the
// effects of its own earlier operations, and never writes the keyspace:
// the node persists the deltas first and applies them afterwards. The
// keyspace must not change while a Tx is in use.
//
// Every operation consumes fresh dots of the Tx's replica, in order,
// starting after the lastSeq given to Begin; at least one per operation,
// removals included, so that every operation is a new event (its delta is
// never mistaken for a duplicate). The cost of an operation is O(size of
// the operation), never O(size of the key or the keyspace), except Delete
// and field deletes, which must name every dot they remove, and the first
// operation on a key or field that holds a type conflict, which removes the
// hidden values it has seen (see settle) and names their dots.
//
// A failed operation leaves the Tx as it was. The returned deltas belong
// to the caller but must not be modified.
type Tx struct {
	ks      *Keyspace
	replica ReplicaID
	seq     uint64
	now     Timestamp           // the time operations see expiries at (SetTime); 0: none expired
	first   keyPend             // the pending state of the first key written (most Txs write one)...
	pend    map[string]*keyPend // ...and of the others
	slab    []keyPend           // where pend's entries are allocated, a few at a time
	ops     []txOp
}

// keyPend is what the operations so far did to one key: the join of
// their steps on it, except stale, joined in before the key is next read.
// The state is kept per key because every step is on one key and names
// only dots of that key's values (or fresh ones): a key's liveness depends
// on its own steps only. So a step is joined only when its key is read
// again, into a delta of that key alone, not into one that grows with the
// transaction (most keys of a large group are written once).
type keyPend struct {
	key   string
	d     *Delta // nil until a step is joined
	stale []*Delta
	one   [1]*Delta // stale's first home
}

func (kp *keyPend) flush() {
	if len(kp.stale) == 0 {
		return
	}
	if kp.d == nil {
		kp.d = &Delta{}
	}
	for _, m := range kp.stale {
		kp.d.joinShared(m)
	}
	clear(kp.stale)
	kp.stale = kp.stale[:0]
}

type txOp struct {
	d      *Delta
	key    string
	before uint64 // seq before the operation
}

// Begin starts a transaction of replica, whose last issued seq is lastSeq.
func (k *Keyspace) Begin(replica ReplicaID, lastSeq uint64) *Tx {
	return &Tx{ks: k, replica: replica, seq: lastSeq}
}

// Ops returns the number of operations in the transaction (each Put,
// Incr, ... of a batch counts).
func (t *Tx) Ops() int { return len(t.ops) }

// LastSeq returns the last seq handed out so far.
func (t *Tx) LastSeq() uint64 { return t.seq }

// SetTime sets the time (the caller's HLC) at which the following
// operations see expiries: a key whose expiry is at or before now is
// expired, so an operation on it starts a fresh value (see the package
// doc, "Expiry"). The zero time, the default, sees no key expired. The
// time never goes back in practice (it is the node's clock); the Tx does
// not require it.
func (t *Tx) SetTime(now Timestamp) { t.now = now }

// Checkpoint marks the current point of the transaction, for Rollback.
func (t *Tx) Checkpoint() int { return len(t.ops) }

// Rollback undoes every operation after the checkpoint cp and gives their
// seqs back: the next operation reuses them. The deltas of the undone
// operations must be discarded.
func (t *Tx) Rollback(cp int) {
	cp = max(cp, 0)
	if cp >= len(t.ops) {
		return
	}
	t.seq = t.ops[cp].before
	clear(t.ops[cp:])
	t.ops = t.ops[:cp]
	t.rebuild()
}

func (t *Tx) rebuild() {
	t.first = keyPend{}
	clear(t.pend)
	t.slab = nil
	for _, op := range t.ops {
		kp := t.keyPend(op.key)
		kp.stale = append(kp.stale, op.d)
	}
}

// pendOf returns key's pending state, nil when no operation wrote it.
func (t *Tx) pendOf(key string) *keyPend {
	if t.first.key == key {
		return &t.first // keys are never empty: an unused first matches none
	}
	return t.pend[key]
}

// keyPend returns key's pending state, creating it.
func (t *Tx) keyPend(key string) *keyPend {
	if kp := t.pendOf(key); kp != nil {
		return kp
	}
	if t.first.key == "" {
		t.first.key = key
		return &t.first
	}
	if t.pend == nil {
		t.pend = make(map[string]*keyPend)
	}
	if len(t.slab) == cap(t.slab) {
		t.slab = make([]keyPend, 0, min(64, 2*cap(t.slab)+1))
	}
	t.slab = append(t.slab, keyPend{key: key})
	kp := &t.slab[len(t.slab)-1]
	t.pend[key] = kp
	return kp
}

// op accumulates the delta of one operation, on one key.
type op struct {
	t       *Tx
	d       *Delta
	key     string
	start   uint64
	emitted bool
}

func (t *Tx) begin(key string) *op { return &op{t: t, key: key, start: t.seq} }

func (t *Tx) next() Dot {
	t.seq++
	return Dot{t.replica, t.seq}
}

// at records a step of the operation: entry e at path (key, fields...)
// with the dots ctx (fresh dots and the observed dots it replaces).
func (o *op) at(path []string, e *Entry, ctx []Dot) { o.atInto(&Delta{}, path, e, ctx) }

// atInto is at with the step's delta m (empty) allocated by the caller.
func (o *op) atInto(m *Delta, path []string, e *Entry, ctx []Dot) {
	for i := len(path) - 1; i >= 1; i-- {
		e = &Entry{Map: map[string]*Entry{path[i]: e}}
	}
	m.Ctx.Cloud = ctx
	if e != nil {
		m.Keys = map[string]*Entry{path[0]: e}
	}
	m.Ctx.compact()
	if o.emitted {
		o.d.joinShared(m)
	} else {
		o.d = m // fresh and owned: the first step is the delta so far
	}
	// m may be o.d and grow with later steps: joining more into pend
	// than was there at this step is harmless (joins are idempotent).
	// A step without a path holds only a fresh dot, which no value of the
	// keyspace or of the Tx has: nothing to record.
	if len(path) > 0 {
		kp := o.t.keyPend(path[0])
		if kp.stale == nil {
			kp.stale = kp.one[:0]
		}
		kp.stale = append(kp.stale, m)
	}
	o.emitted = true
}

func (o *op) finish() (*Delta, error) {
	t := o.t
	if t.seq == o.start {
		o.at(nil, nil, []Dot{t.next()}) // an operation that only removes
	}
	if o.d == nil { // no step: cannot happen once a dot was consumed
		o.d = &Delta{}
	}
	o.d.Own = []DotRange{{Replica: t.replica, First: o.start + 1, Last: t.seq}}
	t.ops = append(t.ops, txOp{d: o.d, key: o.key, before: o.start})
	return o.d, nil
}

func (o *op) fail(err error) (*Delta, error) {
	o.t.seq = o.start
	if o.emitted {
		o.t.rebuild()
	}
	return nil, err
}

// ov is the Tx's view of one path: the keyspace's entry l, the pending
// entry p of earlier operations of the Tx, the dots those operations saw
// on the key (ctx, nil for none), and dead when a pending delete of an
// ancestor removed all of l.
type ov struct {
	l, p *Entry
	ctx  *Context
	dead bool
}

// seen reports whether a pending operation saw (removed) the local dot d.
func (v ov) seen(d Dot) bool { return v.ctx != nil && v.ctx.Contains(d) }

// allDead reports whether the pending operations removed all of v.l.
func (v ov) allDead() bool { return v.dead || (v.p != nil && v.p.All) }

func (v ov) field(f string) ov {
	c := ov{ctx: v.ctx, dead: v.allDead()}
	if v.l != nil {
		c.l = v.l.Map[f]
	}
	if v.p != nil {
		c.p = v.p.Map[f]
	}
	return c
}

func (t *Tx) at(path []string) ov {
	v := ov{l: t.ks.keys[path[0]]}
	if kp := t.pendOf(path[0]); kp != nil {
		if kp.flush(); kp.d != nil {
			v.p, v.ctx = kp.d.Keys[path[0]], &kp.d.Ctx
		}
	}
	for _, f := range path[1:] {
		v = v.field(f)
	}
	return v
}

// Local values are live unless a pending operation has seen (removed)
// their dot; pending values are all live (later operations removed
// the pending values they replaced when they were joined in).

func (t *Tx) regs(v ov) []RegValue {
	return liveItems(t, v, func(e *Entry) []RegValue { return e.Reg }, regDot)
}

func (t *Tx) cnts(v ov) []CountValue {
	return liveItems(t, v, func(e *Entry) []CountValue { return e.Cnt }, cntDot)
}

// exps returns the live expiry items of the key at v.
func (t *Tx) exps(v ov) []ExpValue {
	return liveItems(t, v, func(e *Entry) []ExpValue { return e.Exp }, expDot)
}

// liveItems returns the items of one kind at v: the local ones no pending
// operation has removed, then the pending ones.
func liveItems[T any](t *Tx, v ov, items func(*Entry) []T, dot func(*T) Dot) []T {
	var out []T
	if v.l != nil {
		for _, it := range items(v.l) {
			if !v.seen(dot(&it)) {
				out = append(out, it)
			}
		}
	}
	if v.p != nil {
		out = append(out, items(v.p)...)
	}
	return out
}

// expired reports whether the key whose live expiry items are xs has
// expired at the Tx's time.
func (t *Tx) expired(xs []ExpValue) bool {
	if t.now == 0 || len(xs) == 0 {
		return false
	}
	at := Expiry(xs)
	return at != 0 && at <= t.now
}

func expDots(xs []ExpValue, out []Dot) []Dot {
	for _, x := range xs {
		out = append(out, x.Dot)
	}
	return out
}

func (t *Tx) liveDots(v ov, l, p []Dot, out []Dot) []Dot {
	for _, d := range l {
		if !v.seen(d) {
			out = append(out, d)
		}
	}
	return append(out, p...)
}

func (t *Tx) flags(v ov) []Dot {
	var l, p []Dot
	if v.l != nil {
		l = v.l.Flag
	}
	if v.p != nil {
		p = v.p.Flag
	}
	return t.liveDots(v, l, p, nil)
}

func (t *Tx) member(v ov, m string, out []Dot) []Dot {
	var l, p []Dot
	if v.l != nil {
		l = v.l.Set[m]
	}
	if v.p != nil {
		p = v.p.Set[m]
	}
	return t.liveDots(v, l, p, out)
}

// setLive reports whether the set of v has a live member, in O(pending).
func (t *Tx) setLive(v ov) bool {
	if v.p != nil {
		for _, ds := range v.p.Set {
			if len(ds) > 0 {
				return true // pending dots are live
			}
		}
	}
	if v.l != nil && !v.allDead() {
		// Pending operations remove only members they list.
		listed := 0
		if v.p != nil {
			for m := range v.p.Set {
				if _, ok := v.l.Set[m]; ok {
					listed++
				}
			}
		}
		if len(v.l.Set) > listed {
			return true
		}
	}
	if v.p != nil {
		for m := range v.p.Set {
			if len(t.member(v, m, nil)) > 0 {
				return true
			}
		}
	}
	return false
}

// mapLive reports whether the map of v has a live field, in O(pending).
func (t *Tx) mapLive(v ov) bool {
	if v.l != nil && !v.allDead() {
		listed := 0
		if v.p != nil {
			for f := range v.p.Map {
				if _, ok := v.l.Map[f]; ok {
					listed++
				}
			}
		}
		if len(v.l.Map) > listed {
			return true
		}
	}
	if v.p != nil {
		for f := range v.p.Map {
			if t.typeOf(v.field(f)) != 0 {
				return true
			}
		}
	}
	return false
}

// typeOf returns the visible type at v, 0 when nothing lives there.
func (t *Tx) typeOf(v ov) Type { return t.liveTypes(v).visible() }

// typeMask is a set of types, one bit per Type.
type typeMask uint8

func (m typeMask) has(tp Type) bool { return m&(1<<tp) != 0 }

// visible returns the type of highest precedence in m (map > set > counter
// > register > flag, as Entry.visibleType), 0 for none.
func (m typeMask) visible() Type {
	switch {
	case m.has(TypeMap):
		return TypeMap
	case m.has(TypeSet):
		return TypeSet
	case m.has(TypeCounter):
		return TypeCounter
	case m.has(TypeRegister):
		return TypeRegister
	case m.has(TypeFlag):
		return TypeFlag
	}
	return 0
}

// liveTypes returns the types that have a live value at v: more than one
// after concurrent first writes of different types (a type conflict).
func (t *Tx) liveTypes(v ov) typeMask {
	if v.l == nil && v.p == nil {
		return 0
	}
	var m typeMask
	if t.mapLive(v) {
		m |= 1 << TypeMap
	}
	if t.setLive(v) {
		m |= 1 << TypeSet
	}
	if hasLive(v, func(e *Entry) []CountValue { return e.Cnt }, cntDot) {
		m |= 1 << TypeCounter
	}
	if hasLive(v, func(e *Entry) []RegValue { return e.Reg }, regDot) {
		m |= 1 << TypeRegister
	}
	if hasLive(v, func(e *Entry) []Dot { return e.Flag }, idDot) {
		m |= 1 << TypeFlag
	}
	return m
}

// hasLive reports whether the small store picked by store has a live value
// at (l, p), without allocating.
func hasLive[T any](v ov, store func(*Entry) []T, dot func(*T) Dot) bool {
	if v.p != nil && len(store(v.p)) > 0 {
		return true
	}
	if v.l != nil {
		xs := store(v.l)
		for i := range xs {
			if !v.seen(dot(&xs[i])) {
				return true
			}
		}
	}
	return false
}

// allDots appends every live dot under v, expiry items included.
func (t *Tx) allDots(v ov, out []Dot) []Dot {
	out = expDots(t.exps(v), out)
	for _, r := range t.regs(v) {
		out = append(out, r.Dot)
	}
	for _, c := range t.cnts(v) {
		out = append(out, c.Dot)
	}
	out = append(out, t.flags(v)...)
	if v.l != nil && !v.allDead() {
		for m, ds := range v.l.Set {
			if _, listed := v.p.setOf(m); !listed {
				out = t.liveDots(v, ds, nil, out)
			}
		}
	}
	if v.p != nil {
		for m := range v.p.Set {
			out = t.member(v, m, out)
		}
	}
	if v.l != nil {
		for f := range v.l.Map {
			if _, listed := v.p.fieldOf(f); !listed {
				out = t.allDots(v.field(f), out)
			}
		}
	}
	if v.p != nil {
		for f := range v.p.Map {
			out = t.allDots(v.field(f), out)
		}
	}
	return out
}

// settle ends a type conflict at path: it removes the values of every
// type but keep that live in v (live are their types). keep is the type
// the operation writes, which is the visible one, so the values it
// removes are of lower precedence: a map is never removed, and a set only
// under a map. So the first operation on a path by a replica that has seen
// a conflict there removes the hidden values it has seen, and emptying the
// visible value later leaves nothing to reappear (see the package doc).
// The step lists the set members it empties (Apply visits only listed
// paths; the small stores are joined whole) and its context holds the
// removed dots: it costs O(size of the hidden values), once. A path of one
// type costs a mask test. Enable and Disable never settle: a flag has the
// lowest precedence, so when it is visible nothing else lives there.
func (o *op) settle(path []string, v ov, live typeMask, keep Type) {
	if live&^(1<<keep) == 0 {
		return
	}
	t := o.t
	e := &Entry{}
	var dots []Dot
	if live.has(TypeRegister) && keep != TypeRegister {
		for _, r := range t.regs(v) {
			dots = append(dots, r.Dot)
		}
	}
	if live.has(TypeCounter) && keep != TypeCounter {
		for _, c := range t.cnts(v) {
			dots = append(dots, c.Dot)
		}
	}
	if live.has(TypeFlag) && keep != TypeFlag {
		dots = append(dots, t.flags(v)...)
	}
	if live.has(TypeSet) && keep != TypeSet {
		e.Set = make(map[string][]Dot)
		member := func(m string, ds []Dot) {
			if len(ds) > 0 {
				e.Set[m] = []Dot{}
				dots = append(dots, ds...)
			}
		}
		if v.l != nil && !v.allDead() {
			for m, ds := range v.l.Set {
				if _, listed := v.p.setOf(m); !listed {
					member(m, t.liveDots(v, ds, nil, nil))
				}
			}
		}
		if v.p != nil {
			for m := range v.p.Set {
				member(m, t.member(v, m, nil))
			}
		}
	}
	o.at(path, e, dots)
}

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	return nil
}

func wrongType(op string, path []string, want, have Type) error {
	return fmt.Errorf("%s %s: a %v, not a %v: %w", op, pathString(path), have, want, ErrWrongType)
}

// fresh starts a write to a key that has no live value for the Tx (it
// expired at the Tx's time, or it holds nothing but expiry items that a
// concurrent operation left): the write removes every dot of the key the
// Tx has seen, as a Delete would, and then works on an absent key. So
// nothing of an expired value (no sibling, member, field or counter
// contribution, and not its expiry) shows again through the write, and a
// new value never inherits an old expiry. A key without expiry items costs
// a look at them. hadExp: the key had expiry items (keepExpiry has work).
func (o *op) fresh(key string) (fresh, hadExp bool) {
	t := o.t
	path := []string{key}
	v := t.at(path)
	xs := t.exps(v)
	if len(xs) == 0 || (!t.expired(xs) && t.typeOf(v) != 0) {
		return false, len(xs) > 0
	}
	o.at(path, &Entry{All: true}, t.allDots(v, nil))
	return true, true
}

// keepExpiry ends a write that did not set an expiry itself (fresh: it
// started a fresh value, see fresh).
//
// A write to a live key keeps the key's expiry: it sets it again under a
// fresh dot (the items it has seen replaced by one with the same time).
// Carrying it in the write's delta binds the written value to it: a
// replica that no longer holds the old items (it reclaimed the key, or a
// fresh write that had not seen this write removed them) still finds the
// value expiring. A Persist among the items (no expiry) is left as it is.
//
// A fresh value gets a Persist item: it never expires (until an Expire),
// and no expiry set concurrently on the old value (a write on another
// replica that still found the key live keeps the old one) can hide it.
//
// A key the write left without a value (its last member or field
// removed) loses its expiry items instead: a later write starts afresh.
func (o *op) keepExpiry(key string, fresh, hadExp bool) {
	if !fresh && !hadExp {
		// No expiry item before the write, and writes add none: nothing to
		// keep (and no read, which would join the write's step at once).
		return
	}
	t := o.t
	path := []string{key}
	v := t.at(path)
	xs := t.exps(v)
	if len(xs) == 0 && !fresh {
		return
	}
	if t.typeOf(v) == 0 {
		if len(xs) > 0 {
			o.at(path, &Entry{}, expDots(xs, nil))
		}
		return
	}
	at := Persisted
	if !fresh {
		if at = Expiry(xs); at == Persisted {
			return
		}
	}
	d := t.next()
	o.at(path, &Entry{Exp: []ExpValue{{Dot: d, At: at}}}, expDots(xs, []Dot{d}))
}

func pathString(path []string) string {
	if len(path) == 1 {
		return fmt.Sprintf("%q", path[0])
	}
	return fmt.Sprintf("%q field %q", path[0], strings.Join(path[1:], "."))
}

// Put writes value to the register at key with timestamp ts (the caller's
// HLC). The write replaces every sibling this replica has seen; concurrent
// writes stay as siblings and the read shows the one with the highest
// (ts, replica ID, seq). value is copied.
func (t *Tx) Put(key string, value []byte, ts Timestamp) (*Delta, error) {
	return t.put(key, value, ts, false)
}

// PutOwned is Put that keeps value instead of copying it: the caller hands
// it over and must not modify it afterwards.
func (t *Tx) PutOwned(key string, value []byte, ts Timestamp) (*Delta, error) {
	return t.put(key, value, ts, true)
}

func (t *Tx) put(key string, value []byte, ts Timestamp, own bool) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	o := t.begin(key)
	fresh, hadExp := o.fresh(key)
	if err := o.putReg([]string{key}, value, ts, own); err != nil {
		return o.fail(err)
	}
	o.keepExpiry(key, fresh, hadExp)
	return o.finish()
}

func (o *op) putReg(path []string, value []byte, ts Timestamp, own bool) error {
	t := o.t
	v := t.at(path)
	live := t.liveTypes(v)
	if tp := live.visible(); tp != 0 && tp != TypeRegister {
		return wrongType("put", path, TypeRegister, tp)
	}
	o.settle(path, v, live, TypeRegister)
	d := t.next()
	// One allocation for the step's delta, entry, sibling and context.
	st := &regStep{}
	ctx := st.ctx[:1]
	ctx[0] = d
	if v.l != nil {
		for i := range v.l.Reg {
			if dd := v.l.Reg[i].Dot; !v.seen(dd) {
				ctx = append(ctx, dd)
			}
		}
	}
	if v.p != nil {
		for i := range v.p.Reg {
			ctx = append(ctx, v.p.Reg[i].Dot)
		}
	}
	if !own {
		value = bytes.Clone(value)
	}
	st.reg[0] = RegValue{Dot: d, Time: ts, Value: value}
	st.e.Reg = st.reg[:]
	o.atInto(&st.d, path, &st.e, ctx)
	return nil
}

// regStep holds the parts of a register write's step, allocated together.
type regStep struct {
	d   Delta
	e   Entry
	reg [1]RegValue
	ctx [2]Dot
}

// Incr adds by to the counter at key (a negative by decrements). The
// counter keeps one cumulative contribution per replica; this replica's is
// replaced by a new one under a fresh dot. ErrOverflow when this replica's
// contribution would leave int64; the sum of all contributions wraps around
// like int64 arithmetic.
func (t *Tx) Incr(key string, by int64) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	o := t.begin(key)
	fresh, hadExp := o.fresh(key)
	if err := o.incr([]string{key}, by); err != nil {
		return o.fail(err)
	}
	o.keepExpiry(key, fresh, hadExp)
	return o.finish()
}

func (o *op) incr(path []string, by int64) error {
	t := o.t
	v := t.at(path)
	live := t.liveTypes(v)
	if tp := live.visible(); tp != 0 && tp != TypeCounter {
		return wrongType("incr", path, TypeCounter, tp)
	}
	var n int64
	var ctx []Dot
	for _, c := range t.cnts(v) {
		if c.Dot.Replica == t.replica {
			n += c.N
			ctx = append(ctx, c.Dot)
		}
	}
	sum := n + by
	if (by > 0 && sum < n) || (by < 0 && sum > n) {
		return fmt.Errorf("incr %s by %d: %w", pathString(path), by, ErrOverflow)
	}
	o.settle(path, v, live, TypeCounter)
	d := t.next()
	o.at(path, &Entry{Cnt: []CountValue{{Dot: d, N: sum}}}, append(ctx, d))
	return nil
}

// SetAdd adds members to the set at key. Each member gets a fresh dot that
// replaces the dots of that member this replica has seen (add-wins: a
// concurrent remove cannot have seen the new dot).
func (t *Tx) SetAdd(key string, members ...string) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	o := t.begin(key)
	fresh, hadExp := o.fresh(key)
	if err := o.setAdd([]string{key}, members); err != nil {
		return o.fail(err)
	}
	o.keepExpiry(key, fresh, hadExp)
	return o.finish()
}

func uniqueSorted(ss []string) []string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	return slices.Compact(ss)
}

func (o *op) setAdd(path []string, members []string) error {
	t := o.t
	if len(members) == 0 {
		return fmt.Errorf("add to %s: %w: no members", pathString(path), ErrInvalid)
	}
	v := t.at(path)
	live := t.liveTypes(v)
	if tp := live.visible(); tp != 0 && tp != TypeSet {
		return wrongType("add to", path, TypeSet, tp)
	}
	o.settle(path, v, live, TypeSet)
	e := &Entry{Set: make(map[string][]Dot, len(members))}
	var ctx []Dot
	for _, m := range uniqueSorted(members) {
		d := t.next()
		e.Set[m] = []Dot{d}
		ctx = t.member(v, m, append(ctx, d))
	}
	o.at(path, e, ctx)
	return nil
}

// SetRemove removes members from the set at key: the dots of those members
// this replica has seen. Adds it has not seen survive. Removing from an
// absent key records an operation that changes nothing.
func (t *Tx) SetRemove(key string, members ...string) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	o := t.begin(key)
	fresh, hadExp := o.fresh(key)
	if err := o.setRemove([]string{key}, members); err != nil {
		return o.fail(err)
	}
	o.keepExpiry(key, fresh, hadExp)
	return o.finish()
}

func (o *op) setRemove(path []string, members []string) error {
	t := o.t
	if len(members) == 0 {
		return fmt.Errorf("remove from %s: %w: no members", pathString(path), ErrInvalid)
	}
	v := t.at(path)
	live := t.liveTypes(v)
	tp := live.visible()
	if tp != 0 && tp != TypeSet {
		return wrongType("remove from", path, TypeSet, tp)
	}
	if tp == 0 {
		return nil
	}
	o.settle(path, v, live, TypeSet)
	e := &Entry{Set: make(map[string][]Dot, len(members))}
	var ctx []Dot
	for _, m := range uniqueSorted(members) {
		e.Set[m] = []Dot{}
		ctx = t.member(v, m, ctx)
	}
	o.at(path, e, ctx)
	return nil
}

// Delete removes the key: every dot under it this replica has seen, of
// every type, and its expiry. Updates concurrent with the delete survive
// it. ErrNotFound when the key does not exist (or has expired). Its delta
// names every removed dot, so it costs O(size of the key).
func (t *Tx) Delete(key string) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	o := t.begin(key)
	v := t.at([]string{key})
	if !t.exists(v) {
		return o.fail(fmt.Errorf("delete %q: %w", key, ErrNotFound))
	}
	o.at([]string{key}, &Entry{All: true}, t.allDots(v, nil))
	return o.finish()
}

// exists reports whether the key at v has a live value that has not
// expired at the Tx's time.
func (t *Tx) exists(v ov) bool { return t.typeOf(v) != 0 && !t.expired(t.exps(v)) }

// Expire sets the key's expiry to at (the caller's HLC plus the time to
// live; 0 is refused with ErrInvalid): the key disappears for every read
// at or after at. It replaces the expiry items this replica has seen (an
// earlier expiry or Persist); concurrent ones stay, and the latest expiry
// wins, a Persist over all (see Expiry). It works alike on every type.
// ErrNotFound when the key does not exist or has expired.
func (t *Tx) Expire(key string, at Timestamp) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if at == 0 {
		return nil, fmt.Errorf("expire %q: %w: expiry time 0", key, ErrInvalid)
	}
	return t.setExpiry("expire", key, at)
}

// Persist removes the key's expiry: the expiry items this replica has
// seen are replaced by a Persist item, which wins over every concurrent
// expiry (a later Expire, one that has seen it, sets one again).
// ErrNotFound when the key does not exist or has expired.
func (t *Tx) Persist(key string) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return t.setExpiry("persist", key, Persisted)
}

func (t *Tx) setExpiry(name, key string, at Timestamp) (*Delta, error) {
	o := t.begin(key)
	path := []string{key}
	v := t.at(path)
	xs := t.exps(v)
	if t.typeOf(v) == 0 || t.expired(xs) {
		return o.fail(fmt.Errorf("%s %q: %w", name, key, ErrNotFound))
	}
	d := t.next()
	o.at(path, &Entry{Exp: []ExpValue{{Dot: d, At: at}}}, expDots(xs, []Dot{d}))
	return o.finish()
}

// empty reports whether the patch does nothing.
func (p *Patch) empty() bool {
	return len(p.Set) == 0 && len(p.Delete) == 0 && len(p.Incr) == 0 && len(p.Add) == 0 &&
		len(p.Remove) == 0 && len(p.Enable) == 0 && len(p.Disable) == 0 && len(p.Nested) == 0
}

// Update applies a patch to the map (document) at key; register fields
// written by it get timestamp ts. Each part follows the rules of its type
// (register fields as Put, counters as Incr, sets as SetAdd/SetRemove,
// flags enable-wins, nested maps recursively); deleting a field removes
// the dots under it this replica has seen. Errors: ErrWrongType when the
// key or a field holds another type, ErrInvalid for an empty patch or
// nesting deeper than 32, ErrOverflow. The patch is not retained.
func (t *Tx) Update(key string, p *Patch, ts Timestamp) (*Delta, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if p == nil || p.empty() {
		return nil, fmt.Errorf("update %q: %w: empty patch", key, ErrInvalid)
	}
	o := t.begin(key)
	fresh, hadExp := o.fresh(key)
	if err := o.patch([]string{key}, p, ts); err != nil {
		return o.fail(err)
	}
	o.keepExpiry(key, fresh, hadExp)
	return o.finish()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (o *op) patch(path []string, p *Patch, ts Timestamp) error {
	t := o.t
	if len(path) > maxDepth {
		return fmt.Errorf("update %s: %w: maps nested deeper than %d", pathString(path), ErrInvalid, maxDepth)
	}
	v := t.at(path)
	live := t.liveTypes(v)
	if tp := live.visible(); tp != 0 && tp != TypeMap {
		return wrongType("update", path, TypeMap, tp)
	}
	o.settle(path, v, live, TypeMap)
	sub := func(f string) []string { return append(slices.Clip(path), f) }
	for _, f := range p.Delete {
		fp := sub(f)
		v := t.at(fp)
		if t.typeOf(v) == 0 {
			continue
		}
		o.at(fp, &Entry{All: true}, t.allDots(v, nil))
	}
	for _, f := range sortedKeys(p.Set) {
		if err := o.putReg(sub(f), p.Set[f], ts, false); err != nil {
			return err
		}
	}
	for _, f := range sortedKeys(p.Incr) {
		if err := o.incr(sub(f), p.Incr[f]); err != nil {
			return err
		}
	}
	for _, f := range sortedKeys(p.Add) {
		if len(p.Add[f]) == 0 {
			continue
		}
		if err := o.setAdd(sub(f), p.Add[f]); err != nil {
			return err
		}
	}
	for _, f := range sortedKeys(p.Remove) {
		if len(p.Remove[f]) == 0 {
			continue
		}
		if err := o.setRemove(sub(f), p.Remove[f]); err != nil {
			return err
		}
	}
	for _, f := range p.Enable {
		fp := sub(f)
		v := t.at(fp)
		if tp := t.typeOf(v); tp != 0 && tp != TypeFlag {
			return wrongType("enable", fp, TypeFlag, tp)
		}
		d := t.next()
		o.at(fp, &Entry{Flag: []Dot{d}}, append(t.flags(v), d))
	}
	for _, f := range p.Disable {
		fp := sub(f)
		v := t.at(fp)
		tp := t.typeOf(v)
		if tp != 0 && tp != TypeFlag {
			return wrongType("disable", fp, TypeFlag, tp)
		}
		if tp == TypeFlag {
			o.at(fp, &Entry{}, t.flags(v))
		}
	}
	for _, f := range sortedKeys(p.Nested) {
		if np := p.Nested[f]; np != nil && !np.empty() {
			if err := o.patch(sub(f), np, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Entry) setOf(m string) ([]Dot, bool) {
	if e == nil {
		return nil, false
	}
	ds, ok := e.Set[m]
	return ds, ok
}

func (e *Entry) fieldOf(f string) (*Entry, bool) {
	if e == nil {
		return nil, false
	}
	c, ok := e.Map[f]
	return c, ok
}
