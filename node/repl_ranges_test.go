package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/crdt"
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
		o.SegmentBytes = 1 << 20 // so that snapshots can truncate the WAL
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
