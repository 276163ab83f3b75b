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
