package crdt

import (
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"
)

// The join laws, per type, on reachable states (random operations on three
// replicas with random partial delivery) and on the deltas that made them.
// States compare with Equal and by digest; deltas also structurally, with
// the paths they list, because Apply relies on those.

func forModes(t *testing.T, prop func(t *rapid.T, m mode)) {
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) { prop(rt, md.m) })
		})
	}
}

func pickDelta(t *rapid.T, log []*Delta, label string) *Delta {
	if len(log) == 0 {
		return &Delta{}
	}
	return log[rapid.IntRange(0, len(log)-1).Draw(t, label)]
}

func sameDelta(t *rapid.T, what string, a, b *Delta) {
	t.Helper()
	if da, db := dump(a), dump(b); da != db {
		t.Fatalf("%s: deltas differ\n--- a\n%s--- b\n%s", what, da, db)
	}
}

func TestJoinIdempotent(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, log := genStates(t, m, 3)
		a := rs[0].ks.Snapshot()
		sameState(t, "a ⊔ a", fromState(t, Join(a, a)), rs[0].ks)
		if ch := rs[0].ks.Apply(a); ch != nil {
			t.Fatalf("applying a state to itself changed %v", ch)
		}
		for _, d := range log {
			before := rs[1].ks.Digest()
			rs[1].ks.Apply(d)
			after := rs[1].ks.Digest()
			if ch := rs[1].ks.Apply(d); ch != nil || rs[1].ks.Digest() != after {
				t.Fatalf("second Apply changed %v (digest %x -> %x)", ch, before, after)
			}
			if !rs[1].ks.Covers(d) {
				t.Fatalf("applied delta not covered\n%s", dump(d))
			}
			sameDelta(t, "d ⊔ d", Join(d, d), d)
		}
	})
}

func TestJoinCommutative(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, log := genStates(t, m, 3)
		a, b := rs[0].ks.Snapshot(), rs[1].ks.Snapshot()
		if a.Equal(b) != (rs[0].ks.Digest() == rs[1].ks.Digest()) {
			t.Fatalf("digests equal = %v for states equal = %v", !a.Equal(b), a.Equal(b))
		}
		ab, ba := Join(a, b), Join(b, a)
		if !ab.Equal(ba) {
			t.Fatalf("a ⊔ b != b ⊔ a\n--- a⊔b\n%s--- b⊔a\n%s", dump(ab), dump(ba))
		}
		sameState(t, "a ⊔ b vs b ⊔ a", fromState(t, ab), fromState(t, ba))
		// The same through Apply on the keyspaces.
		rs[0].ks.Apply(b)
		rs[1].ks.Apply(a)
		sameState(t, "Apply", rs[0].ks, rs[1].ks)
		sameState(t, "Apply vs Join", rs[0].ks, fromState(t, ab))
		x, y := pickDelta(t, log, "x"), pickDelta(t, log, "y")
		sameDelta(t, "x ⊔ y vs y ⊔ x", Join(x, y), Join(y, x))
	})
}

func TestJoinAssociative(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, log := genStates(t, m, 3)
		a, b, c := rs[0].ks.Snapshot(), rs[1].ks.Snapshot(), rs[2].ks.Snapshot()
		l, r := Join(Join(a, b), c), Join(a, Join(b, c))
		if !l.Equal(r) {
			t.Fatalf("(a ⊔ b) ⊔ c != a ⊔ (b ⊔ c)\n--- left\n%s--- right\n%s", dump(l), dump(r))
		}
		sameState(t, "associativity", fromState(t, l), fromState(t, r))
		x, y, z := pickDelta(t, log, "x"), pickDelta(t, log, "y"), pickDelta(t, log, "z")
		sameDelta(t, "(x ⊔ y) ⊔ z vs x ⊔ (y ⊔ z)", Join(Join(x, y), z), Join(x, Join(y, z)))
	})
}

// TestDeltaStateEquivalence: applying a mutation's delta visits only the
// paths it lists, and gives the same state as the full lattice join, on the
// replica that made it and on every other replica, whatever it has seen.
// Joins of deltas (batches) behave the same.
func TestDeltaStateEquivalence(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, _ := genStates(t, m, 3)
		origin := rs[0]
		old := origin.ks.Snapshot()
		var ds []*Delta
		for i := 0; i < 3; i++ {
			if d := step(t, rapidRnd{t}, origin, m); d != nil { // applies d to origin
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			return
		}
		before := make([]*Delta, len(ds))
		for i, d := range ds {
			before[i] = d.clone()
		}
		batch := JoinDeltas(ds...)
		full := ds[0]
		for _, d := range ds[1:] {
			full = Join(full, d)
		}
		sameDelta(t, "JoinDeltas vs Join", batch, full)
		owned := JoinDeltasOwned(ds...)
		sameDelta(t, "JoinDeltasOwned vs JoinDeltas", owned, batch)
		defer func() {
			for i := range ds {
				sameDelta(t, "a joined delta after the joins", ds[i], before[i])
			}
		}()
		sameState(t, "origin: Apply vs Join", origin.ks, fromState(t, Join(old, batch)))
		for _, rp := range rs[1:] {
			want := fromState(t, Join(rp.ks.Snapshot(), batch))
			other := fromState(t, rp.ks.Snapshot())
			for _, d := range ds {
				other.Apply(d)
			}
			sameState(t, "replica: Apply one by one vs Join", other, want)
			rp.ks.Apply(batch)
			sameState(t, "replica: Apply batch vs Join", rp.ks, want)
			ownedTo := fromState(t, old)
			ownedTo.ApplyOwned(owned)
			sameState(t, "ApplyOwned(JoinDeltasOwned) vs Join", ownedTo, fromState(t, Join(old, batch)))
		}
		// A key state (catch-up of some keys) is a delta too.
		ks := rs[1].ks.KeyState(testKeys...)
		if err := ks.Validate(); err != nil {
			t.Fatalf("KeyState invalid: %v", err)
		}
		want := fromState(t, Join(rs[2].ks.Snapshot(), ks))
		rs[2].ks.Apply(ks)
		sameState(t, "KeyState: Apply vs Join", rs[2].ks, want)
	})
}

// TestTxBatchMatchesSequential: operations built in one Tx (each seeing the
// earlier ones through the overlay) produce exactly the deltas that the
// same operations produce one Tx at a time, applied in between.
func TestTxBatchMatchesSequential(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, _ := genStates(t, m, 2)
		seed := rapid.Uint64().Draw(t, "seed")
		n := rapid.IntRange(1, 8).Draw(t, "ops")
		snap := rs[0].ks.Snapshot()
		run := func(batch bool) (*Keyspace, []*Delta, []error) {
			rp := *rs[0]
			rp.ks = fromState(t, snap)
			r := mathRnd{rand.New(rand.NewPCG(seed, 1))}
			var ds []*Delta
			var errs []error
			tx := rp.begin()
			for i := 0; i < n; i++ {
				if !batch {
					tx = rp.ks.Begin(rp.id, rp.seq)
				}
				tx.SetTime(rp.clock()) // each operation at the time it runs, in both
				d, err := randomOp(r, &rp, tx, m)
				errs = append(errs, err)
				if err != nil {
					continue
				}
				ds = append(ds, d)
				rp.seq = tx.LastSeq()
				if !batch {
					rp.ks.Apply(d)
				}
			}
			if batch {
				rp.ks.Apply(JoinDeltas(ds...))
			}
			return rp.ks, ds, errs
		}
		ks1, ds1, e1 := run(true)
		ks2, ds2, e2 := run(false)
		for i := range e1 {
			if (e1[i] == nil) != (e2[i] == nil) {
				t.Fatalf("op %d: batch error %v, sequential error %v", i, e1[i], e2[i])
			}
		}
		for i := range ds1 {
			sameDelta(t, "op delta", ds1[i], ds2[i])
		}
		sameState(t, "batch vs sequential", ks1, ks2)
	})
}

// TestTxRollback: rolling back to a checkpoint gives the seqs back and
// forgets the undone operations, so the next operations produce the same
// deltas as if the undone ones never happened.
func TestTxRollback(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, _ := genStates(t, m, 2)
		seed := rapid.Uint64().Draw(t, "seed")
		rp, rq := rs[0], *rs[0] // two clocks that move alike
		r := rapidRnd{t}
		tx := rp.begin()
		ref := rp.ks.Begin(rp.id, rp.seq)
		ref.SetTime(rp.clock())
		for i := 0; i < 2; i++ {
			r2 := mathRnd{rand.New(rand.NewPCG(seed, uint64(i)))}
			r3 := mathRnd{rand.New(rand.NewPCG(seed, uint64(i)))}
			d1, err1 := randomOp(r2, rp, tx, m)
			d2, err2 := randomOp(r3, &rq, ref, m)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("errors differ: %v vs %v", err1, err2)
			}
			if err1 == nil {
				sameDelta(t, "kept op", d1, d2)
			}
		}
		cp := tx.Checkpoint()
		seq := tx.LastSeq()
		undone := *rp
		for i := 0; i < 3; i++ {
			_, _ = randomOp(r, &undone, tx, m)
		}
		tx.Rollback(cp)
		if tx.LastSeq() != seq {
			t.Fatalf("rollback: last seq %d, want %d", tx.LastSeq(), seq)
		}
		r2 := mathRnd{rand.New(rand.NewPCG(seed, 9))}
		r3 := mathRnd{rand.New(rand.NewPCG(seed, 9))}
		d1, err1 := randomOp(r2, rp, tx, m)
		d2, err2 := randomOp(r3, &rq, ref, m)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("after rollback errors differ: %v vs %v", err1, err2)
		}
		if err1 == nil {
			sameDelta(t, "op after rollback", d1, d2)
		}
	})
}
