package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// TestFollowerResubscribesAfterTheStreamEnds: when the node ends the
// subscription (here: its HTTP API shuts down, and another takes its
// place), the follower subscribes again from the change after the last it
// applied: every change arrives, none twice.
func TestFollowerResubscribesAfterTheStreamEnds(t *testing.T) {
	n, err := node.Open(t.TempDir(), &node.Options{Sync: node.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	api := &swappableAPI{h: httpapi.NewHandler(n, nil)}
	srv := httptest.NewServer(api)
	defer srv.Close()

	var mu sync.Mutex
	changes := map[string]int{}
	var log strings.Builder
	f := &Follower{Addr: srv.URL, Backoff: time.Millisecond, Log: &syncWriter{mu: &mu, w: &log},
		OnChange: func(ev node.Event) {
			if ev.Kind != node.EventChange {
				return // each subscription's catch-up ends with synced
			}
			mu.Lock()
			changes[ev.Key]++
			mu.Unlock()
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	const rounds, perRound = 3, 10
	for round := range rounds {
		h := api.current()
		waitFor(t, "the follower's stream", func() bool { return h.Watchers() == 1 }, func() string { return log.String() })
		for i := range perRound {
			if err := n.Put(fmt.Sprintf("k%d/%d", round, i), i); err != nil {
				t.Fatal(err)
			}
		}
		if round < rounds-1 {
			api.replace(httpapi.NewHandler(n, nil)) // ends the follower's stream
		}
	}
	waitFor(t, "every change", func() bool { return len(f.View()) == rounds*perRound }, func() string {
		return fmt.Sprintf("%d of %d keys", len(f.View()), rounds*perRound)
	})
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for k, c := range changes {
		if c != 1 {
			t.Errorf("%s: %d changes, want 1", k, c)
		}
	}
	if got := strings.Count(log.String(), "shutting down"); got != rounds-1 {
		t.Fatalf("the follower resubscribed %d times, want %d: %q", got, rounds-1, log.String())
	}
}

// swappableAPI serves the HTTP API through a handler that replace drains
// (ending its streams) and swaps for another.
type swappableAPI struct {
	mu sync.Mutex
	h  *httpapi.Handler
}

func (a *swappableAPI) current() *httpapi.Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.h
}

func (a *swappableAPI) replace(h *httpapi.Handler) {
	a.mu.Lock()
	old := a.h
	a.h = h
	a.mu.Unlock()
	old.Drain()
}

func (a *swappableAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.current().ServeHTTP(w, r)
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
