package crdt

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// cluster is a handful of replicas driven by hand.
type cluster struct {
	t  *testing.T
	rs []*replica
}

func newCluster(t *testing.T, n int) *cluster { return &cluster{t: t, rs: newReplicas(n)} }

// do runs op on replica i, applies the delta there and returns it.
func (c *cluster) do(i int, op func(tx *Tx) (*Delta, error)) *Delta {
	c.t.Helper()
	rp := c.rs[i]
	tx := rp.ks.Begin(rp.id, rp.seq)
	d, err := op(tx)
	if err != nil {
		c.t.Fatalf("replica %d: %v", i, err)
	}
	rp.seq = tx.LastSeq()
	rp.ks.Apply(d)
	return d
}

// send applies deltas to replica i.
func (c *cluster) send(i int, ds ...*Delta) {
	for _, d := range ds {
		c.rs[i].ks.Apply(d)
	}
}

// sync delivers every delta to every replica.
func (c *cluster) sync(ds ...*Delta) {
	for i := range c.rs {
		c.send(i, ds...)
	}
	for i := range c.rs[1:] {
		sameState(c.t, "after sync", c.rs[0].ks, c.rs[i+1].ks)
	}
}

func (c *cluster) get(i int, key string) (View, bool) { return c.rs[i].ks.Get(key, 0) }

func put(key, v string, ts Timestamp) func(*Tx) (*Delta, error) {
	return func(tx *Tx) (*Delta, error) { return tx.Put(key, []byte(v), ts) }
}
func incr(key string, by int64) func(*Tx) (*Delta, error) {
	return func(tx *Tx) (*Delta, error) { return tx.Incr(key, by) }
}
func add(key string, ms ...string) func(*Tx) (*Delta, error) {
	return func(tx *Tx) (*Delta, error) { return tx.SetAdd(key, ms...) }
}
func remove(key string, ms ...string) func(*Tx) (*Delta, error) {
	return func(tx *Tx) (*Delta, error) { return tx.SetRemove(key, ms...) }
}
func del(key string) func(*Tx) (*Delta, error) {
	return func(tx *Tx) (*Delta, error) { return tx.Delete(key) }
}
func update(key string, p *Patch) func(*Tx) (*Delta, error) {
	return func(tx *Tx) (*Delta, error) { return tx.Update(key, p, MakeTimestamp(5000, 0)) }
}

func TestAddWins(t *testing.T) {
	tests := []struct {
		name string
		run  func(c *cluster) []*Delta // returns the deltas still to exchange
		want []string
	}{
		{"concurrent add and remove: add wins", func(c *cluster) []*Delta {
			d0 := c.do(0, add("s", "x", "y"))
			c.sync(d0)
			return []*Delta{c.do(0, add("s", "x")), c.do(1, remove("s", "x"))}
		}, []string{"x", "y"}},
		{"remove after seeing the add", func(c *cluster) []*Delta {
			d0 := c.do(0, add("s", "x", "y"))
			c.sync(d0)
			return []*Delta{c.do(1, remove("s", "x"))}
		}, []string{"y"}},
		{"remove only what was seen: a concurrent first add survives", func(c *cluster) []*Delta {
			d0 := c.do(0, add("s", "y"))
			c.sync(d0)
			return []*Delta{c.do(0, add("s", "x")), c.do(1, remove("s", "x", "y"))}
		}, []string{"x"}},
		{"both remove concurrently", func(c *cluster) []*Delta {
			d0 := c.do(0, add("s", "x", "y"))
			c.sync(d0)
			return []*Delta{c.do(0, remove("s", "x")), c.do(1, remove("s", "x"))}
		}, []string{"y"}},
		{"removal arrives before the add it removed", func(c *cluster) []*Delta {
			d0 := c.do(0, add("s", "x", "y"))
			c.send(1, d0)
			d1 := c.do(1, remove("s", "x"))
			c.send(2, d1) // replica 2 sees the removal first
			return []*Delta{d0, d1}
		}, []string{"y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 3)
			ds := tt.run(c)
			slices.Reverse(ds)
			c.sync(ds...)
			v, ok := c.get(2, "s")
			if !ok || !slices.Equal(v.Set, tt.want) {
				t.Fatalf("set = %v (exists %v), want %v", v.Set, ok, tt.want)
			}
			// No tombstones: the state holds exactly the live members.
			if n := len(c.rs[0].ks.keys["s"].Set); n != len(tt.want) {
				t.Fatalf("state holds %d members, want %d", n, len(tt.want))
			}
		})
	}
}

func TestObservedRemoveOfKeys(t *testing.T) {
	tests := []struct {
		name   string
		create func(*Tx) (*Delta, error)
		update func(*Tx) (*Delta, error)
		want   string // view of the key after delete || update
	}{
		{"register", put("k", "old", 100), put("k", "new", 200), "new"},
		{"set", add("k", "a", "b"), add("k", "c"), "[c]"},
		{"set re-add of a deleted member", add("k", "a", "b"), add("k", "a"), "[a]"},
		// The increment replaces the replica's contribution with its
		// cumulative count (3+4), which survives the concurrent delete.
		{"counter", incr("k", 3), incr("k", 4), "7"},
		{"map field", update("k", &Patch{Set: map[string][]byte{"a": []byte("1"), "b": []byte("2")}}),
			update("k", &Patch{Incr: map[string]int64{"n": 1}}), "{n:1}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 2)
			c.sync(c.do(0, tt.create))
			dDel := c.do(1, del("k"))
			if _, ok := c.get(1, "k"); ok {
				t.Fatal("key exists after delete")
			}
			dUpd := c.do(0, tt.update)
			c.sync(dDel, dUpd)
			v, ok := c.get(0, "k")
			if !ok {
				t.Fatal("concurrent update lost to the delete")
			}
			if got := viewString(v); got != tt.want {
				t.Fatalf("after delete || update: %s, want %s", got, tt.want)
			}
			// A delete that has seen everything removes the key everywhere.
			c.sync(c.do(1, del("k")))
			if _, ok := c.get(0, "k"); ok || c.rs[0].ks.Len() != 0 {
				t.Fatal("key survived a delete that saw it all")
			}
		})
	}
}

func TestDeleteAbsentKey(t *testing.T) {
	c := newCluster(t, 1)
	_, err := c.rs[0].ks.Begin(1, 0).Delete("nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of absent key: %v, want ErrNotFound", err)
	}
}

func TestLWW(t *testing.T) {
	const ms = 1_700_000_000_000
	tests := []struct {
		name       string
		ts0, ts1   Timestamp
		wantWinner int
	}{
		{"later physical time wins", MakeTimestamp(ms+1, 0), MakeTimestamp(ms, 9), 0},
		{"equal physical, higher logical wins", MakeTimestamp(ms, 1), MakeTimestamp(ms, 2), 1},
		{"equal timestamps: higher replica ID wins", MakeTimestamp(ms, 0), MakeTimestamp(ms, 0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 2)
			// Replica 1 writes the value that sorts first, so a rule
			// comparing value bytes would pick the other.
			vals := []string{"b", "a"}
			d0 := c.do(0, put("k", vals[0], tt.ts0))
			d1 := c.do(1, put("k", vals[1], tt.ts1))
			c.sync(d0, d1)
			v, _ := c.get(0, "k")
			if string(v.Register) != vals[tt.wantWinner] {
				t.Fatalf("read %q, want %q", v.Register, vals[tt.wantWinner])
			}
			sibs, err := c.rs[1].ks.Siblings("k", 0)
			if err != nil || len(sibs) != 2 {
				t.Fatalf("siblings: %v, %v", sibs, err)
			}
			if string(sibs[0].Value) != vals[tt.wantWinner] || sibs[0].Dot.Replica != c.rs[tt.wantWinner].id {
				t.Fatalf("siblings not winner first: %+v", sibs)
			}
			// A write that has seen both replaces both.
			c.sync(c.do(0, put("k", "z", tt.ts0)))
			if sibs, _ := c.rs[1].ks.Siblings("k", 0); len(sibs) != 1 || string(sibs[0].Value) != "z" {
				t.Fatalf("after an observing write: %+v", sibs)
			}
		})
	}
}

// TestRegisterWinnerProperty: over random sibling sets with many equal
// times, replicas and seqs (values chosen so that comparing their bytes
// would pick another sibling), the visible value of a key and of a map
// field is the sibling with the greatest (time, replica ID, seq), and
// Siblings lists them in that order, greatest first.
func TestRegisterWinnerProperty(t *testing.T) {
	replicas := []ReplicaID{1, 2, 1 << 63, 1<<63 + 1}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "siblings")
		var regs []RegValue
		var dots []Dot
		used := map[Dot]bool{}
		for i := 0; i < n; i++ {
			d := Dot{
				Replica: rapid.SampledFrom(replicas).Draw(t, "replica"),
				Seq:     rapid.Uint64Range(1, 3).Draw(t, "seq"),
			}
			if used[d] {
				continue
			}
			used[d] = true
			ts := MakeTimestamp(1000+rapid.Int64Range(0, 1).Draw(t, "ms"), uint16(rapid.IntRange(0, 1).Draw(t, "logical")))
			value := rapid.SampledFrom([]string{"a", "b", "c", "z"}).Draw(t, "value")
			regs = append(regs, RegValue{Dot: d, Time: ts, Value: []byte(value)})
			dots = append(dots, d)
		}
		// The expected order, written out field by field.
		greater := func(a, b RegValue) bool {
			if a.Time != b.Time {
				return a.Time > b.Time
			}
			if a.Dot.Replica != b.Dot.Replica {
				return a.Dot.Replica > b.Dot.Replica
			}
			return a.Dot.Seq > b.Dot.Seq
		}
		want := slices.Clone(regs)
		slices.SortFunc(want, func(a, b RegValue) int {
			if greater(a, b) {
				return -1
			}
			return 1
		})
		// Shuffle the stored order: the winner must not depend on it.
		stored := slices.Clone(regs)
		for i := len(stored) - 1; i > 0; i-- {
			j := rapid.IntRange(0, i).Draw(t, "swap")
			stored[i], stored[j] = stored[j], stored[i]
		}
		ks := fromState(t, &Delta{
			Keys: map[string]*Entry{
				"k": {Reg: stored},
				"m": {Map: map[string]*Entry{"f": {Reg: stored}}},
			},
			Ctx: Context{Cloud: sortDots(dots)},
		})
		if v, _ := ks.Get("k", 0); string(v.Register) != string(want[0].Value) {
			t.Fatalf("key reads %q, want %q of %v", v.Register, want[0].Value, want[0].Dot)
		}
		if v, _ := ks.Get("m", 0); string(v.Map["f"].Register) != string(want[0].Value) {
			t.Fatalf("field reads %q, want %q of %v", v.Map["f"].Register, want[0].Value, want[0].Dot)
		}
		keySibs, err := ks.Siblings("k", 0)
		if err != nil {
			t.Fatal(err)
		}
		fieldSibs, err := ks.FieldSiblings("m", 0, "f")
		if err != nil {
			t.Fatal(err)
		}
		for what, sibs := range map[string][]Sibling{"key": keySibs, "field": fieldSibs} {
			if len(sibs) != len(want) {
				t.Fatalf("%s siblings: %d, want %d", what, len(sibs), len(want))
			}
			for i, s := range sibs {
				if s.Dot != want[i].Dot || string(s.Value) != string(want[i].Value) {
					t.Fatalf("%s sibling %d is %v %q, want %v %q", what, i, s.Dot, s.Value, want[i].Dot, want[i].Value)
				}
			}
		}
	})
}

func TestFutureTimestamp(t *testing.T) {
	const now = 1_700_000_000_000
	const year = 365 * 24 * 3600 * 1000
	const drift = 60_000
	c := newCluster(t, 2)
	future := MakeTimestamp(now+100*year, 0)
	d0 := c.do(0, put("k", "from the future", future))
	d1 := c.do(1, put("k", "now", MakeTimestamp(now, 0)))
	c.sync(d0, d1)
	// Accepted: convergence requires it, and it wins the concurrent write.
	if v, _ := c.get(1, "k"); string(v.Register) != "from the future" {
		t.Fatalf("read %q", v.Register)
	}
	// The receiving clock does not jump a century; it is clamped and the
	// caller is told.
	next, ahead := WitnessTimestamp(MakeTimestamp(now, 0), future, now, drift)
	if !ahead || next.Physical() != now+drift {
		t.Fatalf("witness: %v (physical %d), ahead %v", next, next.Physical(), ahead)
	}
	// A write that has seen the future value replaces it, whatever its
	// time: the register is never stuck.
	c.sync(c.do(1, put("k", "later", next)))
	if v, _ := c.get(0, "k"); string(v.Register) != "later" {
		t.Fatalf("after an observing write: %q", v.Register)
	}
}

func TestCounterManyReplicas(t *testing.T) {
	const n = 5
	c := newCluster(t, n)
	var ds []*Delta
	want := int64(0)
	for round := 0; round < 20; round++ {
		for i := 0; i < n; i++ {
			by := int64((round*7+i*3)%11 - 5)
			want += by
			ds = append(ds, c.do(i, incr("hits", by)))
		}
	}
	// Deliver in reverse and twice: order and duplicates do not matter.
	slices.Reverse(ds)
	c.sync(append(ds, ds...)...)
	for i := 0; i < n; i++ {
		if v, _ := c.get(i, "hits"); v.Counter != want {
			t.Fatalf("replica %d: %d, want %d", i, v.Counter, want)
		}
	}
	// One contribution per replica, however many increments.
	if got := len(c.rs[0].ks.keys["hits"].Cnt); got != n {
		t.Fatalf("state holds %d contributions, want %d", got, n)
	}
}

func TestCounterOverflow(t *testing.T) {
	c := newCluster(t, 2)
	c.sync(c.do(0, incr("k", 1<<62)), c.do(1, incr("k", 1<<62)))
	// Each replica's own contribution is checked...
	tx := c.rs[0].ks.Begin(c.rs[0].id, c.rs[0].seq)
	if _, err := tx.Incr("k", 1<<62); !errors.Is(err, ErrOverflow) {
		t.Fatalf("own overflow: %v", err)
	}
	if tx.LastSeq() != c.rs[0].seq {
		t.Fatal("a failed op consumed a seq")
	}
	// ...the sum of contributions wraps like int64.
	v, _ := c.get(0, "k")
	if v.Counter != -1<<63 {
		t.Fatalf("sum %d, want wrap-around to %d", v.Counter, int64(-1<<63))
	}
}

func TestTypeConflict(t *testing.T) {
	tests := []struct {
		name  string
		a, b  func(*Tx) (*Delta, error)
		want  Type
		loser func(*Tx) (*Delta, error)
	}{
		{"counter beats register", put("k", "v", 1), incr("k", 1), TypeCounter, put("k", "w", 2)},
		{"set beats counter", incr("k", 1), add("k", "x"), TypeSet, incr("k", 1)},
		{"map beats set", add("k", "x"), update("k", &Patch{Set: map[string][]byte{"f": []byte("1")}}), TypeMap, add("k", "y")},
		{"map field: register beats flag", update("k", &Patch{Enable: []string{"f"}}),
			update("k", &Patch{Set: map[string][]byte{"f": []byte("1")}}), TypeMap,
			update("k", &Patch{Disable: []string{"f"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 2)
			c.sync(c.do(0, tt.a), c.do(1, tt.b))
			for i := range c.rs {
				v, _ := c.get(i, "k")
				if v.Type != tt.want {
					t.Fatalf("replica %d sees a %v, want %v", i, v.Type, tt.want)
				}
				if ks := c.rs[i].ks.Keys("k", 0, 0); len(ks) != 1 || ks[0].Type != tt.want {
					t.Fatalf("Keys: %v", ks)
				}
				// An op of the hidden type is refused, on both sides.
				tx := c.rs[i].ks.Begin(c.rs[i].id, c.rs[i].seq)
				if _, err := tt.loser(tx); !errors.Is(err, ErrWrongType) {
					t.Fatalf("replica %d: op of the losing type: %v, want ErrWrongType", i, err)
				}
			}
			// Deleting the key removes both values; then any type goes.
			c.sync(c.do(0, del("k")))
			if c.rs[1].ks.Len() != 0 {
				t.Fatal("delete left a hidden value")
			}
			c.sync(c.do(1, tt.loser))
		})
	}
}

func TestWrongType(t *testing.T) {
	c := newCluster(t, 1)
	c.do(0, put("r", "1", 1))
	c.do(0, incr("c", 1))
	c.do(0, add("s", "x"))
	c.do(0, update("m", &Patch{Set: map[string][]byte{"f": []byte("1")}, Enable: []string{"flag"}}))
	ops := map[string]func(key string) func(*Tx) (*Delta, error){
		"put":    func(k string) func(*Tx) (*Delta, error) { return put(k, "x", 2) },
		"incr":   func(k string) func(*Tx) (*Delta, error) { return incr(k, 1) },
		"add":    func(k string) func(*Tx) (*Delta, error) { return add(k, "y") },
		"remove": func(k string) func(*Tx) (*Delta, error) { return remove(k, "y") },
		"update": func(k string) func(*Tx) (*Delta, error) {
			return update(k, &Patch{Set: map[string][]byte{"g": []byte("2")}})
		},
	}
	fits := map[string]string{"put": "r", "incr": "c", "add": "s", "remove": "s", "update": "m"}
	for op, mk := range ops {
		for _, key := range []string{"r", "c", "s", "m"} {
			tx := c.rs[0].ks.Begin(c.rs[0].id, c.rs[0].seq)
			_, err := mk(key)(tx)
			if fits[op] == key {
				if err != nil {
					t.Errorf("%s on %s: %v", op, key, err)
				}
			} else if !errors.Is(err, ErrWrongType) {
				t.Errorf("%s on %s: %v, want ErrWrongType", op, key, err)
			}
		}
	}
	// Fields too.
	for _, p := range []*Patch{
		{Incr: map[string]int64{"f": 1}},
		{Enable: []string{"f"}},
		{Set: map[string][]byte{"flag": []byte("1")}},
		{Nested: map[string]*Patch{"f": {Set: map[string][]byte{"x": []byte("1")}}}},
		{Add: map[string][]string{"flag": {"x"}}},
	} {
		tx := c.rs[0].ks.Begin(c.rs[0].id, c.rs[0].seq)
		if _, err := tx.Update("m", p, 3); !errors.Is(err, ErrWrongType) {
			t.Errorf("patch %+v: %v, want ErrWrongType", p, err)
		}
		if tx.LastSeq() != c.rs[0].seq {
			t.Errorf("patch %+v: failed update consumed seqs", p)
		}
	}
}

func TestFlagEnableWins(t *testing.T) {
	c := newCluster(t, 2)
	c.sync(c.do(0, update("m", &Patch{Enable: []string{"on"}, Set: map[string][]byte{"x": []byte("1")}})))
	dis := c.do(0, update("m", &Patch{Disable: []string{"on"}}))
	if v, _ := c.get(0, "m"); v.Map["on"].Type != 0 {
		t.Fatalf("disabled flag still visible: %+v", v.Map["on"])
	}
	en := c.do(1, update("m", &Patch{Enable: []string{"on"}}))
	c.sync(dis, en)
	if v, _ := c.get(0, "m"); !v.Map["on"].Flag {
		t.Fatalf("concurrent enable lost: %s", viewString(v))
	}
	c.sync(c.do(1, update("m", &Patch{Disable: []string{"on"}})))
	if v, _ := c.get(0, "m"); v.Map["on"].Flag {
		t.Fatalf("observed disable lost: %s", viewString(v))
	}
}

func TestMapFields(t *testing.T) {
	c := newCluster(t, 2)
	c.sync(c.do(0, update("doc", &Patch{
		Set:    map[string][]byte{"title": []byte(`"t"`)},
		Incr:   map[string]int64{"views": 2},
		Add:    map[string][]string{"tags": {"a", "b"}},
		Nested: map[string]*Patch{"author": {Set: map[string][]byte{"name": []byte(`"ann"`)}}},
	})))
	// Field delete concurrent with a nested update of that field: the
	// update survives, the rest of the field is gone.
	d0 := c.do(0, update("doc", &Patch{Delete: []string{"author", "tags"}}))
	d1 := c.do(1, update("doc", &Patch{
		Nested: map[string]*Patch{"author": {Set: map[string][]byte{"email": []byte(`"a@x"`)}}},
		Remove: map[string][]string{"tags": {"a"}},
	}))
	c.sync(d0, d1)
	v, _ := c.get(0, "doc")
	if got, want := viewString(v), `{author:{email:"a@x"},title:"t",views:2}`; got != want {
		t.Fatalf("doc = %s, want %s", got, want)
	}
	// Delete and set of one field in one patch: delete first, then set.
	c.sync(c.do(1, update("doc", &Patch{Delete: []string{"title"}, Set: map[string][]byte{"title": []byte(`"u"`)}})))
	if v, _ := c.get(0, "doc"); string(v.Map["title"].Register) != `"u"` {
		t.Fatalf("title = %s", v.Map["title"].Register)
	}
	// Empty patches are refused.
	tx := c.rs[0].ks.Begin(c.rs[0].id, c.rs[0].seq)
	if _, err := tx.Update("doc", &Patch{}, 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty patch: %v", err)
	}
}

// TestRemovalBeforeItsCause: replica 2 learns that a value was overwritten
// (its dot is in the context) before it receives the write that
// overwrote the older value. That write is not a duplicate and must still
// be applied, or replica 2 would keep the older value forever.
func TestRemovalBeforeItsCause(t *testing.T) {
	c := newCluster(t, 3)
	w := c.do(0, put("k", "w", 1))
	c.sync(w)
	x := c.do(0, put("k", "x", 2)) // replaces w
	c.send(1, x)
	y := c.do(1, put("k", "y", 3)) // replaces x (not w: replica 1 saw only x then)
	c.send(2, y)
	if c.rs[2].ks.Covers(x) {
		t.Fatal("x counted as a duplicate though replica 2 never applied it")
	}
	if sibs, _ := c.rs[2].ks.Siblings("k", 0); len(sibs) != 2 {
		t.Fatalf("before x: %d siblings, want w and y", len(sibs))
	}
	missing := c.rs[2].ks.Applied().Missing(c.rs[1].ks.Applied())
	if want := x.Dots(); fmt.Sprint(missing) != fmt.Sprint(want) {
		t.Fatalf("missing %v, want %v", missing, want)
	}
	c.sync(x, y)
	if sibs, _ := c.rs[2].ks.Siblings("k", 0); len(sibs) != 1 || string(sibs[0].Value) != "y" {
		t.Fatalf("after x: %+v", sibs)
	}
}

// TestJoinRange: a state transfer of a key range joins the keys in the
// range (removing local values the sender has seen and dropped) and leaves
// keys outside it alone until their own range comes.
func TestJoinRange(t *testing.T) {
	c := newCluster(t, 2)
	c.sync(c.do(0, put("a", "1", 1)), c.do(0, put("b", "1", 1)), c.do(0, put("c", "1", 1)), c.do(0, put("d", "1", 1)))
	// Replica 0 deletes b and d and writes c; replica 1 misses all of it.
	c.do(0, del("b"))
	c.do(0, del("d"))
	c.do(0, put("c", "2", 2))
	src, dst := c.rs[0].ks, c.rs[1].ks
	ctx := src.Context()
	ch := dst.JoinRange("a", "c", src.KeyState("a"), ctx) // [a, c): a and b
	if want := []Change{{Key: "b", Deleted: true}}; fmt.Sprint(ch) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", ch, want)
	}
	if _, ok := dst.Get("d", 0); !ok {
		t.Fatal("a key outside the range was touched")
	}
	ch = dst.JoinRange("c", "", src.KeyState("c"), ctx)
	if want := []Change{{Key: "c"}, {Key: "d", Deleted: true}}; fmt.Sprint(ch) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", ch, want)
	}
	dst.MergeContext(ctx)
	dst.MergeApplied(src.Applied())
	sameState(t, "after the transfer", src, dst)
	if !dst.Applied().Equal(src.Applied()) {
		t.Fatal("applied sets differ after the transfer")
	}
}

// FieldSiblings shows the concurrent writes of a document's register field
// (winner first), and a write that has seen them replaces them all; a path
// through a field that is not a map, to a field that is not a register, or
// to a field that does not exist is an error.
func TestFieldSiblings(t *testing.T) {
	c := newCluster(t, 2)
	base := c.do(0, update("card", &Patch{Set: map[string][]byte{"title": []byte(`"a"`)}, Incr: map[string]int64{"votes": 1},
		Nested: map[string]*Patch{"meta": {Set: map[string][]byte{"by": []byte(`"ann"`)}}}}))
	c.sync(base)
	d0 := c.do(0, update("card", &Patch{Set: map[string][]byte{"title": []byte(`"from 0"`)}}))
	d1 := c.do(1, update("card", &Patch{Set: map[string][]byte{"title": []byte(`"from 1"`)}}))
	c.sync(d0, d1)
	for i := range c.rs {
		sibs, err := c.rs[i].ks.FieldSiblings("card", 0, "title")
		if err != nil || len(sibs) != 2 {
			t.Fatalf("replica %d: siblings %+v, %v", i, sibs, err)
		}
		v, _ := c.get(i, "card")
		if string(sibs[0].Value) != string(v.Map["title"].Register) || string(sibs[0].Value) == string(sibs[1].Value) {
			t.Fatalf("replica %d: winner %q not first in %+v", i, v.Map["title"].Register, sibs)
		}
	}
	if sibs, err := c.rs[0].ks.FieldSiblings("card", 0, "meta", "by"); err != nil || len(sibs) != 1 || string(sibs[0].Value) != `"ann"` {
		t.Fatalf("nested field: %+v, %v", sibs, err)
	}
	c.sync(c.do(1, update("card", &Patch{Set: map[string][]byte{"title": []byte(`"kept"`)}})))
	if sibs, _ := c.rs[0].ks.FieldSiblings("card", 0, "title"); len(sibs) != 1 || string(sibs[0].Value) != `"kept"` {
		t.Fatalf("after an observing write: %+v", sibs)
	}
	for _, tt := range []struct {
		path []string
		want error
	}{
		{[]string{"votes"}, ErrWrongType},
		{[]string{"votes", "x"}, ErrWrongType},
		{[]string{"nope"}, ErrNotFound},
		{[]string{"meta", "nope"}, ErrNotFound},
		{nil, ErrWrongType}, // the key itself is a map
	} {
		if _, err := c.rs[0].ks.FieldSiblings("card", 0, tt.path...); !errors.Is(err, tt.want) {
			t.Errorf("FieldSiblings(card, %q): %v, want %v", tt.path, err, tt.want)
		}
	}
	if _, err := c.rs[0].ks.FieldSiblings("absent", 0, "title"); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent key: %v", err)
	}
}

// GetShared hands out the state's own bytes: they must never change,
// whatever happens to the key afterwards (node.Get's decoded strings alias
// them).
func TestGetSharedBytesNeverChange(t *testing.T) {
	c := newCluster(t, 2)
	in := []byte(`"first"`)
	c.do(0, func(tx *Tx) (*Delta, error) { return tx.Put("k", in, 1) })
	copy(in, `"XXXXX"`) // the caller's buffer is not the state's
	v, ok := c.rs[0].ks.GetShared("k", 0)
	if !ok || string(v.Register) != `"first"` {
		t.Fatalf("GetShared = %q, %v", v.Register, ok)
	}
	held := v.Register
	// Replaced locally, by a concurrent remote write, deleted, written again.
	d := c.do(1, put("k", `"other"`, 5))
	c.send(0, d)
	c.do(0, put("k", `"third"`, 9))
	c.do(0, del("k"))
	c.do(0, put("k", `"fourth!"`, 10))
	if string(held) != `"first"` {
		t.Fatalf("held bytes changed to %q", held)
	}
	if v, _ := c.rs[0].ks.GetShared("k", 0); string(v.Register) != `"fourth!"` {
		t.Fatalf("GetShared = %q", v.Register)
	}
	if v, _ := c.rs[0].ks.Get("k", 0); &v.Register[0] == &c.rs[0].ks.keys["k"].Reg[0].Value[0] {
		t.Fatal("Get shares the state's bytes")
	}
}

// PutOwned keeps the caller's bytes and ApplyOwned keeps the delta's;
// Put and Apply copy them. Reads see the same either way.
func TestOwnedValues(t *testing.T) {
	for _, owned := range []bool{false, true} {
		ks := NewKeyspace()
		tx := ks.Begin(ReplicaID(1), 0)
		in := []byte(`"value"`)
		put, apply := tx.Put, ks.Apply
		if owned {
			put, apply = tx.PutOwned, ks.ApplyOwned
		}
		d, err := put("k", in, 1)
		if err != nil {
			t.Fatal(err)
		}
		inDelta := &d.Keys["k"].Reg[0].Value[0]
		apply(d)
		v, ok := ks.GetShared("k", 0)
		if !ok || string(v.Register) != `"value"` {
			t.Fatalf("owned=%v: %q, %v", owned, v.Register, ok)
		}
		if shared := inDelta == &in[0]; shared != owned {
			t.Fatalf("owned=%v: the delta shares the caller's bytes: %v", owned, shared)
		}
		if shared := &v.Register[0] == inDelta; shared != owned {
			t.Fatalf("owned=%v: the state shares the delta's bytes: %v", owned, shared)
		}
	}
}

// SweepLag says how long ago the oldest expiry Sweep has not dealt with
// passed: unreported ones measured from now, reported and unreclaimed ones
// from horizon; nothing due is no lag.
func TestSweepLag(t *testing.T) {
	k := NewKeyspace()
	tx := k.Begin(1, 0)
	for i, at := range []int64{1_000, 3_000, 9_000} {
		key := fmt.Sprintf("k%d", i)
		k.Apply(mustDelta(tx.Put(key, []byte(`1`), MakeTimestamp(500, 0))))
		k.Apply(mustDelta(tx.Expire(key, MakeTimestamp(at, 0))))
	}
	ms := func(t int64) Timestamp { return MakeTimestamp(t, 0) }
	if lag := k.SweepLag(ms(900), ms(900)); lag != 0 {
		t.Fatalf("nothing expired yet: lag %v", lag)
	}
	if lag := k.SweepLag(ms(4_000), ms(2_000)); lag != 3*time.Second {
		t.Fatalf("two expiries unreported, the oldest at 1s, now 4s: lag %v, want 3s", lag)
	}
	if e, _ := k.Sweep(ms(4_000), ms(0), 8); len(e) != 2 {
		t.Fatalf("reported %v", e)
	}
	if lag := k.SweepLag(ms(4_000), ms(2_500)); lag != 1500*time.Millisecond {
		t.Fatalf("reported, the oldest at 1s, horizon 2.5s: lag %v, want 1.5s", lag)
	}
	if lag := k.SweepLag(ms(4_000), ms(500)); lag != 0 {
		t.Fatalf("reported, horizon before both: lag %v", lag)
	}
	if _, r := k.Sweep(ms(4_000), ms(4_000), 8); len(r) != 2 {
		t.Fatalf("reclaimed %v", r)
	}
	if lag := k.SweepLag(ms(4_000), ms(4_000)); lag != 0 {
		t.Fatalf("up to date, the last expiry at 9s: lag %v", lag)
	}
	if lag := k.SweepLag(ms(9_500), ms(9_000)); lag != 500*time.Millisecond {
		t.Fatalf("the last one unreported since 9s, now 9.5s: lag %v", lag)
	}
}
