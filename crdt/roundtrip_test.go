package crdt

import (
	"bytes"
	"testing"

	"math/rand/v2"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// crdt imports no encoder; node encodes deltas with msgpack. These tests
// (test files only: the package itself stays standard library only) prove
// that a msgpack round trip gives back an equal state, for snapshots and
// for deltas, including the paths a removal lists.

// encoders: plain msgpack.Marshal, and the settings node uses.
var encoders = map[string]func(any) ([]byte, error){
	"default": msgpack.Marshal,
	"compact-sorted": func(v any) ([]byte, error) {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		enc.SetSortMapKeys(true)
		err := enc.Encode(v)
		return buf.Bytes(), err
	},
}

func roundTrip(t tb, enc func(any) ([]byte, error), d *Delta) *Delta {
	t.Helper()
	b, err := enc(d)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var out Delta
	if err := msgpack.Unmarshal(b, &out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &out
}

func TestMsgpackRoundTrip(t *testing.T) {
	for name, enc := range encoders {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				rs, log := genStates(t, modeMixed, 3)
				// Snapshots: equal state, equal digest, and a keyspace
				// built from the decoded bytes behaves the same.
				snap := rs[0].ks.Snapshot()
				back := roundTrip(t, enc, snap)
				if !back.Equal(snap) {
					t.Fatalf("snapshot changed in a round trip\n--- before\n%s--- after\n%s", dump(snap), dump(back))
				}
				k := fromState(t, back)
				sameState(t, "snapshot round trip", rs[0].ks, k)
				if !k.Applied().Equal(rs[0].ks.Applied()) {
					t.Fatal("applied set lost in a round trip")
				}
				// Deltas: identical structure (markers included), and
				// applying the decoded delta equals applying the original.
				for _, d := range log {
					back := roundTrip(t, enc, d)
					if dump(back) != dump(d) {
						t.Fatalf("delta changed in a round trip\n--- before\n%s--- after\n%s", dump(d), dump(back))
					}
					if err := back.Validate(); err != nil {
						t.Fatalf("decoded delta invalid: %v", err)
					}
					if !slicesEqualRanges(back.Dots(), d.Dots()) {
						t.Fatal("Dots changed")
					}
					x, y := fromState(t, rs[1].ks.Snapshot()), fromState(t, rs[1].ks.Snapshot())
					x.Apply(d)
					y.Apply(back)
					sameState(t, "apply decoded delta", x, y)
				}
			})
		})
	}
}

func slicesEqualRanges(a, b []DotRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzDecodeDelta: arbitrary bytes decoded into a Delta never make the
// package panic or hang, whatever it is asked to do with them.
func FuzzDecodeDelta(f *testing.F) {
	rs := newReplicas(2)
	src := mathRnd{rand.New(rand.NewPCG(7, 7))}
	for i := 0; i < 40; i++ {
		rp := rs[i%2]
		if d := step(f, src, rp, modeMixed); d != nil {
			b, _ := msgpack.Marshal(d)
			f.Add(b)
			rs[(i+1)%2].ks.Apply(d)
		}
	}
	snap, _ := msgpack.Marshal(rs[0].ks.Snapshot())
	f.Add(snap)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		if !msgpackFits(data, 8*maxDepth) {
			return // see msgpackFits: the library would allocate what the header claims
		}
		var d Delta
		if err := msgpack.Unmarshal(data, &d); err != nil {
			return
		}
		valid := d.Validate() == nil
		k, err := FromSnapshot(&d)
		if (err == nil) != valid {
			t.Fatalf("FromSnapshot error %v, Validate says valid=%v", err, valid)
		}
		if err == nil {
			// A state accepted once is accepted again and keeps its digest.
			k2, err := FromSnapshot(k.Snapshot())
			if err != nil || k2.Digest() != k.Digest() {
				t.Fatalf("snapshot of an accepted state: %v", err)
			}
			_ = k.Keys("", 0, 0)
			for key := range d.Keys {
				k.Get(key, 0)
				_, _ = k.Siblings(key, 0)
			}
		}
		// Against a keyspace with some state.
		ks := fromState(t, rs[1].ks.Snapshot())
		ks.Covers(&d)
		ch := ks.Apply(&d)
		if !valid && ch != nil {
			t.Fatalf("invalid delta changed the state: %v", ch)
		}
		ks.JoinRange("", "", &d, &d.Ctx)
		ks.MergeContext(&d.Ctx)
		ks.MergeApplied(&d.Ctx)
		_ = ks.Digest()
		_ = ks.Context().Missing(&d.Ctx)
		if valid {
			j := Join(&d, rs[0].ks.Snapshot())
			_ = JoinDeltas(&d, j)
			_ = d.Equal(j)
			_ = d.Dots()
		}
		tx := ks.Begin(9, 1000)
		for _, key := range ks.Keys("", 3, 0) {
			_, _ = tx.Delete(key.Key)
			_, _ = tx.Update(key.Key, &Patch{Delete: []string{"a"}, Set: map[string][]byte{"b": {1}}}, 1)
			_, _ = tx.SetAdd(key.Key, "x")
			_, _ = tx.Incr(key.Key, 1)
		}
	})
}
