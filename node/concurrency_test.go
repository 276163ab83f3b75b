package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// Writers, readers, subscribers, snapshots and remote records all at once;
// run under -race. Close happens while writers are still going: each write
// either succeeds (and survives the reopen) or returns ErrClosed.
func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{SnapshotEveryOps: 200, SegmentBytes: 16 << 10, Sync: SyncInterval}
	n := openAt(t, dir, opts)
	peer, _ := openTest(t, &Options{Sync: SyncNever})
	peerRecs := record(peer)

	const writers = 8
	acked := make([]atomic.Int64, writers) // per-writer counter sum acknowledged
	var sharedAcked atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := 0; !stop.Load(); i++ {
				var err error
				switch i % 5 {
				case 0:
					err = n.Put(fmt.Sprintf("w%d/%d", g, i%20), i)
				case 1:
					if _, err = n.Incr(fmt.Sprintf("c%d", g), 1); err == nil {
						acked[g].Add(1)
					}
					if err == nil {
						// One counter for everyone: increments from many groups
						// in flight at once must all add up.
						if _, err = n.Incr("shared", 1); err == nil {
							sharedAcked.Add(1)
						}
					}
				case 2:
					err = n.SetAdd("shared-set", fmt.Sprint(rng.IntN(50)))
				case 3:
					var b Batch
					b.Put(fmt.Sprintf("w%d/b", g), i)
					b.Incr(fmt.Sprintf("c%d", g), 2)
					if err = n.Commit(&b); err == nil {
						acked[g].Add(2)
					}
				case 4:
					err = n.Update("doc", Patch{Incr: map[string]int64{fmt.Sprint("f", g): 1}})
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("writer %d: %v", g, err)
					return
				}
			}
		})
	}
	for range 3 { // readers
		wg.Go(func() {
			for !stop.Load() {
				if _, err := n.Get("shared-set"); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
					t.Errorf("Get: %v", err)
					return
				}
				n.Keys("w1/", 5)
				n.Digest()
				n.Status()
				n.Siblings("w0/0")
				n.appliedSet()
			}
		})
	}
	subCtx, cancelSubs := context.WithCancel(context.Background())
	defer cancelSubs()
	for i := range 2 { // subscribers, one resuming
		wg.Go(func() {
			var sub *Subscription
			var err error
			if i == 0 {
				sub, err = n.Subscribe(subCtx, "w")
			} else {
				sub, err = n.SubscribeFrom(subCtx, "", 0)
			}
			if err != nil {
				if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrOffsetUnavailable) {
					t.Errorf("subscribe: %v", err)
				}
				return
			}
			for {
				if _, err := sub.Next(subCtx); err != nil {
					return // slow, closed or cancelled: all fine here
				}
			}
		})
	}
	wg.Go(func() { // remote records from a peer
		for i := 0; !stop.Load(); i++ {
			if err := peer.Put(fmt.Sprint("peer/", i%30), i); err != nil {
				t.Errorf("peer: %v", err)
				return
			}
			for _, c := range peerRecs.take() {
				if err := n.applyRemote(c.Record, "peer"); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("applyRemote: %v", err)
					return
				}
			}
		}
	})
	eventually(t, "some writes", func() bool { return acked[0].Load() > 50 })
	for range 3 {
		if err := n.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	must(t, n.Close()) // while everything runs
	stop.Store(true)
	cancelSubs()
	wg.Wait()

	n = openAt(t, dir, opts)
	if v, err := n.Get("shared"); err != nil || v.Data != sharedAcked.Load() {
		t.Fatalf("shared counter = %v (%v), acknowledged %d", v.Data, err, sharedAcked.Load())
	}
	for g := range writers {
		v, err := n.Get(fmt.Sprintf("c%d", g))
		if err != nil || v.Data != acked[g].Load() {
			t.Fatalf("counter %d = %v (%v), acknowledged %d", g, v.Data, err, acked[g].Load())
		}
	}
}
