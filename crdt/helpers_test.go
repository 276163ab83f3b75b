package crdt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"pgregory.net/rapid"
)

// tb is what helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// rnd is the source of random choices of the operation generator, so the
// same generator runs under rapid (shrinking) and under a seeded PRNG.
type rnd interface {
	intn(n int, label string) int
}

type rapidRnd struct{ t *rapid.T }

func (r rapidRnd) intn(n int, label string) int { return rapid.IntRange(0, n-1).Draw(r.t, label) }

type mathRnd struct{ r *rand.Rand }

func (r mathRnd) intn(n int, _ string) int { return r.r.IntN(n) }

// mode restricts the generated operations to one type (plus key deletes).
// modeMixed picks any type for each operation; modeConflict too, but each
// replica prefers a type of its own, for keys and for map fields, and sets
// have fewer members: concurrent first writes of different types (type
// conflicts), operations after them and removals that empty the visible
// value are common.
type mode int

const (
	modeRegister mode = iota
	modeCounter
	modeSet
	modeFlag
	modeMap
	modeMixed
	modeConflict
)

var modes = []struct {
	name string
	m    mode
}{
	{"register", modeRegister}, {"counter", modeCounter}, {"set", modeSet},
	{"flag", modeFlag}, {"map", modeMap}, {"keyspace", modeMixed}, {"conflict", modeConflict},
}

// Favourite types of the replicas in modeConflict, by replica index: the
// key operation (a mode) and the map field part (a randomPatch op).
var (
	favouriteKind = []mode{modeSet, modeCounter, modeMap, modeRegister}
	favouritePart = []int{3, 2, 7, 0, 5}
)

// index returns the replica's position in newReplicas.
func (rp *replica) index() int { return int(rp.id/0x100) - 1 }

// replica is a test replica: a keyspace, its identity, its last seq, and a
// clock that the test moves.
type replica struct {
	id   ReplicaID
	ks   *Keyspace
	seq  uint64
	last Timestamp
	now  int64
}

func newReplicas(n int) []*replica {
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = &replica{id: ReplicaID(0x100 * (i + 1)), ks: NewKeyspace(), now: 1000}
	}
	return rs
}

var (
	testKeys    = []string{"a", "b", "c"}
	testMembers = []string{"m", "n", "o", "p"}
	testFields  = []string{"f", "g", "h"}
)

func pick[T any](r rnd, xs []T, label string) T { return xs[r.intn(len(xs), label)] }

func (rp *replica) ts(r rnd) Timestamp {
	// Few distinct clock steps, so equal physical times happen often.
	rp.now += int64(r.intn(3, "tick"))
	rp.last = NextTimestamp(rp.last, rp.now)
	return rp.last
}

// clock returns the replica's current HLC time (a read: it does not
// advance the logical part).
func (rp *replica) clock() Timestamp { return max(rp.last, MakeTimestamp(rp.now, 0)) }

// begin starts a transaction of the replica at its current time.
func (rp *replica) begin() *Tx {
	tx := rp.ks.Begin(rp.id, rp.seq)
	tx.SetTime(rp.clock())
	return tx
}

// testDrift is the MaxClockDrift of the tests (milliseconds): replica
// clocks differ by at most this much where a test bounds skew, and Sweep
// reclaims a key this long after it expires.
const testDrift = 8

// expiryAt draws an expiry a few milliseconds ahead of the replica's
// clock: the random histories advance clocks by 0-2 ms a step, so keys
// expire during them.
func (rp *replica) expiryAt(r rnd) Timestamp {
	return MakeTimestamp(rp.now+1+int64(r.intn(15, "ttl")), 0)
}

// sweep runs a Sweep step on the replica at its clock, reclaiming what
// expired testDrift ago.
func (rp *replica) sweep(limit int) (expired, reclaimed []string) {
	now := rp.clock()
	return rp.ks.Sweep(now, MakeTimestamp(now.Physical()-testDrift, 0), limit)
}

func randomPatch(r rnd, rp *replica, m mode, depth int) *Patch {
	p := &Patch{}
	n := 1 + r.intn(3, "patch parts")
	for i := 0; i < n; i++ {
		f := pick(r, testFields, "field")
		k := r.intn(8, "patch op")
		if m == modeFlag {
			k = 5 + r.intn(3, "flag op")%2
		}
		if m == modeConflict && r.intn(2, "favourite part?") == 0 {
			k = favouritePart[rp.index()%len(favouritePart)]
		}
		switch k {
		case 0:
			if p.Set == nil {
				p.Set = map[string][]byte{}
			}
			p.Set[f] = []byte(fmt.Sprintf(`"%s%d"`, f, r.intn(5, "value")))
		case 1:
			p.Delete = append(p.Delete, f)
		case 2:
			if p.Incr == nil {
				p.Incr = map[string]int64{}
			}
			p.Incr[f] = int64(r.intn(7, "by") - 3)
		case 3:
			if p.Add == nil {
				p.Add = map[string][]string{}
			}
			p.Add[f] = append(p.Add[f], pick(r, members(m), "member"))
		case 4:
			if p.Remove == nil {
				p.Remove = map[string][]string{}
			}
			p.Remove[f] = append(p.Remove[f], pick(r, members(m), "member"))
		case 5:
			p.Enable = append(p.Enable, f)
		case 6:
			p.Disable = append(p.Disable, f)
		case 7:
			if depth < 2 {
				if p.Nested == nil {
					p.Nested = map[string]*Patch{}
				}
				p.Nested[f] = randomPatch(r, rp, m, depth+1)
			}
		}
	}
	return p
}

// randomOp runs one random operation of mode m in tx. It returns nil when
// the operation was refused (wrong type, absent key): that is part of the
// game, the state stays valid.
func randomOp(r rnd, rp *replica, tx *Tx, m mode) (*Delta, error) {
	key := pick(r, testKeys, "key")
	kind := m
	switch {
	case m == modeConflict && r.intn(2, "favourite?") == 0:
		kind = favouriteKind[rp.index()%len(favouriteKind)]
	case m == modeMixed || m == modeConflict:
		kind = mode(r.intn(int(modeMixed), "kind"))
	}
	if r.intn(8, "delete?") == 0 {
		return tx.Delete(key)
	}
	switch r.intn(10, "expiry?") {
	case 0:
		return tx.Expire(key, rp.expiryAt(r))
	case 1:
		if r.intn(3, "persist?") == 0 {
			return tx.Persist(key)
		}
	}
	switch kind {
	case modeRegister:
		return tx.Put(key, []byte(fmt.Sprintf("v%d", r.intn(6, "value"))), rp.ts(r))
	case modeCounter:
		return tx.Incr(key, int64(r.intn(11, "by")-5))
	case modeSet:
		ms := []string{pick(r, members(m), "member")}
		if r.intn(3, "two?") == 0 {
			ms = append(ms, pick(r, members(m), "member"))
		}
		if r.intn(3, "remove?") == 0 || (m == modeConflict && r.intn(2, "remove more?") == 0) {
			return tx.SetRemove(key, ms...)
		}
		return tx.SetAdd(key, ms...)
	default:
		pm := kind
		if m == modeConflict {
			pm = m
		}
		return tx.Update(key, randomPatch(r, rp, pm, 0), rp.ts(r))
	}
}

// members returns the set members mode m draws from: two in modeConflict,
// so that removes empty sets often.
func members(m mode) []string {
	if m == modeConflict {
		return testMembers[:2]
	}
	return testMembers
}

// step runs a random transaction of one to three operations on rp,
// applies it locally and returns its delta (nil when nothing happened).
func step(t tb, r rnd, rp *replica, m mode) *Delta {
	tx := rp.begin()
	n := 1
	if r.intn(4, "batch?") == 0 {
		n = 2 + r.intn(2, "batch size")
	}
	var ds []*Delta
	for i := 0; i < n; i++ {
		d, err := randomOp(r, rp, tx, m)
		if err != nil {
			if !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("unexpected error: %v", err)
			}
			continue
		}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return nil
	}
	d := JoinDeltas(ds...)
	if err := d.Validate(); err != nil {
		t.Fatalf("Tx made an invalid delta: %v\n%s", err, dump(d))
	}
	rp.seq = tx.LastSeq()
	rp.ks.Apply(d)
	return d
}

// genStates runs random operations on n replicas with random partial
// delivery, and returns their keyspaces.
func genStates(t *rapid.T, m mode, n int) ([]*replica, []*Delta) {
	steps := rapid.IntRange(0, 25).Draw(t, "steps")
	return history(t, rapidRnd{t}, m, n, steps, nil)
}

// history runs steps random transactions of mode m on n replicas, each
// followed by the delivery of a random earlier delta to a random replica
// half of the time. watch, when not nil, sees every transaction: the
// replica's state before it and its delta (the replica has applied it).
func history(t tb, r rnd, m mode, n, steps int, watch func(rp *replica, before *Delta, d *Delta)) ([]*replica, []*Delta) {
	rs := newReplicas(n)
	var log []*Delta
	for i := 0; i < steps; i++ {
		rp := pick(r, rs, "replica")
		var before *Delta
		if watch != nil {
			before = rp.ks.Snapshot()
		}
		if d := step(t, r, rp, m); d != nil {
			log = append(log, d)
			if watch != nil {
				watch(rp, before, d)
			}
		}
		if len(log) > 0 && r.intn(2, "deliver?") == 0 {
			to := pick(r, rs, "to")
			to.ks.Apply(pick(r, log, "which"))
		}
		if r.intn(6, "sweep?") == 0 {
			pick(r, rs, "sweeper").sweep(1 + r.intn(3, "sweep limit"))
		}
	}
	return rs, log
}

// dump renders a delta deterministically, markers included.
func dump(d *Delta) string {
	var b strings.Builder
	c := canonical(&d.Ctx)
	fmt.Fprintf(&b, "ctx vv=%v cloud=%v own=%v full=%v\n", c.VV.Sorted(), c.Cloud, d.Dots(), d.Full)
	for _, k := range sortedKeys(d.Keys) {
		fmt.Fprintf(&b, "key %q:\n", k)
		dumpEntry(&b, d.Keys[k], "  ")
	}
	return b.String()
}

func dumpEntry(b *strings.Builder, e *Entry, ind string) {
	if e.All {
		fmt.Fprintf(b, "%sALL\n", ind)
	}
	for _, x := range normSmall(e.Exp, expDot, nil) {
		fmt.Fprintf(b, "%sexpiry %v at=%d\n", ind, x.Dot, x.At)
	}
	for _, r := range normSmall(e.Reg, regDot, nil) {
		fmt.Fprintf(b, "%sreg %v t=%d %q\n", ind, r.Dot, r.Time, r.Value)
	}
	for _, c := range normSmall(e.Cnt, cntDot, nil) {
		fmt.Fprintf(b, "%scnt %v n=%d\n", ind, c.Dot, c.N)
	}
	if len(e.Flag) > 0 {
		fmt.Fprintf(b, "%sflag %v\n", ind, normSmall(e.Flag, idDot, nil))
	}
	for _, m := range sortedKeys(e.Set) {
		fmt.Fprintf(b, "%smember %q %v\n", ind, m, sortDots(slices.Clone(e.Set[m])))
	}
	for _, f := range sortedKeys(e.Map) {
		fmt.Fprintf(b, "%sfield %q:\n", ind, f)
		dumpEntry(b, e.Map[f], ind+"  ")
	}
}

// sameState fails unless the keyspaces hold equal states by every measure:
// Equal, digest, and the views of every key.
func sameState(t tb, what string, a, b *Keyspace) {
	t.Helper()
	sa, sb := a.Snapshot(), b.Snapshot()
	if !sa.Equal(sb) {
		t.Fatalf("%s: states differ\n--- a\n%s--- b\n%s", what, dump(sa), dump(sb))
	}
	if a.Digest() != b.Digest() {
		t.Fatalf("%s: equal states, different digests\n%s", what, dump(sa))
	}
	for _, k := range []*Keyspace{a, b} {
		if k.sum != k.recomputeSum() {
			t.Fatalf("%s: incremental digest differs from a recomputed one\n%s", what, dump(k.Snapshot()))
		}
		if len(k.Keys("", 0, 0)) != k.Len() {
			t.Fatalf("%s: index lists %d keys, map holds %d", what, len(k.Keys("", 0, 0)), k.Len())
		}
		for _, blk := range k.index.blocks {
			for _, it := range blk {
				if k.keys[it.key] != it.e {
					t.Fatalf("%s: the index holds another entry for %q than the keyspace", what, it.key)
				}
			}
		}
		for key, e := range k.keys {
			if e.kh != hashChild(tagKey, key, e.itemSum()) {
				t.Fatalf("%s: the key hash kept for %q is not its entry's", what, key)
			}
		}
	}
	if fmt.Sprint(views(a, 0)) != fmt.Sprint(views(b, 0)) {
		t.Fatalf("%s: views differ: %v vs %v", what, views(a, 0), views(b, 0))
	}
	// Equal states show the same keys at any time.
	for _, now := range []Timestamp{MakeTimestamp(1000, 0), MakeTimestamp(1030, 0), MakeTimestamp(1200, 0), MakeTimestamp(5000, 0)} {
		if fmt.Sprint(views(a, now)) != fmt.Sprint(views(b, now)) {
			t.Fatalf("%s: views at %d differ: %v vs %v", what, now.Physical(), views(a, now), views(b, now))
		}
	}
}

// views renders every key's value as Get sees it at now (0: ignoring
// expiries), with its expiry.
func views(k *Keyspace, now Timestamp) []string {
	var out []string
	for _, ki := range k.Keys("", 0, now) {
		v, ok := k.Get(ki.Key, now)
		if !ok {
			out = append(out, fmt.Sprintf("%s=(no value)", ki.Key))
			continue
		}
		out = append(out, fmt.Sprintf("%s=%s@%d", ki.Key, viewString(v), v.Expires))
	}
	return out
}

func viewString(v View) string {
	switch v.Type {
	case TypeRegister:
		return string(v.Register)
	case TypeCounter:
		return fmt.Sprint(v.Counter)
	case TypeSet:
		return fmt.Sprint(v.Set)
	case TypeFlag:
		return fmt.Sprint(v.Flag)
	case TypeMap:
		var parts []string
		for _, f := range sortedKeys(v.Map) {
			parts = append(parts, f+":"+viewString(v.Map[f]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return "?"
}

// fromState builds a keyspace from a state, failing the test on error.
func fromState(t tb, d *Delta) *Keyspace {
	t.Helper()
	k, err := FromSnapshot(d)
	if err != nil {
		t.Fatalf("FromSnapshot: %v\n%s", err, dump(d))
	}
	return k
}
