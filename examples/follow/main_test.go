package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func put(t *testing.T, base, key, value string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/kv/"+key, strings.NewReader(value))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", key, resp.Status)
	}
}

func waitFor(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFollowerMissesNothingAcrossDisconnects mirrors a prefix while the
// server drops every connection now and then: the view ends complete.
func TestFollowerMissesNothingAcrossDisconnects(t *testing.T) {
	n, err := node.Open(t.TempDir(), &node.Options{Sync: node.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(httpapi.NewHandler(n, nil))
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	put(t, srv.URL, "users%2F0", `"before the follower started"`)
	put(t, srv.URL, "other", `1`)
	f := &Follower{Addr: srv.URL, Prefix: "users/", Backoff: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before srv.Close (deferred earlier) waits for the stream
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	for i := 1; i <= 60; i++ {
		put(t, srv.URL, fmt.Sprintf("users%%2F%d", i), fmt.Sprintf(`{"n":%d}`, i))
		if i%10 == 0 {
			srv.CloseClientConnections() // the stream drops; the follower resumes
		}
	}
	put(t, srv.URL, "users%2F5", `"changed"`)
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/kv/users%2F7", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE users/7: %s", resp.Status)
	}
	waitFor(t, "the complete view", func() bool {
		v := f.View()
		return len(v) == 60 && string(v["users/5"]) == `"changed"`
	}, func() string {
		v := f.View()
		return fmt.Sprintf("%d keys, users/5=%s, users/7 present=%t, last event %q, keys %q",
			len(v), v["users/5"], v["users/7"] != nil, f.lastEventID(), f.Keys())
	})
	v := f.View()
	if _, ok := v["users/7"]; ok {
		t.Fatal("deleted key still in the view")
	}
	if _, ok := v["other"]; ok {
		t.Fatal("key outside the prefix in the view")
	}
	if string(v["users/0"]) != `"before the follower started"` || string(v["users/60"]) != `{"n":60}` {
		t.Fatalf("view: %v", f.Keys())
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
}
