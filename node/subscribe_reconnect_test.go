package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestSubscribeReconnectMissesNothing: a subscriber that keeps dropping
// and resuming from the offset after the last event it saw, while a writer
// runs, ends with every key's last value. It guards the window between a
// group's apply and its publish, when a resuming subscriber registers.
func TestSubscribeReconnectMissesNothing(t *testing.T) {
	n, _ := openTest(t, &Options{Sync: SyncNever, SnapshotEveryOps: -1})
	const keys, writes = 20, 3000
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := range writes {
			if err := n.Put(fmt.Sprintf("k%02d", i%keys), i); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	}()
	view := map[string]int64{}
	var from uint64
	done := false
	for round := 0; !done; round++ {
		select {
		case <-written:
			done = true // one more round reads to the end
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		sub, err := n.SubscribeFrom(ctx, "", from)
		if err != nil {
			cancel()
			t.Fatalf("round %d: SubscribeFrom(%d): %v", round, from, err)
		}
		// Read a few events (or, in the last round, until idle), then drop.
		for i := 0; done || i < 5; i++ {
			ev, err := sub.Next(ctx)
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("round %d: Next: %v", round, err)
				}
				break
			}
			v, _ := ev.Data.(int64)
			view[ev.Key] = v
			from = ev.Offset + 1 // single-key records: each event ends its record
		}
		sub.Close()
		cancel()
	}
	for k := range keys {
		key := fmt.Sprintf("k%02d", k)
		got, err := n.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		if want := got.Data.(int64); view[key] != want {
			t.Errorf("%s: subscriber ended with %d, node has %d", key, view[key], want)
		}
	}
}
