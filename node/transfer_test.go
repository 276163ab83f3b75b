package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoaldb/shoal/crdt"
)

// Scenario 6 of issue 9, driven record by record: replica 0 writes k;
// replica 1 receives it and deletes k; replica 2 is brought up to date by
// a state transfer from replica 1 while the old write of k arrives from
// replica 0 after the range that holds k was joined. The deleted value
// must not come back on replica 2, not even while the transfer runs, and
// replica 2 must end with replica 1's state.
func TestTransferNothingDeletedComesBack(t *testing.T) {
	n0, _ := openTest(t, &Options{Sync: SyncNever})
	n1, _ := openTest(t, &Options{Sync: SyncNever})
	n2, _ := openTest(t, &Options{Sync: SyncNever})
	rec0 := record(n0)
	must(t, n0.Put("k", "old"))
	write := rec0.take()[0].Record
	must(t, n1.applyRemote(write, "n0"))
	must(t, n1.Delete("k"))
	must(t, n1.Put("z", "later range"))

	// Two ranges: [, m) holds k, [m, ) holds z; then the context.
	recs := stateRecords(t, n1, keyRange{Hi: "m"}, keyRange{Lo: "m"})
	if len(recs) != 3 {
		t.Fatalf("%d transfer records, want 3", len(recs))
	}
	must(t, n2.applyRemote(recs[0], "n1"))
	must(t, n2.applyRemote(write, "n0")) // the old write, after k's range
	if v, err := n2.Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("during the transfer, k came back on n2: %v %v", v.Data, err)
	}
	must(t, n2.applyRemote(recs[1], "n1"))
	must(t, n2.applyRemote(recs[2], "n1"))
	if v, err := n2.Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the transfer, k came back on n2: %v %v", v.Data, err)
	}
	if _, err := n2.Get("z"); err != nil {
		t.Fatalf("z after the transfer: %v", err)
	}
	if !n2.appliedSet().Equal(n1.appliedSet()) {
		t.Fatalf("applied sets differ: n1 %v, n2 %v", n1.appliedSet(), n2.appliedSet())
	}
	if n2.Digest() != n1.Digest() {
		t.Fatal("n2's state differs from n1's after the transfer")
	}
	// The same after a restart: the WAL holds what was applied, in order.
	reopenSame(t, n2, &Options{Sync: SyncNever}, "n2's WAL does not hold what it applied, in order")
}

// The gate holds back only deltas that touch the ranges the transfer has
// joined; refuses a second peer's transfer and an end that closes no
// transfer; commits what it held right after the closing record.
func TestTransferGate(t *testing.T) {
	src, _ := openTest(t, &Options{Sync: SyncNever})
	other, _ := openTest(t, &Options{Sync: SyncNever})
	writer, _ := openTest(t, &Options{Sync: SyncNever})
	dst, _ := openTest(t, &Options{Sync: SyncNever})
	for _, k := range []string{"a", "b", "x", "y"} {
		must(t, src.Put(k, "src"))
		must(t, other.Put(k, "other"))
	}
	rec := record(writer)
	must(t, writer.Put("a2", "joined range"))
	must(t, writer.Put("x2", "range not joined yet"))
	writes := rec.take()
	recs := stateRecords(t, src, keyRange{Hi: "m"}, keyRange{Lo: "m"})
	fromOther := stateRecords(t, other)

	if err := dst.applyRemote(recs[len(recs)-1], "src"); !errors.Is(err, errTransferNotOpen) {
		t.Fatalf("an end of transfer with no transfer open: %v", err)
	}
	must(t, dst.applyRemote(recs[0], "src")) // [, m) joined
	if err := dst.applyRemote(fromOther[0], "other"); !errors.Is(err, errTransferBusy) {
		t.Fatalf("a second peer's transfer during the first: %v", err)
	}
	must(t, dst.applyRemote(writes[0].Record, "writer"))
	must(t, dst.applyRemote(writes[1].Record, "writer"))
	if _, err := dst.Get("a2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a delta in a joined range applied during the transfer: %v", err)
	}
	if _, err := dst.Get("x2"); err != nil {
		t.Fatalf("a delta outside the joined ranges was held back: %v", err)
	}
	if got := testutil.ToFloat64(dst.m.transferHeld); got != 1 {
		t.Fatalf("held gauge = %v, want 1", got)
	}
	must(t, dst.applyRemote(recs[1], "src"))
	must(t, dst.applyRemote(recs[2], "src"))
	if _, err := dst.Get("a2"); err != nil {
		t.Fatalf("the held delta was not committed with the end of the transfer: %v", err)
	}
	if got := testutil.ToFloat64(dst.m.transferHeld); got != 0 {
		t.Fatalf("held gauge = %v after the transfer", got)
	}
	// The other peer's transfer goes through now.
	for _, r := range fromOther {
		must(t, dst.applyRemote(r, "other"))
	}
	// Everything the node applied is in its WAL: a restart rebuilds it.
	dst = reopenSame(t, dst, &Options{Sync: SyncNever}, "dst's WAL does not hold what it applied")
	for _, k := range []string{"a", "a2", "x2", "y"} {
		if _, err := dst.Get(k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
}

// A transfer that stops coming is given up after the idle time: what it
// held is committed then, and its late end is refused.
func TestTransferGivenUp(t *testing.T) {
	src, _ := openTest(t, &Options{Sync: SyncNever})
	writer, _ := openTest(t, &Options{Sync: SyncNever})
	dst, _ := openTest(t, &Options{Sync: SyncNever})
	dst.gate.idle = 20 * time.Millisecond // before the loop first reads it (the request below orders it)
	must(t, src.Put("k", 1))
	rec := record(writer)
	must(t, writer.Put("k2", 2))
	recs := stateRecords(t, src)
	must(t, dst.applyRemote(recs[0], "src"))
	must(t, dst.applyRemote(rec.take()[0].Record, "writer"))
	replEventually(t, 10*time.Second, func() bool {
		_, err := dst.Get("k2")
		return err == nil
	}, "the held delta was never committed")
	if err := dst.applyRemote(recs[1], "src"); !errors.Is(err, errTransferNotOpen) {
		t.Fatalf("the end of a given-up transfer: %v", err)
	}
	if _, err := dst.Get("k"); err != nil {
		t.Fatalf("the range joined before the transfer was given up: %v", err)
	}
	if n := len(dst.appliedSet().Missing(src.appliedSet())); n == 0 {
		t.Fatal("a given-up transfer marked its operations applied")
	}
}

func TestTransferGateRanges(t *testing.T) {
	var g transferGate
	for _, kr := range []keyRange{{"m", "p"}, {"c", "f"}, {"f", "h"}, {"x", ""}, {"n", "q"}} {
		g.widen(kr)
	}
	if want := []keyRange{{"c", "h"}, {"m", "q"}, {"x", ""}}; fmt.Sprint(g.joined) != fmt.Sprint(want) {
		t.Fatalf("joined = %v, want %v", g.joined, want)
	}
	for key, want := range map[string]bool{"a": false, "c": true, "g": true, "h": false, "m": true, "p": true,
		"q": false, "w": false, "x": true, "zz": true} {
		op := &Op{Kind: OpDelta, Delta: &crdt.Delta{Keys: map[string]*crdt.Entry{key: {}}}}
		if got := g.touches(op); got != want {
			t.Errorf("touches(%q) = %v, want %v", key, got, want)
		}
	}
}

// The same with a transfer of the ranges a summary found different: the
// ranges are joined under the summary's context, and the transfer ends
// with it. The old write of k arrives while the transfer runs; the delete
// came after the summary, and its record follows the transfer.
func TestTransferRangesNothingDeletedComesBack(t *testing.T) {
	n0, _ := openTest(t, &Options{Sync: SyncNever})
	n1, _ := openTest(t, &Options{Sync: SyncNever})
	n2, _ := openTest(t, &Options{Sync: SyncNever})
	rec0 := record(n0)
	must(t, n0.Put("k", "old"))
	write := rec0.take()[0].Record
	must(t, n1.applyRemote(write, "n0"))
	sum, err := (&replicator{n: n1}).summary()
	must(t, err)
	rec1 := record(n1)
	must(t, n1.Delete("k"))
	del := rec1.take()[0].Record

	var recs [][]byte
	_, _, _, err = n1.writeState(context.Background(), func(b []byte) error {
		recs = append(recs, b)
		return nil
	}, []keyRange{{Hi: "m"}}, sum.Ctx, sum.Ctx, sum.Applied)
	must(t, err)
	must(t, n2.applyRemote(recs[0], "n1"))
	must(t, n2.applyRemote(write, "n0"))
	for _, rec := range append(recs[1:], del) { // the end, then the delete by record
		must(t, n2.applyRemote(rec, "n1"))
		if v, err := n2.Get("k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("k came back on n2: %v %v", v.Data, err)
		}
	}
	if n2.Digest() != n1.Digest() || !n2.appliedSet().Equal(n1.appliedSet()) {
		t.Fatalf("n2 differs from n1 after the transfer: ctx %v / %v, applied %v / %v", n2.stateContext(), n1.stateContext(), n2.appliedSet(), n1.appliedSet())
	}
}
