package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestSubscribeReconnectMissesNothing: a subscriber that keeps dropping
// and resuming from the offset after the last event it saw, while a writer
// runs, sees every record exactly once: the offsets it receives, across
// all reconnects, are contiguous (no gap, no repeat), and each event is
// the change its record made. It guards the window between a group's
// apply and its publish, when a resuming subscriber registers.
//
// The writer is alone and writes a new key per record, so the catch-up
// from the WAL (which sends one event per key) has nothing to merge: the
// resume contract then promises exactly one event per record.
func TestSubscribeReconnectMissesNothing(t *testing.T) {
	n, _ := openTest(t, &Options{Sync: SyncNever, SnapshotEveryOps: -1})
	const writes = 3000
	base := n.wal.NextOffset()
	// The writer stays at most lead records ahead of the subscriber, so
	// that resumes land near the head, where records are appended but not
	// yet applied and the catch-up meets the live events.
	const lead = 8
	var seen atomic.Uint64 // records the subscriber has seen
	progress := make(chan struct{}, 1)
	written := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(written)
		for i := range writes {
			for uint64(i) >= seen.Load()+lead {
				select {
				case <-progress:
				case <-stop:
					return
				}
			}
			if err := n.Put(fmt.Sprintf("k%04d", i), i); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-written
	}()
	last := base + writes - 1
	next := base // the offset the next event must carry
	for round := 0; next <= last; round++ {
		done := false
		select {
		case <-written:
			done = true // this round reads to the end
		default:
		}
		timeout := 50 * time.Millisecond
		if done {
			timeout = 30 * time.Second // a bound on a hang, not a wait
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		sub, err := n.SubscribeFrom(ctx, "", next)
		if err != nil {
			cancel()
			t.Fatalf("round %d: SubscribeFrom(%d): %v", round, next, err)
		}
		// Read a few events (or, once the writer is done, up to the last
		// record), then drop.
		for i := 0; next <= last && (done || i < 5); i++ {
			ev, err := sub.Next(ctx)
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) || done {
					t.Fatalf("round %d: Next after offset %d: %v", round, next-1, err)
				}
				break
			}
			if ev.Kind == EventSynced {
				// The end of the catch-up: it must claim exactly what was
				// delivered.
				if ev.Offset != next {
					t.Fatalf("round %d: synced at %d, but events were delivered up to %d", round, ev.Offset, next)
				}
				i--
				continue
			}
			if ev.Offset != next {
				t.Fatalf("round %d (resumed at %d): event at offset %d, want %d (a gap or a repeat)",
					round, next, ev.Offset, next)
			}
			i := int64(ev.Offset - base)
			if v, _ := ev.Data.(int64); ev.Key != fmt.Sprintf("k%04d", i) || v != i || ev.Deleted {
				t.Fatalf("round %d: event %+v, want the Put of k%04d = %d", round, ev, i, i)
			}
			next++
			seen.Store(next - base)
			select {
			case progress <- struct{}{}:
			default:
			}
		}
		sub.Close()
		cancel()
	}
}
