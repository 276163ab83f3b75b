package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// TestE2EExpiry: three agent processes; a key written with ?ttl=2s on one
// is visible on all (each one's watch reports the value), then absent on
// all (404) within its TTL plus the clock drift bound after the write was
// acknowledged, and each watch reports it expired. A node restarted with
// SIGKILL keeps the TTLs it held.
func TestE2EExpiry(t *testing.T) {
	bin := shoalBinary(t)
	root := t.TempDir()
	nodes := startCluster(t, bin, root, 3, nil)
	n1, n2 := nodes[0], nodes[1]
	eventually(t, 20*time.Second, "three nodes converge", func() (bool, string) { return converged(nodes...) })

	// A watch on every node, open before the write.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type seen struct {
		name string
		ev   node.Event
	}
	events := make(chan seen, 100)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, n := range nodes {
		sub, err := n.client.Subscribe(ctx, "ttl/")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					return
				}
				select {
				case events <- seen{n.name, ev}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	eventually(t, 20*time.Second, "every watch open", func() (bool, string) {
		_ = n1.client.Put("ttl/probe", 0)
		got := map[string]bool{}
		for {
			select {
			case s := <-events:
				got[s.name] = true
				continue
			default:
			}
			break
		}
		return len(got) == 3, fmt.Sprint(got)
	})
	for len(events) > 0 { // the probes' last events
		<-events
	}

	req, _ := http.NewRequest(http.MethodPut, n1.url+"/v1/kv/ttl%2Fk?ttl=2s", strings.NewReader(`"short-lived"`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	acked := time.Now()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT ?ttl=2s: %d %s", resp.StatusCode, body)
	}
	// Visible on all: each node's watch reports the value (an event for a
	// write that arrived expired would say deleted).
	visible, expired := map[string]bool{}, map[string]bool{}
	deadline := time.After(2*time.Second + node.DefaultMaxClockDrift + 30*time.Second)
	for len(expired) < 3 {
		select {
		case s := <-events:
			if s.ev.Key != "ttl/k" {
				continue
			}
			switch s.ev.Kind {
			case node.EventChange:
				if s.ev.Deleted || s.ev.Data != "short-lived" {
					t.Fatalf("%s: the write arrived as %+v", s.name, s.ev)
				}
				visible[s.name] = true
			case node.EventExpired:
				if !visible[s.name] {
					t.Fatalf("%s reported the expiry before the value", s.name)
				}
				expired[s.name] = true
			}
		case <-deadline:
			t.Fatalf("visible on %v, reported expired on %v", visible, expired)
		}
	}
	// Absent on all within the TTL plus the drift bound.
	bound := acked.Add(2*time.Second + node.DefaultMaxClockDrift)
	for _, n := range nodes {
		for {
			code, err := httpStatus(n.url + "/v1/kv/ttl%2Fk")
			if err == nil && code == http.StatusNotFound {
				break
			}
			if time.Now().After(bound) {
				t.Fatalf("%s still answers %d (%v) beyond the TTL plus the drift bound", n.name, code, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A restarted node keeps the TTLs it held: from its WAL, after SIGKILL.
	if _, err := n1.cli("put", "--ttl", "1h", "ttl/long", "kept"); err != nil {
		t.Fatal(err)
	}
	want, err := n1.client.Get("ttl/long")
	if err != nil || want.Expires.IsZero() {
		t.Fatalf("n1 ttl/long: %+v %v", want, err)
	}
	eventually(t, 20*time.Second, "ttl/long reaches n2", func() (bool, string) {
		v, err := n2.client.Get("ttl/long")
		return err == nil && v.Expires.Equal(want.Expires), fmt.Sprintf("%+v %v", v, err)
	})
	n2.kill()
	n2.start()
	if v, err := n2.client.Get("ttl/long"); err != nil || !v.Expires.Equal(want.Expires) || v.Data != "kept" {
		t.Fatalf("n2 after a restart: %+v %v; want expires %v", v, err, want.Expires)
	}
	if out, err := n2.cli("get", "ttl/long"); err != nil || out != "kept\n(expires "+want.Expires.Format(time.RFC3339Nano)+")\n" {
		t.Fatalf("shoal get on n2: %q %v", out, err)
	}
	if code, _ := httpStatus(n2.url + "/v1/kv/ttl%2Fk"); code != http.StatusNotFound {
		t.Fatalf("the expired key is back on n2 after a restart: %d", code)
	}
	eventually(t, 30*time.Second, "converged after the restart", func() (bool, string) { return converged(nodes...) })
}

func httpStatus(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
