package node

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// A lone writer commits on its own goroutine (commitInline), durably, and
// a restart replays what it wrote.
func TestLoneWriterCommitsInline(t *testing.T) {
	dir := t.TempDir()
	n := openAt(t, dir, nil)
	const count = 100
	for i := range count {
		must(t, n.Put(fmt.Sprint("k", i), i))
	}
	c, err := n.Incr("c", 5)
	must(t, err)
	if c != 5 {
		t.Fatalf("Incr = %d, want 5", c)
	}
	var b Batch
	b.Put("b", "x")
	b.Incr("c", 1)
	must(t, n.Commit(&b))
	// A sweep tick may take the pipeline for a moment; most writes find it idle.
	if got := n.inlined.Load(); got < count/2 {
		t.Fatalf("%d of %d lone writes committed inline", got, count+2)
	}
	// A refused write answers its error and leaves the pipeline usable.
	if _, err := n.Incr("b", 1); !errors.Is(err, ErrWrongType) {
		t.Fatalf("Incr on a register: %v, want ErrWrongType", err)
	}
	must(t, n.Put("after-error", 1))
	must(t, n.Close())
	n = openAt(t, dir, nil)
	for i := range count {
		if v, err := n.Get(fmt.Sprint("k", i)); err != nil || v.Data != int64(i) {
			t.Fatalf("after reopen k%d = %v, %v", i, v.Data, err)
		}
	}
	if v, err := n.Get("c"); err != nil || v.Data != int64(6) {
		t.Fatalf("after reopen c = %v, %v", v.Data, err)
	}
}

// A write a goroutine queued (Submit) commits before the one it makes
// next, even when the next could commit inline: the later write wins.
func TestInlineKeepsCallerOrder(t *testing.T) {
	n, _ := openTest(t, &Options{Sync: SyncNever})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			key := fmt.Sprint("k", g)
			for i := range 300 {
				var b Batch
				b.Put(key, 2*i)
				p := n.Submit(&b)
				if err := n.Put(key, 2*i+1); err != nil {
					t.Error(err)
					return
				}
				if err := p.Wait(); err != nil {
					t.Error(err)
					return
				}
				if v, err := n.Get(key); err != nil || v.Data != int64(2*i+1) {
					t.Errorf("%s = %v, %v; want %d (the Put after the Submit)", key, v.Data, err, 2*i+1)
					return
				}
			}
		})
	}
	wg.Wait()
}

// While a peer's records arrive, local writes go through the loop, sharing
// their group commits; once the peer has been quiet for remoteQuiet, a lone
// writer commits inline again.
func TestInlineWaitsOutRemoteRecords(t *testing.T) {
	clk := newFakeClock()
	a, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now})
	b, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now})
	fromA := record(a)
	must(t, a.Put("from-a", 1))
	for _, c := range fromA.take() {
		must(t, b.applyRemote(c.Record, "a"))
	}
	before := b.inlined.Load()
	must(t, b.Put("local", 1))
	if b.inlined.Load() != before {
		t.Fatal("a local write committed inline right after a peer's record")
	}
	clk.Advance(remoteQuiet)
	for range 10 { // a sweep tick may take the pipeline for a moment
		must(t, b.Put("local", 2))
	}
	if b.inlined.Load() == before {
		t.Fatal("no local write committed inline once the peer was quiet")
	}
}

// deliverBatch hands n the records of cs as one delivery from peer from, as a
// stream's Deliver does.
func deliverBatch(t *testing.T, n *Node, from string, cs []committed) error {
	t.Helper()
	raws, ops := peerRecords(t, cs)
	return n.applyRemoteBatch(raws, ops, from)
}

// A peer's delivery to an idle node commits on the stream's goroutine
// (commitRemoteInline), one group per delivery: applied, durable, and its
// duplicates dropped as through the loop.
func TestRemoteDeliveryCommitsInline(t *testing.T) {
	a, _ := openTest(t, &Options{Sync: SyncNever})
	rec := record(a)
	const count, size = 40, 5
	for i := range count {
		must(t, a.Put(fmt.Sprint("k", i), i))
	}
	cs := rec.take()
	b, _ := openTest(t, nil)
	before, groupsBefore := b.inlinedRemote.Load(), groups(t, b)
	for i := 0; i < count; i += size {
		must(t, deliverBatch(t, b, "a", cs[i:i+size]))
	}
	// A sweep tick may take the pipeline for a moment; most find it idle.
	inline := int(b.inlinedRemote.Load() - before)
	if inline < count/size/2 {
		t.Fatalf("%d of %d deliveries to an idle node committed inline", inline, count/size)
	}
	// One group each inline (through the loop a delivery may be cut).
	if got, most := int(groups(t, b)-groupsBefore), inline+(count/size-inline)*size; got > most {
		t.Fatalf("%d deliveries, %d of them inline, took %d group commits (at most %d)", count/size, inline, got, most)
	}
	next := b.wal.NextOffset()
	must(t, deliverBatch(t, b, "a", cs[:size]))
	if b.wal.NextOffset() != next {
		t.Fatal("a delivery of records applied already was appended again")
	}
	for i := range count {
		if v, err := b.Get(fmt.Sprint("k", i)); err != nil || v.Data != int64(i) {
			t.Fatalf("k%d = %v, %v", i, v.Data, err)
		}
	}
	reopenSame(t, b, nil, "an inline commit was not in the WAL")
}

// While a state transfer is open, a delivery goes through the loop, where
// the transfer gate holds back what touches the ranges the transfer has
// joined, and commits it right after the transfer's closing record.
func TestRemoteDeliveryWaitsForTransfer(t *testing.T) {
	src, _ := openTest(t, &Options{Sync: SyncNever})
	writer, _ := openTest(t, &Options{Sync: SyncNever})
	dst, _ := openTest(t, &Options{Sync: SyncNever})
	must(t, src.Put("k", 1))
	rec := record(writer)
	must(t, writer.Put("k2", 2))
	recs := stateRecords(t, src)
	must(t, dst.applyRemote(recs[0], "src")) // opens the transfer: the whole key space
	before := dst.inlinedRemote.Load()
	must(t, deliverBatch(t, dst, "writer", rec.take()))
	if dst.inlinedRemote.Load() != before {
		t.Fatal("a delivery committed inline while a transfer was open")
	}
	if _, err := dst.Get("k2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a delivery in the transfer's range applied before its end: %v", err)
	}
	must(t, dst.applyRemote(recs[1], "src"))
	if _, err := dst.Get("k2"); err != nil {
		t.Fatalf("the held delivery was not committed with the end of the transfer: %v", err)
	}
}
