package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/gossip"
)

// A replica that was down while its peer changed a few keys of a large
// store, and truncated the WAL that held those changes, catches up with
// the key ranges that differ: a small fraction of the whole state, which a
// new, empty replica still gets in full.
func TestReplicationCatchUpByRangeSums(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const keys = 20_000
	c := newReplCluster(t, 2, func(i int, o *Options) {
		o.SegmentBytes = 1 << 20  // so that snapshots can truncate the WAL
		o.StateCheckInterval = -1 // the catch-up's traffic alone is measured
	})
	var b Batch
	for i := range keys {
		b.Put(fmt.Sprintf("key/%05d", i), strings.Repeat("v", 40))
		if b.Len() == 1000 {
			must(t, c.nodes[0].Commit(&b))
			b.Reset()
		}
	}
	c.waitConverged(60 * time.Second)
	must(t, c.nodes[1].Close())

	// Missed: updates and deletes spread over the key space, new keys.
	for i := range 40 {
		b.Put(fmt.Sprintf("key/%05d", i*keys/40+7), "changed")
		b.Put(fmt.Sprintf("new/%03d", i), i)
	}
	for i := range 10 {
		b.Delete(fmt.Sprintf("key/%05d", i*keys/10+3))
	}
	must(t, c.nodes[0].Commit(&b))
	b.Reset()
	// Enough writes to one key to fill segments, then two snapshots: the
	// second truncates the WAL below the first, so the missed records go.
	for i := range 2500 {
		must(t, c.nodes[0].Put("filler", fmt.Sprintf("%d%s", i, strings.Repeat("f", 1000))))
	}
	must(t, c.nodes[0].Snapshot())
	must(t, c.nodes[0].Put("after/first-snapshot", 1))
	must(t, c.nodes[0].Snapshot())
	if first := c.nodes[0].wal.FirstOffset(); first == 0 {
		t.Fatalf("WAL not truncated (first offset %d)", first)
	}

	r := c.nodes[0].repl.Load()
	c.nodes[1] = c.open(1)
	c.join(1)
	c.waitConverged(60 * time.Second)
	replEventually(t, 30*time.Second, func() bool {
		return len(c.nodes[1].appliedSet().Missing(c.nodes[0].appliedSet())) == 0
	}, "the restarted node never recorded the sender's operations as applied")
	for _, k := range []string{"key/00003", "key/00007"} {
		if _, err := c.nodes[1].Get(k); (k == "key/00003") != errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) on the restarted node: %v", k, err)
		}
	}
	if got := counterValue(t, r.m.served.WithLabelValues("summary")); got < 1 {
		t.Fatal("no summary was sent: the catch-up did not go through range sums")
	}
	if got := counterValue(t, r.m.served.WithLabelValues("ranges")); got < 1 {
		t.Fatal("no key ranges were sent after the summary")
	}
	if got := counterValue(t, r.m.served.WithLabelValues("state")); got != 0 {
		t.Fatalf("%v whole-state transfers to a peer that held most of the state", got)
	}
	rangeKeys := counterValue(t, r.m.sentKeys)
	rangeBytes := counterValue(t, r.m.stateBytes)

	// The whole state, for comparison: a new, empty replica (n1 closed, so
	// that it pulls from n0 only).
	must(t, c.nodes[1].Close())
	c.dirs = append(c.dirs, t.TempDir())
	c.nodes = append(c.nodes, c.open(2))
	c.join(2)
	c.waitConverged(60*time.Second, 0, 2)
	if got := counterValue(t, r.m.served.WithLabelValues("state")); got < 1 {
		t.Fatal("the new replica did not bootstrap by a whole-state transfer")
	}
	fullKeys := counterValue(t, r.m.sentKeys) - rangeKeys
	fullBytes := counterValue(t, r.m.stateBytes) - rangeBytes
	t.Logf("catch-up by ranges: %.0f keys, %.0f state bytes; whole state: %.0f keys, %.0f bytes (ratio %.3f)",
		rangeKeys, rangeBytes, fullKeys, fullBytes, rangeBytes/fullBytes)
	if fullKeys < keys {
		t.Fatalf("whole state sent %.0f keys, want at least %d", fullKeys, keys)
	}
	if rangeKeys > keys/5 || rangeBytes > fullBytes/5 {
		t.Fatalf("catch-up sent %.0f keys in %.0f bytes: not a small part of the whole state (%.0f keys, %.0f bytes)",
			rangeKeys, rangeBytes, fullKeys, fullBytes)
	}
}

func TestSummaryCodec(t *testing.T) {
	bounds := []string{"a", "b/1", "zz"}
	sums := [][16]byte{{1}, {2}, {3}, {4}}
	gb, gs, err := decodeSummary(encodeSummary(bounds, sums))
	must(t, err)
	if fmt.Sprint(gb, gs) != fmt.Sprint(bounds, sums) {
		t.Fatalf("round trip: %q %v", gb, gs)
	}
	// A summary travels as an Op; the hand-written codec hands it to the
	// library both ways.
	op := &Op{V: OpVersion, Kind: OpSummary, Origin: 7, Time: 9, Ctx: &crdt.Context{}, Applied: &crdt.Context{},
		Sums: encodeSummary(bounds, sums)}
	rec, err := EncodeOp(op)
	must(t, err)
	got, err := DecodeOp(rec)
	must(t, err)
	if got.Kind != OpSummary || string(got.Sums) != string(op.Sums) {
		t.Fatalf("summary op round trip: kind %v, %d bytes of sums, want %d", got.Kind, len(got.Sums), len(op.Sums))
	}
	op.Sums = nil
	rec, err = encodeOpLibrary(op)
	must(t, err)
	if _, err := DecodeOp(rec); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("summary without sums: got %v, want ErrCorrupt", err)
	}
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"unsorted":    encodeSummary([]string{"b", "a"}, make([][16]byte, 3)),
		"empty bound": encodeSummary([]string{""}, make([][16]byte, 2)),
		"short sums":  encodeSummary(bounds, sums[:3]),
		"huge count":  {0xff, 0xff, 0xff, 0x7f},
	} {
		if _, _, err := decodeSummary(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeSummary(f *testing.F) {
	f.Add(encodeSummary([]string{"a", "b"}, make([][16]byte, 3)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		bounds, sums, err := decodeSummary(b)
		if err == nil && len(sums) != len(bounds)+1 {
			t.Fatalf("%d sums for %d bounds", len(sums), len(bounds))
		}
	})
}

func TestDigestRanges(t *testing.T) {
	enc := func(ranges ...string) []byte {
		b, err := encodeDigest(&syncDigest{V: digestVersion, Ranges: ranges, RangeCtx: &crdt.Context{}, RangeApplied: &crdt.Context{}})
		must(t, err)
		return b
	}
	if _, err := decodeDigest(enc("a", "b", "c", "")); err != nil {
		t.Fatalf("valid ranges: %v", err)
	}
	for _, bad := range [][]string{{"a"}, {"b", "a"}, {"a", "", "b", "c"}, {"a", "c", "b", "d"}} {
		if _, err := decodeDigest(enc(bad...)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("ranges %q: got %v, want ErrCorrupt", bad, err)
		}
	}
}

// Two replicas with the same applied set and different states (here a key
// joined into one of them without its operation, as a delta that lands
// during a state transfer after its key's range can leave) are repaired by
// range sums: the applied sets alone would never show it.
func TestReplicationRepairsDivergenceVectorsCannotSee(t *testing.T) {
	c := newReplCluster(t, 2, nil)
	for i := range 100 {
		must(t, c.nodes[0].Put(fmt.Sprintf("k/%03d", i), i))
	}
	c.waitConverged(30 * time.Second)

	other := crdt.NewKeyspace()
	d, err := other.Begin(0xabcdef, 0).Put("k/050x", []byte(`"ghost"`), crdt.MakeTimestamp(1, 0))
	must(t, err)
	other.Apply(d)
	n1 := c.nodes[1]
	n1.mu.Lock()
	n1.ks.Apply(other.KeyState("k/050x")) // a state: no operation marked applied
	n1.mu.Unlock()
	if c.nodes[0].Digest() == n1.Digest() {
		t.Fatal("the injected key did not change the state")
	}

	c.waitConverged(30 * time.Second)
	if _, err := c.nodes[0].Get("k/050x"); err != nil {
		t.Fatalf("the diverging key did not reach n0: %v", err)
	}
	r := n1.repl.Load()
	if got := counterValue(t, r.m.served.WithLabelValues("summary")); got < 1 {
		t.Fatal("n1 sent no summary")
	}
	if got := counterValue(t, r.m.served.WithLabelValues("ranges")); got < 1 {
		t.Fatal("n1 sent no key ranges")
	}
	if keys := counterValue(t, r.m.sentKeys); keys > 50 {
		t.Fatalf("the repair sent %v keys of 101", keys)
	}
}

// injectState joins d into nd's state behind the node's back (a test's way
// to make a divergence the applied sets cannot show), and ctx into its
// context.
func injectState(nd *Node, d *crdt.Delta, ctx *crdt.Context) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if d != nil {
		nd.ks.Apply(d)
	}
	nd.ks.MergeContext(ctx)
}

// ghost returns the state of one register at key written by a replica no
// node knows, as a delta that marks no operation applied.
func ghost(t testing.TB, replica crdt.ReplicaID, key string) (*crdt.Delta, *crdt.Context) {
	t.Helper()
	ks := crdt.NewKeyspace()
	d, err := ks.Begin(replica, 0).Put(key, []byte(`"ghost"`), crdt.MakeTimestamp(1, 0))
	must(t, err)
	ks.Apply(d)
	return ks.KeyState(key), ks.Context()
}

// A divergence the applied sets cannot show, made while every replica
// keeps writing (so that their applied sets are never equal when they
// pull), is repaired by the periodic state comparison within its bound
// (repl.go: 2 × StateCheckInterval + 3 × AntiEntropyInterval, 3.4s here,
// plus the transfer; polled with a far longer deadline, never timed). Three divergences: n2 shows a value n0 and n1 saw
// removed (what a delta landing during a state transfer used to leave); n1
// holds a value no one else saw; n0 holds one among the keys everyone
// writes all the time, so that operations in flight always touch its
// range.
func TestReplicationRepairsDivergenceUnderContinuousWrites(t *testing.T) {
	const checkEvery = 200 * time.Millisecond
	c := newReplCluster(t, 3, func(i int, o *Options) { o.StateCheckInterval = checkEvery })
	var b Batch
	for i := range 400 {
		b.Put(fmt.Sprintf("k/%03d", i), i)
	}
	must(t, c.nodes[0].Commit(&b))
	c.waitConverged(30 * time.Second)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("hot/%d", j%5)
				if j%3 == 0 {
					key = fmt.Sprintf("k/%03d", (j*7+i*131)%400)
				}
				if err := nd.Put(key, j); err != nil {
					t.Errorf("n%d: Put: %v", i, err)
					return
				}
			}
		}()
	}
	var once sync.Once
	stopWriters := func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
	defer stopWriters()

	removed, removedCtx := ghost(t, 0xa1, "k/100x")
	injectState(c.nodes[2], removed, removedCtx)
	injectState(c.nodes[0], nil, removedCtx)
	injectState(c.nodes[1], nil, removedCtx)
	unseen, unseenCtx := ghost(t, 0xa2, "k/300x")
	injectState(c.nodes[1], unseen, unseenCtx)
	hot, hotCtx := ghost(t, 0xa3, "hot/2x")
	injectState(c.nodes[0], hot, hotCtx)

	start := time.Now()
	has := func(i int, key string) bool {
		_, err := c.nodes[i].Get(key)
		return err == nil
	}
	replEventually(t, 30*time.Second, func() bool {
		for i := range c.nodes {
			if has(i, "k/100x") || !has(i, "k/300x") || !has(i, "hot/2x") {
				return false
			}
		}
		return true
	}, "divergence not repaired: %v", lazy(func() string {
		return fmt.Sprintf("k/100x on %v, k/300x on %v, hot/2x on %v", c.holders("k/100x"), c.holders("k/300x"), c.holders("hot/2x"))
	}))
	t.Logf("repaired under continuous writes in %v (comparison every %v)", time.Since(start).Round(time.Millisecond), checkEvery)
	for i, nd := range c.nodes {
		r := nd.repl.Load()
		if got := counterValue(t, r.m.served.WithLabelValues("state")); got != 0 {
			t.Errorf("n%d sent its whole state %v times", i, got)
		}
		t.Logf("n%d served: check %v, summary %v, ranges %v, ops %v, nothing %v; check ranges: differ %v, diverged %v; keys sent %v", i,
			counterValue(t, r.m.served.WithLabelValues("check")), counterValue(t, r.m.served.WithLabelValues("summary")),
			counterValue(t, r.m.served.WithLabelValues("ranges")), counterValue(t, r.m.served.WithLabelValues("ops")),
			counterValue(t, r.m.served.WithLabelValues("nothing")),
			counterValue(t, r.m.checkRanges.WithLabelValues("differ")), counterValue(t, r.m.checkRanges.WithLabelValues("diverged")),
			counterValue(t, r.m.sentKeys))
	}
	stopWriters()
	c.waitConverged(30 * time.Second)
}

// lazy formats as what f returns when printed.
type lazy func() string

func (f lazy) String() string { return f() }

// The receiving side of a periodic state comparison, driven by hand: a
// summary from a peer whose operations we all hold. A differing range that
// operations we applied since the summary do not explain is asked for at
// once, with an empty closing context; one they explain is asked for only
// if it differs at the next comparison too; records sent before the
// summary in the same batch are applied before it is compared.
func TestStateCheckSummary(t *testing.T) {
	a, _ := openTest(t, &Options{Sync: SyncNever})
	gc := gossip.DefaultLocalConfig()
	gc.Name = "b"
	b, _ := openTest(t, &Options{Sync: SyncNever, Gossip: gc})
	ra, rb := &replicator{n: a}, b.repl.Load()
	peerA := gossip.Peer{Name: "a"}
	fromA := record(a)
	var batch Batch
	for i := range 40 {
		batch.Put(fmt.Sprintf("k/%02d", i), i)
	}
	must(t, a.Commit(&batch))
	for _, c := range fromA.take() {
		must(t, b.applyRemote(c.Record, "a"))
	}
	summary := func() []byte {
		op, err := ra.summary()
		must(t, err)
		rec, err := EncodeOp(op)
		must(t, err)
		return rec
	}
	wanted := func() *rangeRequest {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		p := rb.peers["a"]
		if p == nil {
			return nil
		}
		w := p.want
		p.want = nil
		return w
	}

	// b's own write (a lacks it) explains the range of k/05; a value a
	// never saw at k/30x does not.
	must(t, b.Put("k/05", "b's"))
	d, ctx := ghost(t, 0xa1, "k/30x")
	injectState(b, d, ctx)
	must(t, rb.Deliver(peerA, gossip.SourceSync, [][]byte{summary()}))
	w := wanted()
	if w == nil || len(w.ranges) != 1 || !inRange(w.ranges[0], "k/30x") || inRange(w.ranges[0], "k/05") {
		t.Fatalf("first comparison asked for %+v, want the range of k/30x only", w)
	}
	if !w.repair || w.ctx.Empty() || !w.applied.Empty() {
		t.Fatalf("a check's request: repair %v, context %v, applied %v; want a repair under the summary's context, no applied set",
			w.repair, w.ctx, w.applied)
	}
	// Still different at the next comparison: asked for then.
	must(t, rb.Deliver(peerA, gossip.SourceSync, [][]byte{summary()}))
	if w := wanted(); w == nil || !slicesAnyInRange(w.ranges, "k/05") {
		t.Fatalf("second comparison asked for %+v, want the range of k/05 too", w)
	}
	// a's write arrives in the same batch as its summary: compared after
	// it, so it explains nothing and differs in nothing.
	must(t, a.Put("k/20", "a's"))
	var recs [][]byte
	for _, c := range fromA.take() {
		recs = append(recs, c.Record)
	}
	toA := record(b)
	must(t, b.Put("k/05", "b's again")) // so that a gets b's writes
	for _, c := range toA.take() {
		must(t, a.applyRemote(c.Record, "b"))
	}
	must(t, rb.Deliver(peerA, gossip.SourceSync, append(recs, summary())))
	if w := wanted(); w == nil || len(w.ranges) != 1 || !inRange(w.ranges[0], "k/30x") || !w.repair {
		t.Fatalf("third comparison asked for %+v, want the range of k/30x only", w)
	}
}

func inRange(kr keyRange, key string) bool {
	return kr.Lo <= key && (kr.Hi == "" || key < kr.Hi)
}

func slicesAnyInRange(rs []keyRange, key string) bool {
	for _, kr := range rs {
		if inRange(kr, key) {
			return true
		}
	}
	return false
}

// A summary none of whose ranges differ from our state, from a peer that
// applied operations we lack (here a write and the delete of it, gone from
// its WAL), ends like a transfer: its context and applied set are
// recorded (through the transfer gate), and the states are equal.
func TestSummaryWithNoDifferingRange(t *testing.T) {
	a, _ := openTest(t, &Options{Sync: SyncNever})
	gc := gossip.DefaultLocalConfig()
	gc.Name = "b"
	b, _ := openTest(t, &Options{Sync: SyncNever, Gossip: gc})
	fromA := record(a)
	for i := range 10 {
		must(t, a.Put(fmt.Sprintf("k/%d", i), i))
	}
	for _, c := range fromA.take() {
		must(t, b.applyRemote(c.Record, "a"))
	}
	must(t, a.Put("gone", 1))
	must(t, a.Delete("gone"))
	op, err := (&replicator{n: a}).summary()
	must(t, err)
	rec, err := EncodeOp(op)
	must(t, err)
	if len(b.appliedSet().Missing(a.appliedSet())) == 0 {
		t.Fatal("b lacks nothing")
	}
	must(t, b.repl.Load().Deliver(gossip.Peer{Name: "a"}, gossip.SourceSync, [][]byte{rec}))
	if missing := b.appliedSet().Missing(a.appliedSet()); len(missing) != 0 {
		t.Fatalf("b still lacks %v", missing)
	}
	if a.Digest() != b.Digest() {
		t.Fatal("states differ")
	}
	if got := testutil.ToFloat64(b.m.transferHeld); got != 0 {
		t.Fatalf("the gate holds %v deltas after the summary", got)
	}
}

// A summary sums the keys a chunk at a time and lets writes commit between
// the chunks; what it ends with is still one instant of the state: its
// sums are those of the state with its context and applied set, writes
// made while it ran (before and after its cursor, creations and deletes)
// included.
func TestSummaryLetsWritesIn(t *testing.T) {
	n, _ := openTest(t, &Options{Sync: SyncNever})
	var batch Batch
	for i := range 300 {
		batch.Put(fmt.Sprintf("k/%03d", i), i)
	}
	must(t, n.Commit(&batch))
	r := &replicator{n: n}
	defer func(c int) { summaryChunkKeys, scanPaused = c, nil }(summaryChunkKeys)
	summaryChunkKeys = 16
	pauses := 0
	scanPaused = func() {
		pauses++
		writeBetweenChunks(t, n, pauses)
	}
	op, err := r.summary()
	must(t, err)
	scanPaused = nil
	if pauses < 10 {
		t.Fatalf("the summary paused %d times for 300+ keys in chunks of 16", pauses)
	}
	bounds, sums, err := decodeSummary(op.Sums)
	must(t, err)
	n.mu.RLock()
	want, applied := n.ks.RangeSums(bounds), n.ks.Applied()
	n.mu.RUnlock()
	if !slices.Equal(sums, want) {
		t.Fatal("the summary's sums are not those of the state it ended at")
	}
	if !applied.Equal(op.Applied) {
		t.Fatalf("the summary's applied set %v, the state's %v", op.Applied, applied)
	}
	// The comparison (the side that asks) sums in chunks too.
	scanPaused = func() { must(t, n.Put("k/000", "again")) }
	differ, _, _ := r.compareSummary(bounds, sums, op)
	scanPaused = nil
	if len(differ) != 1 || !inRange(differ[0], "k/000") {
		t.Fatalf("compared with the state before its own writes: differing ranges %+v, want only that of k/000", differ)
	}
}

// A state transfer lists and sends a range's keys a chunk at a time, with
// writes going on between the chunks; the receiver, given the transfer and
// then the records of those writes, ends equal to the sender.
func TestStateTransferInChunks(t *testing.T) {
	defer func(c int) { stateChunkKeys = c }(stateChunkKeys)
	stateChunkKeys = 7
	a, _ := openTest(t, &Options{Sync: SyncNever})
	gc := gossip.DefaultLocalConfig()
	gc.Name = "b"
	b, _ := openTest(t, &Options{Sync: SyncNever, Gossip: gc})
	rb := b.repl.Load()
	var batch Batch
	for i := range 100 {
		batch.Put(fmt.Sprintf("k/%03d", i), i)
	}
	must(t, a.Commit(&batch))
	fromA := record(a)
	var recs [][]byte
	_, sent, _, err := a.writeState(context.Background(), func(rec []byte) error {
		recs = append(recs, rec)
		i := len(recs)
		must(t, a.Put(fmt.Sprintf("k/%03d", (i*37)%100), "during")) // behind or ahead of the chunks
		must(t, a.Put(fmt.Sprintf("k/%03dx", (i*53)%100), "new"))   // a key created meanwhile
		if err := a.Delete(fmt.Sprintf("k/%03d", (i*71)%100)); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return nil
	}, wholeState, nil, nil, nil)
	must(t, err)
	if len(recs) < 100/7 || sent < 90 {
		t.Fatalf("%d records, %d keys sent: want the state in chunks of 7 keys", len(recs), sent)
	}
	must(t, rb.Deliver(gossip.Peer{Name: "a"}, gossip.SourceSync, recs))
	for _, c := range fromA.take() { // what serve sends by record after a transfer
		must(t, b.applyRemote(c.Record, "a"))
	}
	if a.Digest() != b.Digest() {
		t.Fatalf("after the transfer and the writes made during it: digests differ\n a %v\n b %v", snapshotValues(t, a), snapshotValues(t, b))
	}
}

// writeBetweenChunks makes the i-th round of writes a test makes while a
// scan or a copy of the 300 keys k/000..k/299 pauses: a change to a key
// before or after its cursor, a new key, a delete.
func writeBetweenChunks(t *testing.T, n *Node, i int) {
	t.Helper()
	i *= 7
	must(t, n.Put(fmt.Sprintf("k/%03d", i%300), "changed"))
	must(t, n.Put(fmt.Sprintf("k/%03dx", (i*13)%300), "new"))
	if err := n.Delete(fmt.Sprintf("k/%03d", (i*31)%300)); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// TestCheckAfterSpreads: the next comparison with a peer falls due within
// a period, never later, and at spread-out times, so that the comparisons
// with many peers (each a walk over every key) do not all run at once.
func TestCheckAfterSpreads(t *testing.T) {
	r := &replicator{checkEvery: 10 * time.Second}
	now := time.Now()
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		d := r.checkAfter(now).Sub(now)
		if d < r.checkEvery*3/4 || d > r.checkEvery {
			t.Fatalf("due %v after the last comparison, want within [%v, %v]", d, r.checkEvery*3/4, r.checkEvery)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < r.checkEvery/5 {
		t.Errorf("1,000 comparisons fell due within %v of each other, want them spread over ~%v", hi-lo, r.checkEvery/4)
	}
	lo, hi = time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		d := r.firstCheckAfter(now).Sub(now)
		if d < r.checkEvery/4 || d > r.checkEvery {
			t.Fatalf("first comparison due %v after we heard of the peer, want within [%v, %v]", d, r.checkEvery/4, r.checkEvery)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < r.checkEvery/2 {
		t.Errorf("1,000 first comparisons fell due within %v of each other, want them spread over ~%v", hi-lo, r.checkEvery*3/4)
	}
}
