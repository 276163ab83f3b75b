package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// Through the client: a TTL's expiry reads back exactly, and the watch
// stream delivers the expiry as an event of kind expired.
func TestClientExpiry(t *testing.T) {
	var ms atomic.Int64
	ms.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	now := func() time.Time { return time.UnixMilli(ms.Load()) }
	ts := newTestServer(t, serverOptions{node: &node.Options{Sync: node.SyncNever, Now: now, SweepInterval: 5 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := ts.c.Subscribe(ctx, "w/")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := ts.c.PutWith("w/a", "v", node.WriteOptions{TTL: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	v, err := ts.c.Get("w/a")
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := ts.n.Get("w/a")
	if want := now().Add(1500 * time.Millisecond).UTC(); !v.Expires.Equal(want) || v.Expires != direct.Expires {
		t.Fatalf("Expires %v through the client, %v on the node, want %v", v.Expires, direct.Expires, want)
	}
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != node.EventChange {
		t.Fatalf("first event %+v %v", ev, err)
	}
	ms.Add(1500)
	ev, err = sub.Next(ctx)
	if err != nil || ev.Kind != node.EventExpired || ev.Key != "w/a" || !ev.Deleted {
		t.Fatalf("after the expiry: %+v %v", ev, err)
	}
}
