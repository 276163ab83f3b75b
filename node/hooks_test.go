package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoaldb/shoal/crdt"
)

// recorder collects what a node's commit hook hands to replication.
type recorder struct {
	mu   sync.Mutex
	recs []committed
}

func record(n *Node) *recorder {
	r := &recorder{}
	n.setCommitHook(func(cs []committed) {
		r.mu.Lock()
		r.recs = append(r.recs, cs...)
		r.mu.Unlock()
	})
	return r
}

func (r *recorder) take() []committed {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.recs
	r.recs = nil
	return out
}

func TestReplicationHooksConverge(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 2))
	nodes := make([]*Node, 3)
	recs := make([]*recorder, 3)
	for i := range nodes {
		nodes[i], _ = openTest(t, &Options{Sync: SyncNever})
		recs[i] = record(nodes[i])
	}
	var sent []committed
	for round := range 5 {
		for i, n := range nodes {
			randomOps(t, n, rng, 40)
			cs := recs[i].take()
			for _, c := range cs {
				if c.From != "" {
					t.Fatalf("local record with From %q", c.From)
				}
			}
			sent = append(sent, cs...)
		}
		// Deliver everything so far to everyone, shuffled, some twice.
		for i, n := range nodes {
			batch := slices.Clone(sent)
			rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
			batch = append(batch, batch[:len(batch)/3]...)
			for _, c := range batch {
				if c.Op.Origin == n.replica {
					continue
				}
				if err := n.applyRemote(c.Record, fmt.Sprint("peer", round)); err != nil {
					t.Fatalf("seed %d: applyRemote: %v", seed, err)
				}
			}
			for _, c := range recs[i].take() { // forwarded remote records
				if c.From == "" || c.Op.Origin == n.replica {
					t.Fatalf("forwarded record: from %q origin %v", c.From, c.Op.Origin)
				}
			}
		}
	}
	d := nodes[0].Digest()
	for i, n := range nodes[1:] {
		if n.Digest() != d {
			t.Fatalf("seed %d: node %d digest differs", seed, i+1)
		}
	}
	if got := testutil.ToFloat64(nodes[0].m.remote.WithLabelValues("duplicate")); got == 0 {
		t.Fatal("no duplicate was counted")
	}
	// Remote records survive a restart like local ones.
	for _, n := range nodes {
		dir := n.Dir()
		must(t, n.Close())
		n2 := openAt(t, dir, &Options{Sync: SyncNever})
		if n2.Digest() != d {
			t.Fatal("digest changed across restart after remote records")
		}
	}
}

func TestSiblingsOfConcurrentWrites(t *testing.T) {
	a, _ := openTest(t, nil)
	b, _ := openTest(t, nil)
	ra, rb := record(a), record(b)
	must(t, a.Put("k", "from a"))
	must(t, b.Put("k", "from b"))
	for _, c := range ra.take() {
		must(t, b.applyRemote(c.Record, "a"))
	}
	for _, c := range rb.take() {
		must(t, a.applyRemote(c.Record, "b"))
	}
	if a.Digest() != b.Digest() {
		t.Fatal("digests differ")
	}
	va, _ := a.Get("k")
	vb, _ := b.Get("k")
	if va.Data != vb.Data {
		t.Fatalf("different winners: %v / %v", va.Data, vb.Data)
	}
	sa, err := a.Siblings("k")
	must(t, err)
	if len(sa) != 2 || sa[0].Data != va.Data || sa[0].Data == sa[1].Data {
		t.Fatalf("siblings = %+v (winner %v)", sa, va.Data)
	}
	origins := []string{sa[0].Origin, sa[1].Origin}
	slices.Sort(origins)
	want := []string{a.ReplicaID(), b.ReplicaID()}
	slices.Sort(want)
	if !slices.Equal(origins, want) {
		t.Fatalf("sibling origins %v, want %v", origins, want)
	}
	// A later write on either replica replaces both.
	must(t, a.Put("k", "resolved"))
	if s, _ := a.Siblings("k"); len(s) != 1 {
		t.Fatalf("siblings after resolving: %+v", s)
	}
}

func TestApplyRemoteRejectsGarbage(t *testing.T) {
	n, _ := openTest(t, nil)
	d := n.Digest()
	for _, b := range [][]byte{nil, []byte("garbage"), {0x81, 0xa1, 'v', 1}} {
		if err := n.applyRemote(b, "x"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("applyRemote(%q) = %v", b, err)
		}
	}
	if n.Digest() != d || n.Status().NextOffset != 0 {
		t.Fatal("garbage changed the node")
	}
	if got := testutil.ToFloat64(n.m.remote.WithLabelValues("invalid")); got != 3 {
		t.Fatalf("invalid counter = %v", got)
	}
}

func TestStateTransferRecords(t *testing.T) {
	src, _ := openTest(t, nil)
	dst, _ := openTest(t, nil)
	randomOps(t, src, rand.New(rand.NewPCG(5, 5)), 200)
	// dst has something src deleted since, and something of its own.
	must(t, dst.Put("zzz", 1))
	src.mu.RLock()
	keys := src.ks.Keys("", 0, 0)
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Key
	}
	mid := names[len(names)/2]
	part1 := src.ks.KeyState(names[:len(names)/2]...)
	part2 := src.ks.KeyState(names[len(names)/2:]...)
	ctx, applied := src.ks.Context(), src.ks.Applied()
	src.mu.RUnlock()
	for _, op := range []*Op{
		{V: OpVersion, Kind: OpStateRange, Origin: src.replica, Delta: part1, Lo: "", Hi: mid, Ctx: ctx},
		{V: OpVersion, Kind: OpStateRange, Origin: src.replica, Delta: part2, Lo: mid, Hi: "zz", Ctx: ctx},
		{V: OpVersion, Kind: OpContext, Origin: src.replica, Ctx: ctx, Applied: applied},
	} {
		rec, err := EncodeOp(op)
		must(t, err)
		must(t, dst.applyRemote(rec, "src"))
	}
	for _, k := range names {
		want, _ := src.Get(k)
		got, err := dst.Get(k)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("key %s after transfer: %v %v, want %v", k, got, err, want)
		}
	}
	dst.mu.RLock()
	missing := dst.ks.Applied().Missing(applied)
	dst.mu.RUnlock()
	if len(missing) != 0 {
		t.Fatalf("after the transfer dst still lacks %v", missing)
	}
	reopenSame(t, dst, nil, "state transfer records do not replay to the same state")
}

func TestDotIndex(t *testing.T) {
	var x dotIndex
	const a, b = crdt.ReplicaID(1), crdt.ReplicaID(2)
	for s := uint64(1); s <= 100; s++ { // one local write per record
		x.add(a, s, s, s-1)
	}
	x.add(b, 1, 3, 100) // a batch: three seqs in one record
	x.add(a, 101, 101, 102)
	x.add(b, 5, 5, 103) // seq 4 never arrived
	x.add(b, 4, 4, 104) // ...until now, out of order
	if got := len(x.runs[a]); got != 2 {
		t.Fatalf("local writes took %d runs, want 2", got)
	}
	check := func(r crdt.ReplicaID, from, to uint64, want []offRange, complete bool) {
		t.Helper()
		got, ok := x.lookup(r, from, to)
		if !slices.Equal(got, want) || ok != complete {
			t.Fatalf("lookup(%v, %d, %d) = %v %v, want %v %v", r, from, to, got, ok, want, complete)
		}
	}
	check(a, 10, 20, []offRange{{9, 19}}, true)
	check(a, 99, 101, []offRange{{98, 99}, {102, 102}}, true)
	check(a, 100, 105, []offRange{{99, 99}, {102, 102}}, false)
	check(b, 2, 5, []offRange{{100, 100}, {103, 104}}, true)
	check(b, 1, 9, []offRange{{100, 100}, {103, 104}}, false)
	x.truncate(50)
	check(a, 1, 60, []offRange{{50, 59}}, false)
	check(a, 51, 60, []offRange{{50, 59}}, true)
	snap := x.export()
	var y dotIndex
	y.load(snap)
	if got, ok := y.lookup(b, 1, 5); !ok || len(got) != 2 {
		t.Fatalf("loaded index lookup = %v %v", got, ok)
	}
}

func TestDotIndexAtRuntime(t *testing.T) {
	n, dir := openTest(t, &Options{SnapshotEveryOps: -1, SegmentBytes: 2 << 10})
	for i := range 300 {
		must(t, n.Put(fmt.Sprint("k", i%10), i))
	}
	rep := n.replica
	ranges, ok := n.index.lookup(rep, 1, 300)
	if !ok || len(ranges) != 1 || ranges[0] != (offRange{0, 299}) {
		t.Fatalf("index = %v %v", ranges, ok)
	}
	// The records it points at carry those dots.
	rec, err := n.wal.Read(150)
	must(t, err)
	op, err := DecodeOp(rec)
	must(t, err)
	if dots := op.Delta.Dots(); len(dots) != 1 || dots[0].First != 151 {
		t.Fatalf("record 150 carries %v", dots)
	}
	must(t, n.Snapshot())
	must(t, n.Put("x", 1))
	must(t, n.Snapshot()) // truncates below the first snapshot
	first := n.Status().FirstOffset
	if first == 0 {
		t.Fatal("no truncation")
	}
	if _, ok := n.index.lookup(rep, 1, 301); ok {
		t.Fatal("index claims truncated records")
	}
	if r, ok := n.index.lookup(rep, first+1, 301); !ok || r[0].First != first {
		t.Fatalf("index after truncation = %v %v", r, ok)
	}
	// Reopen: the index comes back from the snapshot and the replay.
	must(t, n.Close())
	n = openAt(t, dir, &Options{SnapshotEveryOps: -1, SegmentBytes: 2 << 10})
	if r, ok := n.index.lookup(rep, first+1, 301); !ok || r[0].First != first || r[len(r)-1].Last != 300 {
		t.Fatalf("index after reopen = %v %v", r, ok)
	}
}
