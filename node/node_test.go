package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPutGetValues(t *testing.T) {
	n, _ := openTest(t, nil)
	big := json.Number("123456789012345678901234567890")
	cases := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"true", true, true},
		{"false", false, false},
		{"int", 42, int64(42)},
		{"int8", int8(-8), int64(-8)},
		{"int16", int16(16), int64(16)},
		{"int32", int32(-32), int64(-32)},
		{"int64 min", int64(math.MinInt64), int64(math.MinInt64)},
		{"uint", uint(7), int64(7)},
		{"uint8", uint8(255), int64(255)},
		{"uint16", uint16(65535), int64(65535)},
		{"uint32", uint32(1 << 31), int64(1 << 31)},
		{"uint64 max", uint64(math.MaxUint64), json.Number("18446744073709551615")},
		{"float32", float32(0.1), 0.1},
		{"float64", 2.5, 2.5},
		{"integral float", 3.0, int64(3)},
		{"negative zero", math.Copysign(0, -1), int64(0)},
		{"tiny float", 1e-9, 1e-9},
		{"huge float", 1e300, 1e300},
		{"string", "héllo \"q\" \\ \n\t\x01 <&>", "héllo \"q\" \\ \n\t\x01 <&>"},
		{"empty string", "", ""},
		{"array", []any{1, "a", nil, []any{}}, []any{int64(1), "a", nil, []any{}}},
		{"object", map[string]any{"b": 1, "a": map[string]any{"c": []any{true}}},
			map[string]any{"a": map[string]any{"c": []any{true}}, "b": int64(1)}},
		{"json.Number int", json.Number("-17"), int64(-17)},
		{"json.Number float", json.Number("1.5e3"), int64(1500)},
		{"json.Number big", big, big}, // every digit kept
		{"raw message", json.RawMessage(` { "z" : [1, 2.5, "x\u00e9"], "a": null } `),
			map[string]any{"a": nil, "z": []any{int64(1), 2.5, "xé"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "k/" + c.name
			if err := n.Put(key, c.in); err != nil {
				t.Fatalf("Put(%#v): %v", c.in, err)
			}
			v, err := n.Get(key)
			if err != nil {
				t.Fatal(err)
			}
			if v.Key != key || v.Type != TypeRegister {
				t.Fatalf("got key %q type %q", v.Key, v.Type)
			}
			if !reflect.DeepEqual(v.Data, c.want) {
				t.Fatalf("Get = %#v (%T), want %#v (%T)", v.Data, v.Data, c.want, c.want)
			}
		})
	}
}

func TestPutInvalidValues(t *testing.T) {
	n, _ := openTest(t, &Options{MaxValueBytes: 100})
	deep := any("x")
	for range MaxDepth + 2 {
		deep = []any{deep}
	}
	type point struct{ X int }
	bad := []struct {
		name string
		in   any
		want error
	}{
		{"struct", point{1}, ErrInvalidValue},
		{"[]byte", []byte("a"), ErrInvalidValue},
		{"map[string]int", map[string]int{"a": 1}, ErrInvalidValue},
		{"nested unsupported", map[string]any{"a": []any{struct{}{}}}, ErrInvalidValue},
		{"chan", make(chan int), ErrInvalidValue},
		{"NaN", math.NaN(), ErrInvalidValue},
		{"+Inf", math.Inf(1), ErrInvalidValue},
		{"float32 Inf", float32(math.Inf(-1)), ErrInvalidValue},
		{"invalid UTF-8", "a\xffb", ErrInvalidValue},
		{"invalid UTF-8 key in object", map[string]any{"\xff": 1}, ErrInvalidValue},
		{"too deep", deep, ErrInvalidValue},
		{"bad json.Number", json.Number("01"), ErrInvalidValue},
		{"json.Number out of range", json.Number("1e999"), ErrInvalidValue},
		{"bad raw message", json.RawMessage(`{"a":}`), ErrInvalidValue},
		{"raw message trailing", json.RawMessage(`1 2`), ErrInvalidValue},
		{"raw message lone surrogate", json.RawMessage(`"\ud800"`), ErrInvalidValue},
		{"too large", strings.Repeat("x", 101), ErrTooLarge},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			err := n.Put("k", c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("Put(%T) = %v, want %v", c.in, err, c.want)
			}
		})
	}
	if _, err := n.Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused Put left a value: %v", err)
	}
	if err := n.Put("k", strings.Repeat("x", 98)); err != nil { // 100 bytes with quotes
		t.Fatalf("Put at the limit: %v", err)
	}
}

func TestInvalidKeys(t *testing.T) {
	n, _ := openTest(t, nil)
	for _, key := range []string{"", strings.Repeat("k", MaxKeyBytes+1), "a\xffb"} {
		errs := map[string]error{}
		errs["put"] = n.Put(key, 1)
		_, errs["get"] = n.Get(key)
		errs["delete"] = n.Delete(key)
		_, errs["incr"] = n.Incr(key, 1)
		errs["setadd"] = n.SetAdd(key, "m")
		errs["setremove"] = n.SetRemove(key, "m")
		errs["update"] = n.Update(key, Patch{Incr: map[string]int64{"f": 1}})
		_, errs["siblings"] = n.Siblings(key)
		var b Batch
		b.Put(key, 1)
		errs["batch"] = n.Commit(&b)
		for op, err := range errs {
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s(%q...) = %v, want ErrInvalidKey", op, truncateKey(key), err)
			}
		}
	}
	long := strings.Repeat("é", MaxKeyBytes/2) // exactly MaxKeyBytes bytes
	if err := n.Put(long, 1); err != nil {
		t.Fatalf("key of %d bytes: %v", len(long), err)
	}
	if err := n.Update("doc", Patch{Set: map[string]any{"": 1}}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty field name: %v", err)
	}
}

func TestWrongType(t *testing.T) {
	n, _ := openTest(t, nil)
	must(t, n.Put("reg", "v"))
	_, err := n.Incr("cnt", 1)
	must(t, err)
	must(t, n.SetAdd("set", "m"))
	must(t, n.Update("map", Patch{Set: map[string]any{"f": 1}}))
	ops := map[string]func(key string) error{
		"put":       func(k string) error { return n.Put(k, 1) },
		"incr":      func(k string) error { _, err := n.Incr(k, 1); return err },
		"setadd":    func(k string) error { return n.SetAdd(k, "x") },
		"setremove": func(k string) error { return n.SetRemove(k, "x") },
		"update":    func(k string) error { return n.Update(k, Patch{Set: map[string]any{"g": 2}}) },
	}
	owner := map[string]string{"put": "reg", "incr": "cnt", "setadd": "set", "setremove": "set", "update": "map"}
	for op, f := range ops {
		for _, key := range []string{"reg", "cnt", "set", "map"} {
			err := f(key)
			if key == owner[op] {
				if err != nil {
					t.Errorf("%s on its own type %s: %v", op, key, err)
				}
				continue
			}
			if !errors.Is(err, ErrWrongType) {
				t.Errorf("%s on %s = %v, want ErrWrongType", op, key, err)
			}
		}
	}
	if _, err := n.Siblings("cnt"); !errors.Is(err, ErrWrongType) {
		t.Errorf("Siblings of a counter = %v", err)
	}
	// A field of another type inside a document.
	if err := n.Update("map", Patch{Incr: map[string]int64{"f": 1}}); !errors.Is(err, ErrWrongType) {
		t.Errorf("incr of a register field = %v", err)
	}
	// After a delete the key may take another type.
	must(t, n.Delete("reg"))
	if _, err := n.Incr("reg", 2); err != nil {
		t.Fatalf("incr after delete: %v", err)
	}
}

func TestNotFoundAndDelete(t *testing.T) {
	n, _ := openTest(t, nil)
	if _, err := n.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v", err)
	}
	if err := n.Delete("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := n.Siblings("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Siblings = %v", err)
	}
	if err := n.SetRemove("nope", "m"); err != nil {
		t.Fatalf("SetRemove of an absent key: %v", err)
	}
	for _, key := range []string{"r", "c", "s", "m"} {
		switch key {
		case "r":
			must(t, n.Put(key, 1))
		case "c":
			_, err := n.Incr(key, 1)
			must(t, err)
		case "s":
			must(t, n.SetAdd(key, "a"))
		case "m":
			must(t, n.Update(key, Patch{Enable: []string{"f"}}))
		}
		must(t, n.Delete(key))
		if _, err := n.Get(key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%s) after Delete = %v", key, err)
		}
	}
	if ks, _ := n.Keys("", 0); len(ks) != 0 {
		t.Fatalf("keys after deleting all: %v", ks)
	}
}

func TestCounter(t *testing.T) {
	n, _ := openTest(t, nil)
	for i, c := range []struct{ by, want int64 }{{5, 5}, {-7, -2}, {0, -2}, {math.MaxInt64, math.MaxInt64 - 2}} {
		got, err := n.Incr("c", c.by)
		if err != nil || got != c.want {
			t.Fatalf("step %d: Incr(%d) = %d, %v; want %d", i, c.by, got, err, c.want)
		}
	}
	if _, err := n.Incr("c", 3); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflow: %v", err)
	}
	v, err := n.Get("c")
	if err != nil || v.Type != TypeCounter || v.Data != int64(math.MaxInt64-2) {
		t.Fatalf("Get = %#v, %v", v, err)
	}
}

func TestSet(t *testing.T) {
	n, _ := openTest(t, nil)
	must(t, n.SetAdd("s", "b", "a", "c", "a"))
	must(t, n.SetRemove("s", "c", "zz"))
	members := []string{"x"}
	must(t, n.SetAdd("s", members...))
	members[0] = "mutated" // the node keeps its own copy
	v, err := n.Get("s")
	if err != nil || v.Type != TypeSet || !reflect.DeepEqual(v.Data, []string{"a", "b", "x"}) {
		t.Fatalf("Get = %#v, %v", v, err)
	}
	if err := n.SetAdd("s"); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("SetAdd with no members: %v", err)
	}
	if err := n.SetAdd("s", "\xff"); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("SetAdd of invalid UTF-8: %v", err)
	}
}

func TestUpdateDocument(t *testing.T) {
	n, _ := openTest(t, nil)
	must(t, n.Update("doc", Patch{
		Set:    map[string]any{"title": "milk", "meta": map[string]any{"x": 1}},
		Incr:   map[string]int64{"views": 3},
		Add:    map[string][]string{"tags": {"home", "food"}},
		Enable: []string{"starred"},
		Nested: map[string]Patch{"author": {Set: map[string]any{"name": "ann"}, Incr: map[string]int64{"n": 1}}},
	}))
	must(t, n.Update("doc", Patch{
		Delete:  []string{"meta"},
		Incr:    map[string]int64{"views": -1},
		Remove:  map[string][]string{"tags": {"food"}},
		Disable: []string{"starred"},
		Nested:  map[string]Patch{"author": {Set: map[string]any{"name": "bob"}}},
	}))
	v, err := n.Get("doc")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"title":  "milk",
		"views":  int64(2),
		"tags":   []string{"home"},
		"author": map[string]any{"name": "bob", "n": int64(1)},
		// a disabled flag holds no dot: it is absent (reads as false)
	}
	if v.Type != TypeMap || !reflect.DeepEqual(v.Data, want) {
		t.Fatalf("Get = %#v\nwant %#v", v.Data, want)
	}
	for name, p := range map[string]Patch{
		"empty":        {},
		"bad value":    {Set: map[string]any{"f": math.NaN()}},
		"no members":   {Add: map[string][]string{"tags": {}}},
		"nested empty": {Nested: map[string]Patch{"author": {}}},
	} {
		if err := n.Update("doc", p); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s patch: %v, want ErrInvalidValue", name, err)
		}
	}
	if err := n.Update("doc", Patch{Add: map[string][]string{"title": {"x"}}}); !errors.Is(err, ErrWrongType) {
		t.Errorf("set add to a register field: %v", err)
	}
}

func TestKeys(t *testing.T) {
	n, _ := openTest(t, nil)
	for _, k := range []string{"b/2", "a/1", "b/1", "c", "b/3"} {
		must(t, n.Put(k, k))
	}
	_, err := n.Incr("b/0", 1)
	must(t, err)
	ks, err := n.Keys("b/", 0)
	must(t, err)
	want := []KeyInfo{{"b/0", TypeCounter}, {"b/1", TypeRegister}, {"b/2", TypeRegister}, {"b/3", TypeRegister}}
	if !reflect.DeepEqual(ks, want) {
		t.Fatalf("Keys(b/) = %v", ks)
	}
	ks, _ = n.Keys("", 2)
	if !reflect.DeepEqual(ks, []KeyInfo{{"a/1", TypeRegister}, {"b/0", TypeCounter}}) {
		t.Fatalf("Keys limit 2 = %v", ks)
	}
	if st := n.Status(); st.Keys != 6 || st.Replica != n.ReplicaID() || st.Incarnation != 1 {
		t.Fatalf("Status = %+v", st)
	}
}

// A long listing walks the keys a chunk at a time: the same keys, in
// order, limits and cursors kept, expired keys skipped wherever they fall.
func TestKeysInChunks(t *testing.T) {
	defer func(c int) { listChunkKeys = c }(listChunkKeys)
	listChunkKeys = 3
	clk := newFakeClock()
	n, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: time.Hour})
	var want []KeyInfo
	for i := range 20 {
		k := fmt.Sprintf("a/%02d", i)
		if i%4 == 1 { // expires before the listing
			must(t, n.PutWith(k, i, WriteOptions{TTL: time.Second}))
			continue
		}
		must(t, n.Put(k, i))
		want = append(want, KeyInfo{k, TypeRegister})
	}
	must(t, n.Put("b", 1))
	clk.Advance(2 * time.Second)
	for _, c := range []struct {
		after string
		limit int
		want  []KeyInfo
	}{
		{"", 0, want},
		{"", 7, want[:7]},
		{"a/05", 0, want[4:]},
		{"a/05", 4, want[4:8]},
		{"a/19", 0, []KeyInfo{}},
	} {
		got, err := n.KeysAfter("a/", c.after, c.limit)
		must(t, err)
		if !reflect.DeepEqual(got, c.want) {
			t.Fatalf("KeysAfter(a/, %q, %d) = %v, want %v", c.after, c.limit, got, c.want)
		}
	}
}

func TestBatch(t *testing.T) {
	n, _ := openTest(t, nil)
	var b Batch
	b.Put("a", "x")
	b.Incr("c", 2)
	b.Incr("c", 3)
	b.SetAdd("s", "m")
	b.Update("d", Patch{Set: map[string]any{"f": 1}})
	if b.Len() != 5 {
		t.Fatalf("Len = %d", b.Len())
	}
	before := n.Status().NextOffset
	must(t, n.Commit(&b))
	if got := n.Status().NextOffset - before; got != 1 {
		t.Fatalf("batch took %d WAL records, want 1", got)
	}
	if v, _ := n.Get("c"); v.Data != int64(5) {
		t.Fatalf("counter after batch = %v", v.Data)
	}
	// A failing operation aborts the whole batch.
	digest := n.Digest()
	b.Reset()
	b.Put("new", 1)
	b.Incr("c", 1)
	b.Delete("a")
	b.SetAdd("a-is-gone", "z")
	b.Incr("s", 1) // s is a set
	err := n.Commit(&b)
	if !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "operation 4") {
		t.Fatalf("Commit = %v, want ErrWrongType at operation 4", err)
	}
	if n.Digest() != digest {
		t.Fatal("a failed batch changed the state")
	}
	if _, err := n.Get("new"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed batch left a value: %v", err)
	}
	// Operations see the earlier ones in the same batch.
	b.Reset()
	b.Put("p", 1)
	b.Delete("p")
	b.Incr("p", 4)
	must(t, n.Commit(&b))
	if v, _ := n.Get("p"); v.Type != TypeCounter || v.Data != int64(4) {
		t.Fatalf("p = %#v", v)
	}
	// An invalid operation is reported at Commit; nothing is applied.
	b.Reset()
	b.Put("q", 1)
	b.Put("", 1)
	if err := n.Commit(&b); !errors.Is(err, ErrInvalidKey) || !errors.Is(b.Err(), ErrInvalidKey) {
		t.Fatalf("Commit with an invalid op = %v", err)
	}
	if _, err := n.Get("q"); !errors.Is(err, ErrNotFound) {
		t.Fatal("invalid batch applied")
	}
	var empty Batch
	must(t, n.Commit(&empty))
}

func TestClosed(t *testing.T) {
	n, _ := openTest(t, nil)
	must(t, n.Put("a", 1))
	must(t, n.Close())
	must(t, n.Close()) // twice is fine
	var b Batch
	b.Put("a", 2)
	checks := map[string]error{
		"put":      n.Put("a", 2),
		"delete":   n.Delete("a"),
		"setadd":   n.SetAdd("s", "m"),
		"setrm":    n.SetRemove("s", "m"),
		"update":   n.Update("d", Patch{Enable: []string{"f"}}),
		"commit":   n.Commit(&b),
		"snapshot": n.Snapshot(),
		"err":      n.Err(),
	}
	_, checks["get"] = n.Get("a")
	_, checks["incr"] = n.Incr("c", 1)
	_, checks["keys"] = n.Keys("", 0)
	_, checks["siblings"] = n.Siblings("a")
	_, checks["subscribe"] = n.Subscribe(t.Context(), "")
	_, checks["subscribefrom"] = n.SubscribeFrom(t.Context(), "", 0)
	for op, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
	if st := n.Status(); !st.Closed {
		t.Errorf("Status after Close = %+v", st)
	}
}

func TestOptionsNotModified(t *testing.T) {
	opts := &Options{MaxBatchOps: 3}
	before := *opts
	openTest(t, opts)
	if !reflect.DeepEqual(*opts, before) {
		t.Fatalf("Open changed the options: %+v", *opts)
	}
	if _, err := Open(t.TempDir(), &Options{Sync: SyncPolicy(9)}); err == nil {
		t.Fatal("Open accepted an unknown sync policy")
	}
}

func TestDirectoryLocked(t *testing.T) {
	_, dir := openTest(t, nil)
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBatchOperationCap: a batch above MaxBatchOperations is refused whole.
func TestBatchOperationCap(t *testing.T) {
	n, _ := openTest(t, &Options{MaxBatchOperations: 3})
	var b Batch
	for i := 0; i < 4; i++ {
		b.Put(fmt.Sprintf("k%d", i), i)
	}
	if err := n.Commit(&b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Commit of 4 operations with a cap of 3 = %v", err)
	}
	if _, err := n.Get("k0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("part of a refused batch was applied: %v", err)
	}
	var ok Batch
	for i := 0; i < 3; i++ {
		ok.Put(fmt.Sprintf("k%d", i), i)
	}
	if err := n.Commit(&ok); err != nil {
		t.Fatal(err)
	}
}

// The state keeps the bytes a Put encoded (no copy), never the caller's:
// changing what was passed in, or what PutJSON answered, changes nothing
// stored.
func TestPutKeepsNoCallerBytes(t *testing.T) {
	n, _ := openTest(t, nil)
	raw := json.RawMessage(`{"a":[1,2,3]}`)
	must(t, n.Put("raw", raw))
	stored, err := n.PutJSON("json", raw)
	must(t, err)
	copy(raw, `{"b":[9,9,9]}`)
	copy(stored, `{"c":[7,7,7]}`) // PutJSON's answer is the caller's too
	for _, k := range []string{"raw", "json"} {
		_, v, err := n.GetJSON(k)
		must(t, err)
		if string(v) != `{"a":[1,2,3]}` {
			t.Fatalf("%s: %s", k, v)
		}
	}
}
