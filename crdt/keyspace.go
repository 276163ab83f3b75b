package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Keyspace is the top-level observed-remove map: key -> typed CRDT value,
// every value under one shared causal context.
//
// Merge rule: a key's entry is joined dot store by dot store (see Entry);
// a key whose entry ends up holding no dot does not exist. Deleting a key
// removes the dots the deleting replica had seen under it, so an update
// concurrent with the delete (a fresh dot) survives it. Concurrent first
// writes of different types leave values of both types in the entry; the
// visible one is the type of highest precedence (map > set > counter >
// register), and an operation of any other type is refused with
// ErrWrongType. The first operation on the key by a replica that has seen
// the hidden value removes it (Tx puts its dots in the delta's context), so
// emptying the visible value afterwards deletes the key rather than showing
// the hidden one; a hidden value written concurrently with that operation
// survives it. Until then the hidden value stays in the state (it is part
// of the digest).
//
// Laws: Apply of any delta is idempotent, and applying a set of deltas in
// any order gives the same state (join is commutative and associative).
//
// A Keyspace is not safe for concurrent use; the node guards it with a lock.
// Read methods return copies.
//
// A keyspace tracks two sets of dots. The causal context (Context) holds
// every dot it has seen, present or removed: the join needs it. The applied
// set (Applied) holds the dots of the operations whose deltas it has
// joined. They differ because deltas arrive in any order: a delta that
// removes a value puts the value's dot in the context even when the
// operation that wrote it (and what that operation removed) has not
// arrived yet. So duplicates are detected (Covers) and missing operations
// are found (Applied().Missing) with the applied set, never the context.
type Keyspace struct {
	keys      map[string]*Entry
	ctx       Context
	applied   Context // dots of the operations whose effects the state includes
	sum       sum128  // sum of the key hashes
	index     keyIndex
	waiting   expiryQueue  // keys with an expiry not yet reported by Sweep (expiry.go)
	queuedSeq uint64       // the last queued.seq
	expired   reclaimQueue // keys reported by Sweep, until reclaimed

	// Open RangeScans and CopyScans, kept up to date by the writer
	// (rehashed); scanMu orders their opening and closing, which readers
	// do.
	scans  []*RangeScan
	copies []*CopyScan
	scanMu sync.Mutex
}

// NewKeyspace returns an empty keyspace.
func NewKeyspace() *Keyspace { return &Keyspace{keys: make(map[string]*Entry)} }

// Get returns a copy of the visible value of key at time now (the caller's
// HLC); false when the key does not exist or has expired (its expiry is at
// or before now). now 0 ignores expiries. View.Expires is the key's
// expiry (0: none).
func (k *Keyspace) Get(key string, now Timestamp) (View, bool) { return k.get(key, now, false) }

// GetShared is Get without copying registers' values: View.Register (also
// in a map's fields) is the state's own bytes, which the caller must not
// modify. They stay valid and unchanged however the key changes later: the
// keyspace never writes into a value it holds (a write replaces it).
func (k *Keyspace) GetShared(key string, now Timestamp) (View, bool) { return k.get(key, now, true) }

func (k *Keyspace) get(key string, now Timestamp, share bool) (View, bool) {
	e := k.keys[key]
	if e == nil || !e.live(now) {
		return View{}, false
	}
	v := e.view(share)
	v.Expires = Expiry(e.Exp)
	return v, true
}

// SuspendIndex stops keeping the ordered index of keys up to date key by
// key until ResumeIndex, which brings it up to date with one sort: for
// applying many operations at once (a replay). A listing meanwhile brings
// it up to date first, so the keyspace must not be read concurrently
// while suspended, even under a read lock.
func (k *Keyspace) SuspendIndex() { k.index.suspend() }

// ResumeIndex ends SuspendIndex.
func (k *Keyspace) ResumeIndex() { k.index.resume(k.entryOf) }

func (k *Keyspace) entryOf(key string) *Entry { return k.keys[key] }

// flushIndex brings a suspended index up to date before a listing.
func (k *Keyspace) flushIndex() {
	if k.index.suspended {
		k.index.flush(k.entryOf)
	}
}

// live reports whether a keyspace entry holds a value that is visible at
// now: it has one and has not expired (now 0: ignoring expiries).
func (e *Entry) live(now Timestamp) bool {
	if e.visibleType() == 0 {
		return false
	}
	at := Expiry(e.Exp)
	return now == 0 || at == 0 || now < at
}

// Siblings returns the concurrent values of the register at key, the
// visible one (highest time, then replica ID, then seq) first, as Get
// sees the key at now. Errors: ErrNotFound (also once it has expired),
// ErrWrongType when the key's visible type is not register.
func (k *Keyspace) Siblings(key string, now Timestamp) ([]Sibling, error) {
	return k.FieldSiblings(key, now)
}

// FieldSiblings is Siblings for the register at a field of a map (a
// document): path names the field, then the fields of the maps under it;
// an empty path is the key itself. Errors: ErrNotFound when the key (at
// now) or a field of the path does not exist, ErrWrongType when a step of
// the path is not a map or the field is not a register.
func (k *Keyspace) FieldSiblings(key string, now Timestamp, path ...string) ([]Sibling, error) {
	e := k.keys[key]
	if e == nil || !e.live(now) {
		return nil, fmt.Errorf("siblings of %q: %w", key, ErrNotFound)
	}
	for i, field := range path {
		if t := e.visibleType(); t != TypeMap {
			return nil, fmt.Errorf("siblings of %q %q: %q is a %v: %w", key, path, path[:i], t, ErrWrongType)
		}
		e = e.Map[field]
		if e == nil || e.visibleType() == 0 {
			return nil, fmt.Errorf("siblings of %q %q: %w", key, path[:i+1], ErrNotFound)
		}
	}
	if t := e.visibleType(); t != TypeRegister {
		return nil, fmt.Errorf("siblings of %q %q (a %v): %w", key, path, t, ErrWrongType)
	}
	regs := slices.Clone(e.Reg)
	slices.SortFunc(regs, func(a, b RegValue) int { return -compareReg(&a, &b) })
	out := make([]Sibling, len(regs))
	for i, r := range regs {
		out[i] = Sibling{Dot: r.Dot, Time: r.Time, Value: bytes.Clone(r.Value)}
	}
	return out, nil
}

// Keys returns the keys that start with prefix and their visible types,
// sorted by key; at most limit of them when limit > 0. With now (the
// caller's HLC) it lists the keys Get finds at now. With now 0 it lists
// every key the state holds: expired keys not reclaimed yet, and keys
// holding nothing but expiry items (Type 0), as a state transfer must.
func (k *Keyspace) Keys(prefix string, limit int, now Timestamp) []KeyInfo {
	return k.KeysAfter(prefix, "", limit, now)
}

// KeysAfter is Keys for the keys after key after (all of them when after
// is ""): a cursor for walking a prefix in chunks. It only reads: callers
// may hold a read lock.
func (k *Keyspace) KeysAfter(prefix, after string, limit int, now Timestamp) []KeyInfo {
	k.flushIndex()
	out := []KeyInfo{}
	k.index.prefixed(prefix, after, func(key string) bool {
		if limit > 0 && len(out) == limit {
			return false
		}
		if e := k.keys[key]; now == 0 || e.live(now) {
			out = append(out, KeyInfo{Key: key, Type: e.visibleType()})
		}
		return true
	})
	return out
}

// KeysFrom returns up to limit keys >= from and < to (to "": no end), in
// order, expired keys not yet reclaimed included: a cursor over a range of
// keys that reads only what it returns.
func (k *Keyspace) KeysFrom(from, to string, limit int) []string {
	k.flushIndex()
	var out []string
	k.index.ascend(from, func(key string) bool {
		if to != "" && key >= to || len(out) == limit {
			return false
		}
		out = append(out, key)
		return true
	})
	return out
}

// Len returns the number of keys the state holds, expired keys not yet
// reclaimed (see Sweep) included.
func (k *Keyspace) Len() int { return len(k.keys) }

// Context returns a copy of the causal context: every dot this keyspace
// has seen, present or removed. It is what a state transfer sends along
// with the keys (JoinRange, MergeContext). It is not a record of which
// operations arrived: use Applied for that.
func (k *Keyspace) Context() *Context { return k.ctx.Clone() }

// Applied returns a copy of the dots of the operations whose effects the
// state includes (the Own dots of every delta joined, and the applied set
// of every state transferred). Anti-entropy compares these:
// mine.Missing(theirs) names the operations a peer has that this
// keyspace lacks. Applied is a subset of Context.
func (k *Keyspace) Applied() *Context { return k.applied.Clone() }

// Digest returns a hash of the canonical state: equal on two keyspaces
// exactly when they hold the same values under the same context (up to
// hash collisions). It costs O(replicas + context cloud): the per-key
// hashes are kept up to date by every change.
func (k *Keyspace) Digest() [32]byte {
	h := sha256.New()
	var b [24]byte
	h.Write([]byte("shoal/crdt digest v1\x00"))
	binary.BigEndian.PutUint64(b[0:], k.sum.hi)
	binary.BigEndian.PutUint64(b[8:], k.sum.lo)
	h.Write(b[:16])
	vv := k.ctx.VV.Sorted()
	binary.BigEndian.PutUint64(b[0:], uint64(len(vv)))
	h.Write(b[:8])
	for _, d := range vv {
		binary.BigEndian.PutUint64(b[0:], uint64(d.Replica))
		binary.BigEndian.PutUint64(b[8:], d.Seq)
		h.Write(b[:16])
	}
	binary.BigEndian.PutUint64(b[0:], uint64(len(k.ctx.Cloud)))
	h.Write(b[:8])
	for _, d := range k.ctx.Cloud {
		binary.BigEndian.PutUint64(b[0:], uint64(d.Replica))
		binary.BigEndian.PutUint64(b[8:], d.Seq)
		h.Write(b[:16])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func keyHash(key string, e *Entry) sum128 { return hashChild(tagKey, key, e.h) }

// Apply joins a delta into the keyspace and returns the keys whose state
// changed, sorted by key (nil when the delta brought nothing new). It is
// idempotent: applying a delta again changes nothing, so at-least-once
// delivery and WAL replay are safe.
//
// Apply visits only the paths the delta lists (plus every key when
// d.Full), so it costs O(size of the delta), which equals the full join
// for deltas made by Tx, their joins, KeyState and Snapshot. The delta is
// not modified and not retained. An invalid delta (see Validate) is
// ignored: Apply returns nil and changes nothing.
func (k *Keyspace) Apply(d *Delta) []Change { return k.apply(d, false) }

// ApplyOwned is Apply for a delta whose register values are handed over:
// the keyspace keeps those byte slices instead of copying them, so nothing
// may modify them afterwards. A Tx's deltas qualify once the Tx is done
// with them (it never writes into a value), and so do freshly decoded
// ones that share no buffer.
func (k *Keyspace) ApplyOwned(d *Delta) []Change { return k.apply(d, true) }

func (k *Keyspace) apply(d *Delta, own bool) []Change {
	if d != nil && !d.Full && len(d.Keys) <= smallDelta {
		return k.applySmall(d, own)
	}
	dctx, err := d.check(nil)
	if err != nil {
		return nil
	}
	j := joiner{actx: &k.ctx, bctx: dctx, hash: true, own: own}
	var changes []Change
	for key, be := range d.Keys {
		if c, ok := k.joinKey(&j, key, be, d.Full); ok {
			changes = append(changes, c)
		}
	}
	if d.Full {
		for key := range k.keys {
			if _, listed := d.Keys[key]; !listed {
				if c, ok := k.joinKey(&j, key, nil, true); ok {
					changes = append(changes, c)
				}
			}
		}
	}
	k.ctx.Merge(dctx)
	k.markApplied(d.Own)
	sortChanges(changes)
	return changes
}

// smallDelta is the most keys applySmall handles: a Tx operation's delta
// has one.
const smallDelta = 4

// applySmall is Apply for a delta of a few keys, not Full: it validates
// exactly as check does, but ranges over d.Keys once, remembering the
// entries for the join (ranging over a map costs more than the check).
func (k *Keyspace) applySmall(d *Delta, own bool) []Change {
	var buf [smallDelta]struct {
		key string
		e   *Entry
	}
	n := 0
	dctx := canonical(&d.Ctx)
	for key, e := range d.Keys {
		if key == "" || checkEntry(e, dctx, 0) != nil {
			return nil
		}
		buf[n].key, buf[n].e = key, e
		n++
	}
	if d.checkOwn(dctx) != nil {
		return nil
	}
	j := joiner{actx: &k.ctx, bctx: dctx, hash: true, own: own}
	var changes []Change
	for i := range buf[:n] {
		if c, ok := k.joinKey(&j, buf[i].key, buf[i].e, false); ok {
			changes = append(changes, c)
		}
	}
	k.ctx.Merge(dctx)
	k.markApplied(d.Own)
	sortChanges(changes)
	return changes
}

// maxGapRange bounds the range markApplied spells out dot by dot beyond a
// gap in the applied vector. A batch of operations is far smaller; a
// larger claim (possible only from hostile input) is skipped.
const maxGapRange = 1 << 16

// markApplied adds validated Own ranges (held by the context) to the
// applied set. Leaving a range out is safe (the operations may be sent
// and joined again, which changes nothing); claiming too much never is.
func (k *Keyspace) markApplied(own []DotRange) {
	for _, r := range own {
		if r.First > k.applied.VV[r.Replica]+1 && r.Last-r.First >= maxGapRange {
			continue
		}
		k.applied.addRange(r.Replica, r.First, r.Last)
	}
}

// joinKey joins b into the entry of key and keeps the digest and the
// index up to date.
func (k *Keyspace) joinKey(j *joiner, key string, b *Entry, full bool) (Change, bool) {
	e := k.keys[key]
	had := e != nil
	var ew *entryWithReg
	switch {
	case had:
	case b != nil && len(b.Reg) > 0: // a register, most likely: room for its sibling
		ew = &entryWithReg{}
		e = &ew.Entry
	default:
		e = &Entry{}
	}
	var old sum128
	if had {
		old = e.kh
	}
	if !j.entry(e, b, full) {
		return Change{}, false
	}
	if had {
		k.sum = k.sum.sub(old)
	}
	if e.empty() {
		if had {
			delete(k.keys, key)
			k.index.remove(key)
			k.unqueue(e)
			k.rehashed(key, old, sum128{})
		}
		return Change{Key: key, Deleted: true}, had
	}
	if !had {
		if ew != nil && len(e.Reg) == 1 { // next to the entry: a read takes one cache miss less
			ew.reg[0] = e.Reg[0]
			e.Reg = ew.reg[:1:1]
		}
		k.keys[key] = e
		k.index.add(key, e)
	}
	h := keyHash(key, e)
	e.kh = h
	k.sum = k.sum.add(h)
	k.rehashed(key, old, h)
	k.requeue(key, e)
	return Change{Key: key, Deleted: e.visibleType() == 0}, true
}

// entryWithReg is a keyspace entry allocated with room for one register
// sibling, the usual value of a key: a read finds the sibling in the same
// or the next cache line instead of in an allocation of its own (or of the
// write's step, which it kept alive). The keyspace never writes into a
// store it holds, so a later write replaces e.Reg rather than reg.
type entryWithReg struct {
	Entry
	reg [1]RegValue
}

func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int { return strings.Compare(a.Key, b.Key) })
}

// Covers reports whether the operations of d (its Own dots) have all been
// applied, in which case applying d would change nothing: a duplicate. A
// delta with no Own dots (a key state) is never covered.
func (k *Keyspace) Covers(d *Delta) bool {
	if d == nil || len(d.Own) == 0 {
		return d == nil
	}
	for _, r := range d.Own {
		if r.First == 0 || !k.applied.containsRange(r.Replica, r.First, r.Last) {
			return false
		}
	}
	return true
}

// Snapshot returns a deep copy of the whole state, marked Full, with the
// applied set as its Own dots. It shares no memory with the keyspace.
func (k *Keyspace) Snapshot() *Delta {
	d := &Delta{Ctx: *k.ctx.Clone(), Own: k.applied.ranges(), Full: true}
	if len(k.keys) > 0 {
		d.Keys = make(map[string]*Entry, len(k.keys))
		for key, e := range k.keys {
			d.Keys[key] = e.clone()
		}
	}
	return d
}

// KeyState returns the state of the given keys (absent keys are skipped)
// with a context holding exactly the dots they hold: a delta that brings a
// peer the current values of those keys. It carries no removals; catch-up
// after the peer missed removals uses JoinRange with the whole context.
func (k *Keyspace) KeyState(keys ...string) *Delta {
	d := &Delta{}
	var dots []Dot
	for _, key := range keys {
		e := k.keys[key]
		if e == nil {
			continue
		}
		if d.Keys == nil {
			d.Keys = make(map[string]*Entry, len(keys))
		}
		d.Keys[key] = e.clone()
		dots = e.appendDots(dots)
	}
	d.Ctx.Cloud = dots
	d.Ctx.compact()
	return d
}

// FromSnapshot builds a keyspace from a state (a Snapshot, or any delta).
// It validates the input and never panics on bad input: errors wrap
// ErrInvalid. The keyspace shares no memory with d.
func FromSnapshot(d *Delta) (*Keyspace, error) {
	ctx, err := d.check(nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	k := NewKeyspace()
	k.ctx = *ctx.Clone()
	k.markApplied(d.Own)
	k.keys = make(map[string]*Entry, len(d.Keys))
	keys := make([]indexed, 0, len(d.Keys))
	for key, e := range d.Keys {
		if n := e.normalize(0); n != nil {
			k.keys[key] = n
			keys = append(keys, indexed{key, n})
			n.kh = keyHash(key, n)
			k.sum = k.sum.add(n.kh)
			k.requeue(key, n)
		}
	}
	k.index.build(keys)
	return k, nil
}

// JoinRange is the streaming full-state join for catch-up when the deltas a
// peer missed are gone from the WAL. The sender sends its keys in
// [lo, hi) (hi == "" means no upper bound) in part, plus its whole
// context. Every local key in the range is joined with the sender's entry
// (or with nothing, when the sender has none: then the local values the
// sender has seen are removed), so removals in the range are caught up too.
// The dots the joined entries hold are added to the local context right
// away; after the last range the caller must call MergeContext(senderCtx).
// It returns the changed keys, sorted. Invalid input is ignored (nil).
func (k *Keyspace) JoinRange(lo, hi string, part *Delta, senderCtx *Context) []Change {
	if part == nil || senderCtx == nil {
		return nil
	}
	sctx := canonical(senderCtx)
	if _, err := part.check(sctx); err != nil {
		return nil
	}
	j := joiner{actx: &k.ctx, bctx: sctx, hash: true}
	var changes []Change
	var dots []Dot
	for key, be := range part.Keys {
		dots = be.appendDots(dots)
		if c, ok := k.joinKey(&j, key, be, true); ok {
			changes = append(changes, c)
		}
	}
	var local []string
	k.flushIndex()
	k.index.ascend(lo, func(key string) bool {
		if hi != "" && key >= hi {
			return false
		}
		if _, ok := part.Keys[key]; !ok {
			local = append(local, key)
		}
		return true
	})
	for _, key := range local {
		if c, ok := k.joinKey(&j, key, nil, true); ok {
			changes = append(changes, c)
		}
	}
	if len(dots) > 0 {
		k.ctx.Merge(&Context{Cloud: sortDots(dots)})
	}
	sortChanges(changes)
	return changes
}

// MergeContext adds every dot of c to the context: the last step of a
// JoinRange catch-up, with the sender's Context. Merging a context whose
// values were not joined first would make those values look removed.
func (k *Keyspace) MergeContext(c *Context) {
	if c != nil {
		k.ctx.Merge(canonical(c))
	}
}

// MergeApplied adds the sender's applied set to this keyspace's, after a
// complete state transfer (every range joined, then MergeContext): the
// state now includes the effects of those operations. Dots that are not in
// the context are ignored.
func (k *Keyspace) MergeApplied(a *Context) {
	if a != nil {
		k.applied.Merge(k.ctx.intersect(canonical(a)))
	}
}

// recomputeSum computes the sum of the key hashes from scratch, ignoring
// the hashes kept in the entries: the reference for the incremental
// digest, and the cost it saves.
func (k *Keyspace) recomputeSum() sum128 {
	var s sum128
	for key, e := range k.keys {
		s = s.add(hashChild(tagKey, key, e.itemSum()))
	}
	return s
}

// itemSum hashes a normalized entry from scratch.
func (e *Entry) itemSum() sum128 {
	s := sumItems(e.Reg, hashReg).add(sumItems(e.Cnt, hashCnt)).add(sumItems(e.Flag, hashFlag)).add(sumItems(e.Exp, hashExp))
	for m, ds := range e.Set {
		s = s.add(hashMember(m, ds))
	}
	for f, c := range e.Map {
		s = s.add(hashChild(tagField, f, c.itemSum()))
	}
	return s
}
