package crdt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Type conflicts: concurrent first writes of different types to one key or
// map field. The value of lower precedence is hidden, and an operation by a
// replica that has seen it removes it (see Entry), so it never comes back
// once the visible value is emptied.

func TestTypeConflictLoserNeverReappears(t *testing.T) {
	tests := []struct {
		name   string
		a, b   func(*Tx) (*Delta, error) // concurrent first writes
		before string                    // view after the merge
		empty  func(*Tx) (*Delta, error) // empties the visible value
	}{
		{"counter hidden by a set", incr("k", 5), add("k", "x"), "[x]", remove("k", "x")},
		{"register hidden by a set", put("k", `"stale"`, 9), add("k", "x"), "[x]", remove("k", "x")},
		{"register hidden by a map", put("k", `"stale"`, 9),
			update("k", &Patch{Set: map[string][]byte{"g": []byte("1")}}), "{g:1}",
			update("k", &Patch{Delete: []string{"g"}})},
		{"set hidden by a map", add("k", "x"),
			update("k", &Patch{Incr: map[string]int64{"g": 2}}), "{g:2}",
			update("k", &Patch{Delete: []string{"g"}})},
	}
	for _, tt := range tests {
		for emptier := range 2 { // the replica whose value won, or the loser's
			t.Run(tt.name+[]string{"/emptied by the winner", "/emptied by the loser"}[emptier], func(t *testing.T) {
				c := newCluster(t, 2)
				c.sync(c.do(0, tt.a), c.do(1, tt.b))
				if v, _ := c.get(0, "k"); viewString(v) != tt.before {
					t.Fatalf("after the merge: %s, want %s", viewString(v), tt.before)
				}
				c.sync(c.do(1-emptier, tt.empty))
				for i := range c.rs {
					if v, ok := c.get(i, "k"); ok {
						t.Fatalf("replica %d: the hidden value reappeared: %s (a %v)", i, viewString(v), v.Type)
					}
					if c.rs[i].ks.Len() != 0 {
						t.Fatalf("replica %d holds %d keys", i, c.rs[i].ks.Len())
					}
				}
				// The key is gone, so any type may be written again.
				c.sync(c.do(emptier, add("k", "y")))
				if v, _ := c.get(1-emptier, "k"); viewString(v) != "[y]" {
					t.Fatalf("after a new add: %s", viewString(v))
				}
			})
		}
	}
}

// TestTypeConflictMapField: a field written as a register on one replica and
// as a nested map on another shows the map; deleting the map's last field
// removes the field, not just the map (the register does not come back).
func TestTypeConflictMapField(t *testing.T) {
	c := newCluster(t, 2)
	c.sync(c.do(0, update("k", &Patch{Set: map[string][]byte{"other": []byte("1")}})))
	c.sync(
		c.do(0, update("k", &Patch{Set: map[string][]byte{"f": []byte(`"old"`)}})),
		c.do(1, update("k", &Patch{Nested: map[string]*Patch{"f": {Set: map[string][]byte{"g": []byte("2")}}}})),
	)
	if v, _ := c.get(0, "k"); viewString(v) != "{f:{g:2},other:1}" {
		t.Fatalf("after the merge: %s", viewString(v))
	}
	c.sync(c.do(0, update("k", &Patch{Nested: map[string]*Patch{"f": {Delete: []string{"g"}}}})))
	for i := range c.rs {
		if v, _ := c.get(i, "k"); viewString(v) != "{other:1}" {
			t.Fatalf("replica %d: %s, want {other:1}: the hidden register reappeared", i, viewString(v))
		}
	}
	// The field is free for any type again.
	c.sync(c.do(1, update("k", &Patch{Add: map[string][]string{"f": {"y"}}})))
	if v, _ := c.get(0, "k"); viewString(v) != "{f:[y],other:1}" {
		t.Fatalf("after a new add: %s", viewString(v))
	}
}

// TestTypeConflictSettledByAnyOperation: the first operation on a key or
// field by a replica that has seen a type conflict there removes the
// hidden value, even when it leaves the visible value non-empty: the
// state holds one type at that path afterwards, on every replica.
func TestTypeConflictSettledByAnyOperation(t *testing.T) {
	field := func(p *Patch) func(*Tx) (*Delta, error) { return update("k", p) }
	tests := []struct {
		name  string
		a, b  func(*Tx) (*Delta, error) // concurrent first writes
		path  []string                  // where the conflict is
		op    func(*Tx) (*Delta, error) // an operation of the visible type
		after string                    // view of k afterwards
	}{
		{"set add settles a counter", incr("k", 5), add("k", "x"), nil, add("k", "y"), "[x y]"},
		{"set remove settles a counter", incr("k", 5), add("k", "x", "y"), nil, remove("k", "x"), "[y]"},
		{"incr settles a register", put("k", "1", 9), incr("k", 5), nil, incr("k", 1), "6"},
		{"update settles a set", add("k", "x"), field(&Patch{Set: map[string][]byte{"g": []byte("1")}}), nil,
			field(&Patch{Incr: map[string]int64{"n": 1}}), "{g:1,n:1}"},
		{"field put settles a flag", field(&Patch{Enable: []string{"f"}}), field(&Patch{Set: map[string][]byte{"f": []byte("1")}}),
			[]string{"f"}, field(&Patch{Set: map[string][]byte{"f": []byte("2")}}), "{f:2}"},
		{"field incr settles a register", field(&Patch{Set: map[string][]byte{"f": []byte("1")}}), field(&Patch{Incr: map[string]int64{"f": 3}}),
			[]string{"f"}, field(&Patch{Incr: map[string]int64{"f": 1}}), "{f:4}"},
		{"nested update settles a set field", field(&Patch{Add: map[string][]string{"f": {"x"}}}),
			field(&Patch{Nested: map[string]*Patch{"f": {Set: map[string][]byte{"g": []byte("1")}}}}),
			[]string{"f"}, field(&Patch{Nested: map[string]*Patch{"f": {Set: map[string][]byte{"h": []byte("2")}}}}), "{f:{g:1,h:2}}"},
	}
	at := func(ks *Keyspace, path []string) *Entry {
		e := ks.keys["k"]
		for _, f := range path {
			e = e.Map[f]
		}
		return e
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 2)
			c.sync(c.do(0, tt.a), c.do(1, tt.b))
			if ts := typesOf(at(c.rs[0].ks, tt.path)); ts&(ts-1) == 0 {
				t.Fatalf("the merge did not keep both values (types %b)", ts)
			}
			c.sync(c.do(0, tt.op))
			for i := range c.rs {
				if ts := typesOf(at(c.rs[i].ks, tt.path)); ts&(ts-1) != 0 {
					t.Fatalf("replica %d still holds values of several types (%b):\n%s", i, ts, dump(c.rs[i].ks.Snapshot()))
				}
				if v, _ := c.get(i, "k"); viewString(v) != tt.after {
					t.Fatalf("replica %d: %s, want %s", i, viewString(v), tt.after)
				}
			}
		})
	}
	// Until someone operates on it, the hidden value is only hidden:
	// operations of its type are refused (see TestTypeConflict).
}

// TestTypeConflictUnseenWriteSurvives: observed-remove semantics. A replica
// that empties the visible value removes only what it has seen; a write of
// the other type it had not seen survives and becomes the key's value.
func TestTypeConflictUnseenWriteSurvives(t *testing.T) {
	c := newCluster(t, 3)
	dAdd := c.do(0, add("k", "x"))
	c.send(2, dAdd)
	dIncr := c.do(1, incr("k", 5)) // concurrent with the add
	dRemove := c.do(2, remove("k", "x"))
	c.sync(dAdd, dIncr, dRemove)
	for i := range c.rs {
		if v, _ := c.get(i, "k"); v.Type != TypeCounter || v.Counter != 5 {
			t.Fatalf("replica %d: %s (a %v), want the counter 5 that the remover had not seen", i, viewString(v), v.Type)
		}
	}
	// And now it is an ordinary counter.
	c.sync(c.do(0, incr("k", 1)))
	if v, _ := c.get(2, "k"); v.Counter != 6 {
		t.Fatalf("counter %d, want 6", v.Counter)
	}
	tx := c.rs[0].ks.Begin(c.rs[0].id, c.rs[0].seq)
	if _, err := tx.SetAdd("k", "y"); !errors.Is(err, ErrWrongType) {
		t.Fatalf("add to a counter: %v", err)
	}
}

// TestNothingResurrected: an operation never makes visible a value that its
// replica had seen hidden. On the replica itself and on any replica that
// knows at least as much (the join of its state with another's), after
// applying the operation's delta, wherever a path shows another type than
// before, every value of that type is one the operation's replica had not
// seen: written by the operation itself, or concurrent with it. Random
// histories of every mode; those of the map, keyspace and conflict modes
// hold type conflicts (see TestGeneratorsMakeTypeConflicts).
func TestNothingResurrected(t *testing.T) {
	forModes(t, func(t *rapid.T, m mode) {
		rs, _ := genStates(t, m, 3)
		r := rapidRnd{t}
		for i := 0; i < 16; i++ {
			origin := pick(r, rs, "origin")
			seen := origin.ks.Context()
			watchers := []*Keyspace{fromState(t, origin.ks.Snapshot())}
			for _, other := range rs {
				if other != origin {
					watchers = append(watchers, fromState(t, Join(origin.ks.Snapshot(), other.ks.Snapshot())))
				}
			}
			d := step(t, r, origin, m)
			if d == nil {
				continue
			}
			for w, ks := range watchers {
				before := ks.Snapshot()
				ks.Apply(d)
				for _, key := range sortedKeys(ks.keys) {
					if p := revealed(before.Keys[key], ks.keys[key], seen, key); p != "" {
						t.Fatalf("watcher %d: %s\n--- delta\n%s--- before\n%s--- after\n%s", w, p, dump(d), dump(before), dump(ks.Snapshot()))
					}
				}
			}
			for _, other := range rs {
				if other != origin && r.intn(2, "deliver?") == 0 {
					other.ks.Apply(d)
				}
			}
		}
	})
}

// revealed returns a description of the first path under after (a
// normalized entry) that shows another type than before (nil: absent) and
// holds a value whose dot is in seen; "" when there is none.
func revealed(before, after *Entry, seen *Context, path string) string {
	var was Type
	if before != nil {
		was = before.visibleType()
	}
	now := after.visibleType()
	if now != was {
		for _, d := range storeDots(after, now) {
			if seen.Contains(d) {
				return fmt.Sprintf("%s: a %v became a %v that holds the seen dot %v", path, was, now, d)
			}
		}
		return ""
	}
	if now == TypeMap {
		for _, f := range sortedKeys(after.Map) {
			if p := revealed(before.Map[f], after.Map[f], seen, path+"."+f); p != "" {
				return p
			}
		}
	}
	return ""
}

// storeDots returns the dots of e's store of type tp (recursively for a map).
func storeDots(e *Entry, tp Type) []Dot {
	switch tp {
	case TypeRegister:
		return (&Entry{Reg: e.Reg}).appendDots(nil)
	case TypeCounter:
		return (&Entry{Cnt: e.Cnt}).appendDots(nil)
	case TypeSet:
		return (&Entry{Set: e.Set}).appendDots(nil)
	case TypeMap:
		return (&Entry{Map: e.Map}).appendDots(nil)
	case TypeFlag:
		return (&Entry{Flag: e.Flag}).appendDots(nil)
	}
	return nil
}

// TestGeneratorsMakeTypeConflicts: the random histories that the join-law,
// convergence and resurrection property tests run on do hold type
// conflicts (at keys and at map fields), operations on the conflicted
// paths after them, and operations that empty the visible value there:
// the case where a hidden value would come back. Fixed seeds: the counts
// are the same every run.
func TestGeneratorsMakeTypeConflicts(t *testing.T) {
	for _, md := range []struct {
		name    string
		m       mode
		empties bool // expect operations that empty a conflicted path's visible value
	}{
		{"map", modeMap, false},
		{"keyspace", modeMixed, true},
		{"conflict", modeConflict, true},
	} {
		var conflicted, keyConflicts, fieldConflicts, operated, emptied, settled int
		const histories = 200
		for seed := uint64(1); seed <= histories; seed++ {
			found := false
			r := mathRnd{rand.New(rand.NewPCG(seed, 9))}
			history(t, r, md.m, 3, 25, func(rp *replica, before, d *Delta) {
				for path, types := range conflictPaths(before) {
					found = true
					if strings.Contains(path, ".") {
						fieldConflicts++
					} else {
						keyConflicts++
					}
					if entryAt(d, path) == nil || deletedBy(d, path) {
						continue
					}
					operated++
					e := entryAt(rp.ks.Snapshot(), path)
					if e == nil || typesOf(e)&(1<<types.visible()) == 0 {
						emptied++
					}
					if e == nil || typesOf(e)&types&^(1<<types.visible()) == 0 {
						settled++
					}
				}
			})
			if found {
				conflicted++
			}
		}
		t.Logf("%s: %d/%d histories with a type conflict; operations saw %d key and %d field conflicts, operated on %d of them (%d settled), emptied the visible value of %d",
			md.name, conflicted, histories, keyConflicts, fieldConflicts, operated, settled, emptied)
		if conflicted == 0 || fieldConflicts == 0 || operated == 0 || (md.empties && emptied == 0) {
			t.Errorf("%s: the generator makes too few type conflicts or operations after them", md.name)
		}
	}
}

// conflictPaths returns the paths ("key.field.field") of the state d where
// values of several types live, with those types.
func conflictPaths(d *Delta) map[string]typeMask {
	out := map[string]typeMask{}
	var walk func(e *Entry, path string)
	walk = func(e *Entry, path string) {
		if ts := typesOf(e); ts&(ts-1) != 0 {
			out[path] = ts
		}
		for f, c := range e.Map {
			walk(c, path+"."+f)
		}
	}
	for key, e := range d.Keys {
		walk(e, key)
	}
	return out
}

func typesOf(e *Entry) typeMask {
	var ts typeMask
	for _, tp := range []Type{TypeRegister, TypeCounter, TypeSet, TypeMap, TypeFlag} {
		if len(storeDots(e, tp)) > 0 {
			ts |= 1 << tp
		}
	}
	return ts
}

// entryAt returns the entry at path in d, nil when there is none.
func entryAt(d *Delta, path string) *Entry {
	names := strings.Split(path, ".")
	e := d.Keys[names[0]]
	for _, f := range names[1:] {
		if e == nil {
			return nil
		}
		e = e.Map[f]
	}
	return e
}

// deletedBy reports whether delta d deletes path or one of its ancestors.
func deletedBy(d *Delta, path string) bool {
	names := strings.Split(path, ".")
	e := d.Keys[names[0]]
	for i := 1; e != nil; i++ {
		if e.All {
			return true
		}
		if i == len(names) {
			return false
		}
		e = e.Map[names[i]]
	}
	return false
}
