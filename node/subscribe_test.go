package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func nextEvent(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func TestSubscribeOrderPerKey(t *testing.T) {
	n, _ := openTest(t, nil)
	sub, err := n.Subscribe(t.Context(), "a/")
	must(t, err)
	defer sub.Close()
	const writers, per = 4, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := 1; i <= per; i++ {
				if err := n.Put(fmt.Sprintf("a/%d", g), i); err != nil {
					t.Error(err)
					return
				}
				if err := n.Put(fmt.Sprintf("b/%d", g), i); err != nil { // not subscribed
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := map[string]int64{}
	var lastOff uint64
	for range writers * per {
		ev := nextEvent(t, sub)
		if ev.Key[:2] != "a/" {
			t.Fatalf("event for %q outside the prefix", ev.Key)
		}
		if ev.Offset < lastOff {
			t.Fatalf("offsets out of order: %d after %d", ev.Offset, lastOff)
		}
		lastOff = ev.Offset
		v := ev.Data.(int64)
		if v != last[ev.Key]+1 {
			t.Fatalf("key %s: event value %d after %d", ev.Key, v, last[ev.Key])
		}
		last[ev.Key] = v
		if ev.Type != TypeRegister || ev.Deleted || ev.Origin != n.ReplicaID() {
			t.Fatalf("event = %+v", ev)
		}
	}
	for g := range writers {
		if last[fmt.Sprintf("a/%d", g)] != per {
			t.Fatalf("missing events: %v", last)
		}
	}
	// Deletes and other types.
	must(t, n.Delete("a/0"))
	if ev := nextEvent(t, sub); ev.Key != "a/0" || !ev.Deleted || ev.Data != nil || ev.Type != "" {
		t.Fatalf("delete event = %+v", ev)
	}
	var b Batch
	b.Incr("a/c", 3)
	b.SetAdd("a/s", "m")
	must(t, n.Commit(&b))
	e1, e2 := nextEvent(t, sub), nextEvent(t, sub)
	if e1.Offset != e2.Offset || e1.Key != "a/c" || e1.Data != int64(3) || e2.Key != "a/s" || e2.Type != TypeSet {
		t.Fatalf("batch events = %+v %+v", e1, e2)
	}
}

func TestSubscribeResume(t *testing.T) {
	n, _ := openTest(t, &Options{SnapshotEveryOps: -1})
	for i := range 10 {
		must(t, n.Put(fmt.Sprintf("k%d", i), i))
	}
	from := n.Status().NextOffset
	must(t, n.Put("k1", "changed"))
	must(t, n.Put("k1", "changed again"))
	must(t, n.Delete("k2"))
	_, err := n.Incr("other", 1)
	must(t, err)

	// Writers keep going while we subscribe: no gap, no repeat.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := n.Put("k9", fmt.Sprint("live", i)); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			written = i + 1
			mu.Unlock()
		}
	})
	eventually(t, "some live writes", func() bool { mu.Lock(); defer mu.Unlock(); return written > 3 })
	sub, err := n.SubscribeFrom(t.Context(), "k", from)
	must(t, err)
	defer sub.Close()
	eventually(t, "more live writes", func() bool { mu.Lock(); defer mu.Unlock(); return written > 10 })
	close(stop)
	wg.Wait()
	final := fmt.Sprint("live", written-1)

	got := map[string]Event{}
	var lastOff uint64
	for {
		ev := nextEvent(t, sub)
		if ev.Offset < lastOff {
			t.Fatalf("offsets go back: %d after %d", ev.Offset, lastOff)
		}
		lastOff = ev.Offset
		got[ev.Key] = ev
		if ev.Key == "k9" && ev.Data == final {
			break
		}
	}
	if ev := got["k1"]; ev.Data != "changed again" {
		t.Fatalf("k1 = %+v", ev)
	}
	if ev := got["k2"]; !ev.Deleted {
		t.Fatalf("k2 = %+v", ev)
	}
	if _, ok := got["k3"]; ok {
		t.Fatal("catch-up delivered a key unchanged since the offset")
	}
	if _, ok := got["other"]; ok {
		t.Fatal("catch-up ignored the prefix")
	}

	// Offsets outside the WAL.
	if _, err := n.SubscribeFrom(t.Context(), "", n.Status().NextOffset+1); !errors.Is(err, ErrOffsetUnavailable) {
		t.Fatalf("offset beyond the end: %v", err)
	}
	if _, err := n.SubscribeFrom(t.Context(), "", n.Status().NextOffset); err != nil {
		t.Fatalf("offset at the end: %v", err)
	}
}

func TestSubscribeFromTruncated(t *testing.T) {
	n, _ := openTest(t, &Options{SnapshotEveryOps: -1, SegmentBytes: 2 << 10})
	for i := range 100 {
		must(t, n.Put(fmt.Sprint("k", i%7), i))
	}
	must(t, n.Snapshot())
	for i := range 100 {
		must(t, n.Put(fmt.Sprint("k", i%7), i))
	}
	must(t, n.Snapshot())
	first := n.Status().FirstOffset
	if first == 0 {
		t.Fatal("WAL not truncated")
	}
	if _, err := n.SubscribeFrom(t.Context(), "", first-1); !errors.Is(err, ErrOffsetUnavailable) {
		t.Fatalf("truncated offset: %v", err)
	}
	sub, err := n.SubscribeFrom(t.Context(), "", first)
	must(t, err)
	defer sub.Close()
	if ev := nextEvent(t, sub); ev.Offset < first {
		t.Fatalf("event from a truncated offset: %+v", ev)
	}
}

func TestSlowSubscriberDropped(t *testing.T) {
	n, _ := openTest(t, &Options{SubscriberBuffer: 4})
	slow, err := n.Subscribe(t.Context(), "")
	must(t, err)
	fast, err := n.Subscribe(t.Context(), "")
	must(t, err)
	defer fast.Close()
	for i := range 4 {
		must(t, n.Put("k", i))
		nextEvent(t, fast)
	}
	// The slow one holds 4 events: the next write drops it, and the writer
	// does not wait.
	must(t, n.Put("k", 4))
	nextEvent(t, fast)
	if _, err := slow.Next(t.Context()); !errors.Is(err, ErrSlowSubscriber) {
		t.Fatalf("slow subscriber: %v", err)
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("Done not closed")
	}
	if got := testutil.ToFloat64(n.m.subDropped); got != 1 {
		t.Fatalf("dropped metric = %v", got)
	}
	if got := testutil.ToFloat64(n.m.subscribers); got != 1 {
		t.Fatalf("subscribers metric = %v", got)
	}
}

// A record with more changes than the buffer holds reaches a reader that
// kept up: only what a reader had not taken counts as behind.
func TestSubscriberGetsRecordLargerThanBuffer(t *testing.T) {
	n, _ := openTest(t, &Options{SubscriberBuffer: 4})
	sub, err := n.Subscribe(t.Context(), "")
	must(t, err)
	defer sub.Close()
	var b Batch
	for i := range 10 {
		b.Put(fmt.Sprintf("k%d", i), i)
	}
	must(t, n.Commit(&b))
	for i := range 10 {
		if ev := nextEvent(t, sub); ev.Key != fmt.Sprintf("k%d", i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

func TestSubscriptionEnds(t *testing.T) {
	n, _ := openTest(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	byCtx, err := n.Subscribe(ctx, "")
	must(t, err)
	byClose, err := n.Subscribe(t.Context(), "")
	must(t, err)
	byNode, err := n.Subscribe(t.Context(), "")
	must(t, err)

	// A Next deadline does not end the subscription.
	short, c2 := context.WithTimeout(t.Context(), time.Millisecond)
	defer c2()
	if _, err := byClose.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with a deadline: %v", err)
	}
	must(t, n.Put("k", 1))
	if ev := nextEvent(t, byClose); ev.Key != "k" {
		t.Fatalf("event after a Next timeout: %+v", ev)
	}

	cancel()
	<-byCtx.Done()
	if _, err := byCtx.Next(t.Context()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after ctx cancel: %v", err)
	}
	must(t, byClose.Close())
	must(t, byClose.Close())
	if _, err := byClose.Next(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	must(t, n.Close())
	if _, err := byNode.Next(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after node Close: %v", err)
	}
}
