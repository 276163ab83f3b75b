package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// TestStoredValuesReadBackAsStored: PUT answers the value as stored, GET
// gives it back byte for byte (no HTML escaping, no rounding), and what
// cannot be stored as given is a 400.
func TestStoredValuesReadBackAsStored(t *testing.T) {
	h := NewHandler(newHTTPTestNode(t, nil), nil)
	huge := "1" + strings.Repeat("0", 400)
	for _, c := range []struct{ in, stored string }{
		{`-0`, `0`},
		{`{"z": "<&>", "a": [1.50, 30000000000000000000000000001]}`, `{"a":[1.5,30000000000000000000000000001],"z":"<&>"}`},
		{huge, huge},
		{`1e20`, `1e+20`},
	} {
		code, out := call(t, h, "PUT", "/v1/kv/k", c.in)
		if wantAns := `{"key":"k","type":"register","value":` + c.stored + `}` + "\n"; code != 200 || out != wantAns {
			t.Fatalf("PUT %s: %d %q, want %q", c.in, code, out, wantAns)
		}
		code, out = call(t, h, "GET", "/v1/kv/k", "")
		if wantAns := `{"key":"k","type":"register","value":` + c.stored + `}` + "\n"; code != 200 || out != wantAns {
			t.Fatalf("GET after %s: %d %q, want %q", c.in, code, out, wantAns)
		}
	}
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	want(t, h, 200, "PUT", "/v1/kv/deep", nest(node.MaxDepth))
	for _, bad := range []string{`{"a":1,"a":2}`, nest(node.MaxDepth + 1), `1e400`} {
		want(t, h, 400, "PUT", "/v1/kv/bad", bad)
	}
}

// TestWatcherCapAndBatchCap: one watch more than MaxWatchers is a 503;
// a batch of more operations than the node takes is a 413.
func TestWatcherCapAndBatchCap(t *testing.T) {
	n := newHTTPTestNode(t, &node.Options{Sync: node.SyncNever, MaxBatchOperations: 3})
	h := NewHandler(n, &Options{MaxWatchers: 2})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		resp, _ := openWatch(t, ctx, srv.URL, "", "")
		defer resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/v1/watch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || h.Watchers() != 2 {
		t.Fatalf("a third watch: %d (%d watchers)", resp.StatusCode, h.Watchers())
	}
	ops := func(k int) string {
		var b strings.Builder
		for i := 0; i < k; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"op":"put","key":"b%d","value":%d}`, i, i)
		}
		return `{"ops":[` + b.String() + `]}`
	}
	want(t, h, 200, "POST", "/v1/batch", ops(3))
	want(t, h, 413, "POST", "/v1/batch", ops(4))
}

// TestWatcherThatDoesNotReadIsDisconnected: a watch whose client stops
// reading is ended once a write waits longer than WriteTimeout, freeing
// its goroutine and buffers.
func TestWatcherThatDoesNotReadIsDisconnected(t *testing.T) {
	n := newHTTPTestNode(t, nil)
	h := NewHandler(n, &Options{WriteTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4 << 10) // fill the path quickly
	}
	fmt.Fprintf(conn, "GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("watch: %q %v", line, err)
	}
	// Now stop reading, and write more than the socket buffers hold.
	val := strings.Repeat("v", 64<<10)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; h.Watchers() > 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("a watcher that reads nothing is still served after 30 s")
		}
		if err := n.Put(fmt.Sprintf("k%d", i%100), val); err != nil {
			t.Fatal(err)
		}
	}
}
