package node

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCatchUpFullResend: a catch-up that would report more keys than the
// subscription's buffer holds resends the prefix instead: a reset, every
// key that exists in key order, synced; then live changes, none older than
// what the resend sent.
func TestCatchUpFullResend(t *testing.T) {
	n, _ := openTest(t, &Options{SubscriberBuffer: 16, Sync: SyncNever})
	for i := 0; i < 100; i++ {
		if err := n.Put(fmt.Sprintf("p/%03d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i += 10 {
		if err := n.Delete(fmt.Sprintf("p/%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	n.Put("other", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := n.SubscribeFrom(ctx, "p/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Written after the cut, before the resend reads them: the resend
	// shows them, and their live events are then older than it.
	n.Put("p/050", "new")
	n.Put("p/200", "created")
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != EventReset || ev.Key != "p/" {
		t.Fatalf("first event %+v, %v; want a reset of p/", ev, err)
	}
	var keys []string
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == EventSynced {
			break
		}
		if ev.Kind != EventState || ev.Deleted {
			t.Fatalf("event in the resend: %+v", ev)
		}
		if ev.Key == "p/050" && ev.Data != "new" {
			t.Fatalf("resend of p/050: %v", ev.Data)
		}
		keys = append(keys, ev.Key)
	}
	if len(keys) != 92 || keys[0] != "p/001" || keys[len(keys)-1] != "p/200" || !sortedStrings(keys) {
		t.Fatalf("resend sent %d keys (%v ... %v), want the 92 that exist (p/050 came back), in order", len(keys), keys[:min(3, len(keys))], keys[max(0, len(keys)-2):])
	}
	// Live: the two writes above are older than the resend (skipped); a
	// new one arrives.
	n.Put("p/300", "live")
	ev, err = sub.Next(ctx)
	if err != nil || ev.Kind != EventChange || ev.Key != "p/300" {
		t.Fatalf("first live event %+v, %v; want p/300 (older ones skipped)", ev, err)
	}
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// TestCatchUpDeltaEndsSynced: a short catch-up reports each changed key
// once (deletes included), then synced at the offset after it.
func TestCatchUpDeltaEndsSynced(t *testing.T) {
	n, _ := openTest(t, &Options{Sync: SyncNever})
	n.Put("a", 1)
	from := n.Status().NextOffset
	n.Put("b", 1)
	n.Put("b", 2)
	n.Delete("a")
	cut := n.Status().NextOffset
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := n.SubscribeFrom(ctx, "", from)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == EventSynced {
			if ev.Offset != cut {
				t.Fatalf("synced at %d, want %d", ev.Offset, cut)
			}
			break
		}
		got = append(got, fmt.Sprintf("%s=%v/%v", ev.Key, ev.Data, ev.Deleted))
	}
	if strings.Join(got, " ") != "b=2/false a=<nil>/true" {
		t.Fatalf("catch-up events %v", got)
	}
}

// TestIdleWatchersFromZeroStayBounded: 40 subscribers that resume from
// offset 0 of a 16 MB store and never read hold a bounded amount of memory
// each (the resend is read lazily), not a copy of the store.
func TestIdleWatchersFromZeroStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 16 MB store")
	}
	n, _ := openTest(t, &Options{Sync: SyncNever})
	val := strings.Repeat("v", 1000)
	var b Batch
	for i := 0; i < 16_000; i++ {
		b.Put(fmt.Sprintf("k%05d", i), val)
		if b.Len() == 500 {
			if err := n.Commit(&b); err != nil {
				t.Fatal(err)
			}
			b = Batch{}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs []*Subscription
	for i := 0; i < 40; i++ {
		s, err := n.SubscribeFrom(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	grew := int64(heap()) - int64(before)
	t.Logf("40 idle watchers from offset 0 of a %d-key store: heap +%d KiB", 16_000, grew>>10)
	if grew > 64<<20 {
		t.Fatalf("40 idle watchers grew the heap by %d MiB", grew>>20)
	}
	for _, s := range subs {
		s.Close()
	}
}
