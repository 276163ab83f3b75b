package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
)

// sampleOps builds real deltas of every kind with a keyspace transaction.
func sampleOps(t testing.TB) []*Op {
	t.Helper()
	ks := crdt.NewKeyspace()
	const rep = crdt.ReplicaID(0xabcdef)
	var ops []*Op
	var seq uint64
	ts := crdt.MakeTimestamp(1_700_000_000_000, 0)
	step := func(f func(tx *crdt.Tx) (*crdt.Delta, error)) {
		tx := ks.Begin(rep, seq)
		d, err := f(tx)
		if err != nil {
			t.Fatal(err)
		}
		seq = tx.LastSeq()
		ks.Apply(d)
		ts++
		ops = append(ops, &Op{V: OpVersion, Kind: OpDelta, Origin: rep, Time: ts, Delta: d})
	}
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Put("reg", []byte(`{"a":1}`), ts) })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Incr("cnt", -4) })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.SetAdd("set", "x", "y") })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.SetRemove("set", "x") })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) {
		return tx.Update("doc", &crdt.Patch{Set: map[string][]byte{"f": []byte(`"v"`)}, Incr: map[string]int64{"n": 2},
			Enable: []string{"fl"}, Nested: map[string]*crdt.Patch{"sub": {Add: map[string][]string{"s": {"m"}}}}}, ts)
	})
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Delete("reg") })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Expire("cnt", ts+1<<30) })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Expire("set", ts+1<<31) })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Persist("set") })
	step(func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Incr("cnt", 1) }) // keeps the expiry
	step(func(tx *crdt.Tx) (*crdt.Delta, error) {
		a, err := tx.Put("b1", []byte(`true`), ts)
		if err != nil {
			return nil, err
		}
		b, err := tx.Incr("b2", 1)
		if err != nil {
			return nil, err
		}
		return crdt.JoinDeltas(a, b), nil
	})
	ops = append(ops,
		&Op{V: OpVersion, Kind: OpStateRange, Origin: rep, Time: ts, Delta: ks.KeyState("cnt", "set"), Lo: "a", Hi: "t", Ctx: ks.Context()},
		&Op{V: OpVersion, Kind: OpContext, Origin: rep, Time: ts, Ctx: ks.Context(), Applied: ks.Applied()},
	)
	return ops
}

func TestOpRoundTrip(t *testing.T) {
	a, b := crdt.NewKeyspace(), crdt.NewKeyspace()
	for _, op := range sampleOps(t) {
		rec, err := EncodeOp(op)
		must(t, err)
		got, err := DecodeOp(rec)
		if err != nil {
			t.Fatalf("%v: %v", op.Kind, err)
		}
		if got.V != op.V || got.Kind != op.Kind || got.Origin != op.Origin || got.Time != op.Time || got.Lo != op.Lo || got.Hi != op.Hi {
			t.Fatalf("%v: header fields differ: %+v vs %+v", op.Kind, got, op)
		}
		if (op.Delta == nil) != (got.Delta == nil) || op.Delta != nil && !got.Delta.Equal(op.Delta) {
			t.Fatalf("%v: delta differs after a msgpack round trip", op.Kind)
		}
		if op.Kind == OpDelta {
			a.Apply(op.Delta)
			b.Apply(got.Delta)
		}
	}
	if a.Digest() != b.Digest() {
		t.Fatal("applying decoded deltas gives another state")
	}
	// A whole state survives msgpack too (this is what snapshots hold).
	raw, err := msgpack.Marshal(a.Snapshot())
	must(t, err)
	var st crdt.Delta
	must(t, msgpack.Unmarshal(raw, &st))
	c, err := crdt.FromSnapshot(&st)
	must(t, err)
	if c.Digest() != a.Digest() {
		t.Fatal("state differs after a msgpack round trip")
	}
}

func TestDecodeOpRejects(t *testing.T) {
	good := sampleOps(t)[0]
	enc := func(mut func(op *Op)) []byte {
		op := *good
		mut(&op)
		b, err := msgpack.Marshal(&op)
		must(t, err)
		return b
	}
	rec, _ := EncodeOp(good)
	cases := map[string][]byte{
		"empty":          nil,
		"truncated":      rec[:len(rec)-1],
		"trailing":       append(append([]byte{}, rec...), 0xc0),
		"not a map":      {0x93, 1, 2, 3},
		"version 2":      enc(func(op *Op) { op.V = 2 }),
		"unknown kind":   enc(func(op *Op) { op.Kind = 9 }),
		"delta missing":  enc(func(op *Op) { op.Delta = nil }),
		"range no ctx":   enc(func(op *Op) { op.Kind = OpStateRange }),
		"empty range":    enc(func(op *Op) { op.Kind, op.Ctx, op.Lo, op.Hi = OpStateRange, &crdt.Context{}, "b", "a" }),
		"context no ctx": enc(func(op *Op) { op.Kind, op.Delta = OpContext, nil }),
		"invalid key": enc(func(op *Op) {
			d := *op.Delta
			d.Keys = map[string]*crdt.Entry{"\xff": d.Keys["reg"]}
			op.Delta = &d
		}),
		"dot outside context": enc(func(op *Op) {
			d := *op.Delta
			d.Ctx = crdt.Context{}
			op.Delta = &d
		}),
		"huge array":  {0x81, 0xa1, 'd', 0x81, 0xa1, 'o', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"huge string": {0x81, 0xa1, 'l', 0xdb, 0x7f, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		if _, err := DecodeOp(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeOp = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestCheckMsgpack(t *testing.T) {
	ok := [][]byte{
		{0xc0}, {0x7f}, {0xe0}, {0xa1, 'x'}, {0x92, 1, 2}, {0x81, 0xa1, 'k', 0x90},
		{0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, {0xd4, 1, 2}, {0xc7, 1, 5, 0xff}, {0xdc, 0, 1, 0xc3},
	}
	for _, b := range ok {
		if err := checkMsgpack(b, 8); err != nil {
			t.Errorf("%x: %v", b, err)
		}
	}
	bad := [][]byte{
		{}, {0xc1}, {0x92, 1}, {0xa2, 'x'}, {0xdd, 0, 0, 0, 2, 1}, {0xdf, 0xff, 0xff, 0xff, 0xff},
		{0xc6, 0, 0, 0, 5, 1}, {0xc0, 0xc0}, {0xcb, 0}, {0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0},
	}
	for _, b := range bad {
		if err := checkMsgpack(b, 8); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x accepted: %v", b, err)
		}
	}
}

// FuzzDecodeOp: arbitrary record bytes never panic the decoder, and what
// decodes re-encodes, decodes again and applies without panicking.
func FuzzDecodeOp(f *testing.F) {
	for _, op := range sampleOps(f) {
		rec, err := EncodeOp(op)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	f.Add([]byte{0x81, 0xa1, 'd', 0x81, 0xa1, 'o', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkMsgpack(b, maxOpDepth) == nil {
			if fast, ok := fastDecodeOp(b); ok {
				var lib Op
				if err := msgpack.Unmarshal(b, &lib); err != nil {
					t.Fatalf("fast decoder accepted what the library refuses: %v", err)
				}
				if !reflect.DeepEqual(fast, &lib) {
					t.Fatalf("fast decoder and library disagree:\n%+v\n%+v", fast, &lib)
				}
			}
		}
		op, err := DecodeOp(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		rec, err := EncodeOp(op)
		if err != nil {
			t.Fatalf("decoded op does not encode: %v", err)
		}
		if _, err := DecodeOp(rec); err != nil {
			t.Fatalf("re-encoded op does not decode: %v", err)
		}
		ks := crdt.NewKeyspace()
		switch op.Kind {
		case OpDelta:
			ks.Covers(op.Delta)
			ks.Apply(op.Delta)
			op.Delta.Dots()
		case OpStateRange:
			ks.JoinRange(op.Lo, op.Hi, op.Delta, op.Ctx)
		case OpContext:
			ks.MergeContext(op.Ctx)
			if op.Applied != nil {
				ks.MergeApplied(op.Applied)
			}
		}
		for _, k := range ks.Keys("", 0, 0) {
			if v, ok := ks.Get(k.Key, 0); ok {
				convertView(&v) // may fail on a bad register value, never panic
			}
		}
		ks.Digest()
	})
}

// FuzzDecodeSnapshot: arbitrary snapshot bytes never panic; with a valid
// header and checksum the body goes through the decoder and FromSnapshot.
func FuzzDecodeSnapshot(f *testing.F) {
	dir := f.TempDir()
	n, err := Open(dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	for i, op := range []string{"a", "b", "c"} {
		n.Put(op, i)
		n.SetAdd("s", op)
	}
	n.Update("d", Patch{Enable: []string{"x"}, Nested: map[string]Patch{"n": {Incr: map[string]int64{"c": 1}}}})
	if err := n.Snapshot(); err != nil {
		f.Fatal(err)
	}
	n.Close()
	files, _ := filepath.Glob(filepath.Join(dir, snapDir, "*"+snapExt))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b[snapHeaderSize:], true)
	}
	f.Add([]byte(strings.Repeat("\x00", 40)), false)
	f.Fuzz(func(t *testing.T, b []byte, bodyOnly bool) {
		var hdr, body []byte
		if bodyOnly {
			// Give the body a valid header, so the fuzzer reaches the decoder.
			body = b
			hdr = make([]byte, snapHeaderSize)
			copy(hdr, snapMagic)
			binary.LittleEndian.PutUint16(hdr[8:], snapVersion)
			binary.LittleEndian.PutUint64(hdr[24:], uint64(len(body)))
			binary.LittleEndian.PutUint32(hdr[12:], crc32.Update(crc32.Checksum(body, castagnoli), castagnoli, hdr[16:32]))
		} else {
			if len(b) < snapHeaderSize {
				return
			}
			hdr, body = b[:snapHeaderSize], b[snapHeaderSize:]
		}
		if checkMsgpack(body, maxOpDepth) == nil {
			if fast, ok := fastDecodeSnapshot(body); ok {
				var lib snapshotBody
				if err := msgpack.Unmarshal(body, &lib); err != nil {
					t.Fatalf("fast snapshot decoder accepted what the library refuses: %v", err)
				}
				if !reflect.DeepEqual(fast, &lib) {
					t.Fatalf("fast snapshot decoder and library disagree")
				}
			}
		}
		s, err := decodeSnapshot(hdr, body)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if ks, err := crdt.FromSnapshot(s.State); err == nil {
			ks.Digest()
			ks.Keys("", 0, 0)
		}
		var x dotIndex
		x.load(s.Index)
		x.lookup(1, 1, 10)
		x.truncate(5)
	})
}

func libraryDecode(t testing.TB, b []byte) *Op {
	t.Helper()
	var op Op
	if err := msgpack.Unmarshal(b, &op); err != nil {
		t.Fatalf("library decode: %v", err)
	}
	return &op
}

// The hand-written codec and the msgpack library read each other's output
// and agree on every field (reflect.DeepEqual tells nil from empty).
func TestCodecMatchesLibrary(t *testing.T) {
	ops := sampleOps(t)
	n, _ := openTest(t, &Options{Sync: SyncNever})
	rec := record(n)
	randomOps(t, n, rand.New(rand.NewPCG(11, 11)), 300)
	must(t, n.Update("deep", Patch{Nested: map[string]Patch{"a": {Nested: map[string]Patch{"b": {
		Add: map[string][]string{"s": {"x", "y"}}, Enable: []string{"f"}, Incr: map[string]int64{"c": -1 << 40}}}}}}))
	must(t, n.Put("big", strings.Repeat("x", 70000)))
	must(t, n.Delete("deep"))
	for _, c := range rec.take() {
		ops = append(ops, c.Op)
	}
	for i, op := range ops {
		fast, err := EncodeOp(op)
		must(t, err)
		lib, err := encodeOpLibrary(op)
		must(t, err)
		want := libraryDecode(t, lib)
		if got := libraryDecode(t, fast); !reflect.DeepEqual(got, want) {
			t.Fatalf("op %d: the library reads the fast encoding differently:\n%+v\n%+v", i, got, want)
		}
		for name, b := range map[string][]byte{"fast": fast, "library": lib} {
			got, ok := fastDecodeOp(b)
			if !ok {
				t.Fatalf("op %d: fast decoder refused the %s encoding", i, name)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("op %d: fast decoder reads the %s encoding differently:\n%+v\n%+v", i, name, got, want)
			}
		}
		if again, _ := EncodeOp(op); !bytes.Equal(again, fast) {
			t.Fatalf("op %d: encoding is not deterministic", i)
		}
	}
}

// The fast snapshot decoder reads what writeSnapshot (the msgpack
// library) writes, exactly as the library would.
func TestSnapshotDecoderMatchesLibrary(t *testing.T) {
	n, dir := openTest(t, &Options{SnapshotEveryOps: -1})
	randomOps(t, n, rand.New(rand.NewPCG(13, 13)), 400)
	must(t, n.Snapshot())
	files, _ := filepath.Glob(filepath.Join(dir, snapDir, "*"+snapExt))
	if len(files) != 1 {
		t.Fatalf("snapshots: %v", files)
	}
	b, err := os.ReadFile(files[0])
	must(t, err)
	body := b[snapHeaderSize:]
	fast, ok := fastDecodeSnapshot(body)
	if !ok {
		t.Fatal("fast decoder refused a snapshot")
	}
	var lib snapshotBody
	must(t, msgpack.Unmarshal(body, &lib))
	if !reflect.DeepEqual(fast, &lib) {
		t.Fatal("fast decoder and library disagree on a snapshot")
	}
	if len(fast.Index) == 0 || len(fast.State.Keys) == 0 {
		t.Fatalf("snapshot without index or keys: %d %d", len(fast.Index), len(fast.State.Keys))
	}
}
