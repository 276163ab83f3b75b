package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// cutRule says where a streamCutter cuts a watch stream: when a write of
// the stream holds match (an event's JSON), after keeping that many of
// its bytes and of the next write's (for a cut in the middle of a
// record, or of an event).
type cutRule struct {
	match          string
	keep, keepNext int // -1 = all; keepNext 0 = cut right after this write
	used           bool
	connection     int // only on this connection (1-based); 0 = any
	gapKeys        []string
}

// streamCutter wraps the handler: it cuts watch streams by its rules, once
// each, and right after a cut (before the client can reconnect) writes the
// rule's gap keys to the node, so that a resume that does not start at
// the right place misses them.
type streamCutter struct {
	n     *node.Node
	next  http.Handler
	mu    sync.Mutex
	rules []*cutRule
	conns int
	cuts  int
}

func (sc *streamCutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/watch" {
		sc.next.ServeHTTP(w, r)
		return
	}
	sc.mu.Lock()
	sc.conns++
	conn := sc.conns
	sc.mu.Unlock()
	sc.next.ServeHTTP(&cutWriter{ResponseWriter: w, sc: sc, conn: conn}, r)
}

func (sc *streamCutter) cutsDone() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.cuts
}

type cutWriter struct {
	http.ResponseWriter
	sc      *streamCutter
	conn    int
	pending *cutRule // cut at the next write
}

func (w *cutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *cutWriter) Flush()                      { w.ResponseWriter.(http.Flusher).Flush() }

func (w *cutWriter) Write(b []byte) (int, error) {
	if rule := w.pending; rule != nil {
		w.cut(rule, b, rule.keepNext)
	}
	w.sc.mu.Lock()
	var hit *cutRule
	for _, rule := range w.sc.rules {
		if !rule.used && (rule.connection == 0 || rule.connection == w.conn) && strings.Contains(string(b), rule.match) {
			rule.used, hit = true, rule
			break
		}
	}
	w.sc.mu.Unlock()
	if hit == nil {
		return w.ResponseWriter.Write(b)
	}
	if hit.keepNext != 0 {
		n, err := w.ResponseWriter.Write(b[:keepOf(b, hit.keep)])
		w.Flush()
		w.pending = hit
		return n, err
	}
	w.cut(hit, b, hit.keep)
	return 0, nil
}

func keepOf(b []byte, keep int) int {
	if keep < 0 || keep > len(b) {
		return len(b)
	}
	return keep
}

// cut writes what the rule keeps of b, writes the gap keys, and aborts the
// connection.
func (w *cutWriter) cut(rule *cutRule, b []byte, keep int) {
	_, _ = w.ResponseWriter.Write(b[:keepOf(b, keep)])
	w.Flush()
	for _, k := range rule.gapKeys {
		if err := w.sc.n.Put(k, "gap"); err != nil {
			panic(err)
		}
	}
	w.sc.mu.Lock()
	w.sc.cuts++
	w.sc.mu.Unlock()
	panic(http.ErrAbortHandler)
}

// TestSubscribeResumesAcrossDrops cuts the stream of a subscription again
// and again: before its first event, in the middle of a batch (after the
// record's first event, inside its second), in the middle of an event, and
// between records, each time writing keys before the client can
// reconnect. The subscription delivers every key exactly once, in WAL
// order, each batch whole.
func TestSubscribeResumesAcrossDrops(t *testing.T) {
	var sc *streamCutter
	ts := newTestServer(t, serverOptions{wrap: func(n *node.Node, h http.Handler) http.Handler {
		sc = &streamCutter{n: n, next: h, rules: []*cutRule{
			{match: `"key":"`, connection: 1, keep: 0, gapKeys: []string{"gap/early1", "gap/early2"}},
			{match: `"key":"b4/0"`, keep: -1, keepNext: 20, gapKeys: []string{"gap/b4"}},
			{match: `"key":"b8/1"`, keep: -1, keepNext: 0, gapKeys: []string{"gap/b8"}},
			{match: `"key":"s11"`, keep: 30, gapKeys: []string{"gap/s11"}},
			{match: `"key":"s13"`, keep: -1, keepNext: 0, gapKeys: []string{"gap/s13"}},
		}}
		return sc
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := ts.c.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	want := map[string]bool{"gap/early1": true, "gap/early2": true, "gap/b4": true, "gap/b8": true, "gap/s11": true, "gap/s13": true}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 16 {
			if i%2 == 0 {
				var b node.Batch
				for j := range 3 {
					b.Put(fmt.Sprintf("b%d/%d", i, j), i)
				}
				if err := ts.n.Commit(&b); err != nil {
					t.Error(err)
				}
			} else if err := ts.n.Put(fmt.Sprintf("s%d", i), i); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := range 16 {
		if i%2 == 0 {
			for j := range 3 {
				want[fmt.Sprintf("b%d/%d", i, j)] = true
			}
		} else {
			want[fmt.Sprintf("s%d", i)] = true
		}
	}

	seen := map[string]node.Event{}
	var order []node.Event
	for len(seen) < len(want) {
		ev, err := nextChange(ctx, sub)
		if err != nil {
			missing := []string{}
			for k := range want {
				if _, ok := seen[k]; !ok {
					missing = append(missing, k)
				}
			}
			t.Fatalf("after %d events: %v; missing %v", len(order), err, missing)
		}
		if prev, dup := seen[ev.Key]; dup {
			t.Fatalf("%s delivered twice (offsets %d and %d)", ev.Key, prev.Offset, ev.Offset)
		}
		if !want[ev.Key] {
			t.Fatalf("unexpected event %+v", ev)
		}
		if n := len(order); n > 0 && ev.Offset < order[n-1].Offset {
			t.Fatalf("offset %d after %d", ev.Offset, order[n-1].Offset)
		}
		seen[ev.Key] = ev
		order = append(order, ev)
	}
	wg.Wait()
	// Each batch arrived whole and together.
	for i, ev := range order {
		if strings.HasSuffix(ev.Key, "/0") && strings.HasPrefix(ev.Key, "b") {
			if i+2 >= len(order) || order[i+1].Offset != ev.Offset || order[i+2].Offset != ev.Offset {
				t.Fatalf("batch of %s not delivered together: %+v", ev.Key, order[i:min(i+3, len(order))])
			}
		}
	}
	if got := sc.cutsDone(); got != len(sc.rules) {
		t.Fatalf("%d cuts of %d: the test did not exercise every case", got, len(sc.rules))
	}
	// Nothing more is pending: no repeat arrives later either.
	if err := ts.n.Put("last", 1); err != nil {
		t.Fatal(err)
	}
	if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "last" {
		t.Fatalf("after the rest: %+v %v", ev, err)
	}
}

// gate wraps a handler to answer watch requests after the first with a
// given status while it is set.
type gate struct {
	next    http.Handler
	status  atomic.Int32
	watches atomic.Int32
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/watch" {
		if g.watches.Add(1) > 1 {
			if s := int(g.status.Load()); s != 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(s)
				fmt.Fprintf(w, `{"error":"gate says %d","code":"gate"}`, s)
				return
			}
		}
	}
	g.next.ServeHTTP(w, r)
}

// dropStreams cuts the open watch streams by closing the clients' connections.
func dropStreams(ts *testServer) { ts.srv.CloseClientConnections() }

// TestSubscribeRetriesServerErrorsEndsOnClientErrors: after a drop, a 5xx
// answer is retried (and the subscription continues), a 4xx answer ends
// it with that error.
func TestSubscribeRetriesServerErrorsEndsOnClientErrors(t *testing.T) {
	g := &gate{}
	ts := newTestServer(t, serverOptions{wrap: func(_ *node.Node, h http.Handler) http.Handler { g.next = h; return g }})
	ctx := context.Background()
	sub, err := ts.c.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	g.status.Store(503)
	dropStreams(ts)
	eventually(t, "retries answered 503", func() bool { return g.watches.Load() >= 4 })
	g.status.Store(0)
	_ = ts.n.Put("k", 1)
	if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "k" {
		t.Fatalf("after 503s: %+v %v", ev, err)
	}

	g.status.Store(403)
	dropStreams(ts)
	_, err = nextChange(ctx, sub)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || sub.Err() != err {
		t.Fatalf("after a 403: %v (Err %v)", err, sub.Err())
	}
	select {
	case <-sub.Done():
	default:
		t.Fatal("Done not closed")
	}
}

// TestSubscribeEnds: the ways a subscription ends, and what Next returns.
func TestSubscribeEnds(t *testing.T) {
	ctx := context.Background()
	t.Run("server shutting down", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		sub, err := ts.c.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		_ = ts.n.Put("before", 1)
		eventually(t, "the event sent", func() bool { return len(sub.groups) > 0 })
		ts.h.Drain()
		<-sub.Done()
		// The event received before the end comes first, then the error.
		if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "before" {
			t.Fatalf("first: %+v %v", ev, err)
		}
		_, err = nextChange(ctx, sub)
		var ae *APIError
		if !errors.Is(err, node.ErrClosed) || !errors.As(err, &ae) || ae.Code != "shutting_down" || sub.Err() != err {
			t.Fatalf("after drain: %v", err)
		}
	})
	t.Run("record larger than the buffer", func(t *testing.T) {
		// Not a slow subscriber: a reader that kept up gets every event of
		// a record, however many.
		ts := newTestServer(t, serverOptions{node: &node.Options{Sync: node.SyncNever, SubscriberBuffer: 1}})
		sub, err := ts.c.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var b node.Batch
		b.Put("a", 1)
		b.Put("b", 2)
		b.Put("c", 3)
		if err := ts.n.Commit(&b); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"a", "b", "c"} {
			if ev, err := nextChange(ctx, sub); err != nil || ev.Key != want {
				t.Fatalf("want %s: %+v %v", want, ev, err)
			}
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		sub, err := ts.c.Subscribe(sctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if _, err := nextChange(ctx, sub); err != context.DeadlineExceeded || sub.Err() != context.DeadlineExceeded {
			t.Fatalf("after the deadline: %v (Err %v)", err, sub.Err())
		}
	})
	t.Run("context", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		sctx, cancel := context.WithCancel(ctx)
		sub, err := ts.c.Subscribe(sctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		// Next's own context ending does not end the subscription.
		nctx, ncancel := context.WithTimeout(ctx, 10*time.Millisecond)
		if _, err := nextChange(nctx, sub); !errors.Is(err, context.DeadlineExceeded) || sub.Err() != nil {
			t.Fatalf("Next with a short context: %v (Err %v)", err, sub.Err())
		}
		ncancel()
		cancel()
		if _, err := nextChange(ctx, sub); err != context.Canceled || sub.Err() != context.Canceled {
			t.Fatalf("after cancel: %v (Err %v)", err, sub.Err())
		}
	})
	t.Run("client context", func(t *testing.T) {
		// The client's context ends while the stream is open, then while
		// the subscription waits to reconnect: Next returns its error.
		g := &gate{}
		ts := newTestServer(t, serverOptions{wrap: func(_ *node.Node, h http.Handler) http.Handler { g.next = h; return g }})
		for _, reconnecting := range []bool{false, true} {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			g.watches.Store(0)
			sub, err := ts.c.WithContext(cctx).Subscribe(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if reconnecting {
				g.status.Store(503)
				dropStreams(ts)
			}
			if _, err := nextChange(ctx, sub); err != context.DeadlineExceeded {
				t.Fatalf("reconnecting %t: after the client's context: %v", reconnecting, err)
			}
		}
	})
	t.Run("Close", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		sub, err := ts.c.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_ = ts.n.Put("k", 1)
		eventually(t, "the event sent", func() bool { return len(sub.groups) > 0 })
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		_ = sub.Close()
		// Close drops what was not read.
		if _, err := nextChange(ctx, sub); !errors.Is(err, node.ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
		eventually(t, "the server sees the stream end", func() bool { return ts.h.Watchers() == 0 })
	})
	t.Run("client Close", func(t *testing.T) {
		ts := newTestServer(t, serverOptions{})
		sub, err := ts.c.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_ = ts.c.Close()
		if _, err := nextChange(ctx, sub); !errors.Is(err, node.ErrClosed) {
			t.Fatalf("after the client's Close: %v", err)
		}
		if _, err := ts.c.Get("k"); !errors.Is(err, node.ErrClosed) {
			t.Fatalf("Get after Close: %v", err)
		}
		if _, err := ts.c.Subscribe(ctx, ""); !errors.Is(err, node.ErrClosed) {
			t.Fatalf("Subscribe after Close: %v", err)
		}
	})
	t.Run("no reconnection", func(t *testing.T) {
		// The server ends streams cleanly when endStreams is cancelled.
		endStreams, endNow := context.WithCancel(ctx)
		defer endNow()
		ts := newTestServer(t, serverOptions{client: &Options{MaxReconnects: -1},
			wrap: func(_ *node.Node, h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					rctx, cancel := context.WithCancel(r.Context())
					defer cancel()
					defer context.AfterFunc(endStreams, cancel)()
					h.ServeHTTP(w, r.WithContext(rctx))
				})
			}})
		for _, end := range []string{"dropped", "ended"} {
			sub, err := ts.c.Subscribe(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			_ = ts.n.Put("k", 1)
			if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "k" {
				t.Fatalf("%+v %v", ev, err)
			}
			if end == "dropped" {
				dropStreams(ts)
			} else {
				endNow()
			}
			if _, err := nextChange(ctx, sub); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("stream %s: %v", end, err)
			}
		}
	})
	t.Run("bounded reconnections", func(t *testing.T) {
		g := &gate{}
		ts := newTestServer(t, serverOptions{
			client: &Options{MaxReconnects: 3, ReconnectDelay: time.Millisecond},
			wrap:   func(_ *node.Node, h http.Handler) http.Handler { g.next = h; return g },
		})
		sub, err := ts.c.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		g.status.Store(503)
		dropStreams(ts)
		_, err = nextChange(ctx, sub)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 503 || g.watches.Load() != 4 {
			t.Fatalf("err %v after %d watch requests, want the 503 after 1+3", err, g.watches.Load())
		}
	})
}

// TestSubscribeFrom: a catch-up from an offset, and an offset the WAL does
// not hold.
func TestSubscribeFrom(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for i := range 3 {
		_ = ts.n.Put(fmt.Sprintf("k%d", i), i)
	}
	ctx := context.Background()
	sub, err := ts.c.SubscribeFrom(ctx, "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, want := range []string{"k1", "k2"} {
		if ev, err := nextChange(ctx, sub); err != nil || ev.Key != want || ev.Data != int64(want[1]-'0') {
			t.Fatalf("%+v %v, want %s", ev, err, want)
		}
	}
	if _, err := ts.c.SubscribeFrom(ctx, "", 99); !errors.Is(err, node.ErrOffsetUnavailable) {
		t.Fatalf("beyond the WAL: %v", err)
	}
}

// TestTimeoutBoundsCallsNotStreams: Options.Timeout ends a call that takes
// longer, but not an open subscription.
func TestTimeoutBoundsCallsNotStreams(t *testing.T) {
	const timeout = 100 * time.Millisecond
	ts := newTestServer(t, serverOptions{
		client: &Options{Timeout: timeout},
		wrap: func(_ *node.Node, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/kv/slow" || r.URL.Query().Get("prefix") == "slow" {
					<-r.Context().Done()
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	if _, err := ts.c.Get("slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call: %v", err)
	}
	ctx := context.Background()
	if _, err := ts.c.Subscribe(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a watch that does not answer: %v", err)
	}
	sub, err := ts.c.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	time.Sleep(3 * timeout) // let the timeout pass: the stream stays open
	if err := ts.c.Put("k", 1); err != nil {
		t.Fatal(err)
	}
	if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "k" {
		t.Fatalf("after the timeout: %+v %v", ev, err)
	}
	// A cancelled client context ends calls.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ts.c.WithContext(cctx).Get("k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, err := ts.c.Get("k"); err != nil {
		t.Fatalf("the original client keeps its context: %v", err)
	}
}

// TestSubscribeHonoursRetry: a server's "retry:" field replaces the
// reconnection delay (here an hour, which the test would not survive).
func TestSubscribeHonoursRetry(t *testing.T) {
	var watches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if watches.Add(1) == 1 {
			fmt.Fprint(w, "retry: 1\n\n") // then the stream ends
			return
		}
		fmt.Fprint(w, "id: 5\ndata: {\"key\":\"k\",\"type\":\"counter\",\"value\":1,\"origin\":\"o\",\"offset\":5}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	c, err := New(srv.URL, &Options{ReconnectDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := c.SubscribeFrom(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "k" || ev.Data != int64(1) || ev.Offset != 5 {
		t.Fatalf("%+v %v", ev, err)
	}
}

// nextChange returns the next event but the end of a catch-up (which
// SubscribeFrom delivers once, before the live changes).
func nextChange(ctx context.Context, s *Subscription) (node.Event, error) {
	for {
		ev, err := s.Next(ctx)
		if err != nil || ev.Kind != node.EventSynced {
			return ev, err
		}
	}
}

// TestSubscribeFullResend: a catch-up from far back arrives as a reset,
// the state of every key, then synced (once), then live changes; the
// resend carries no resume point, so a stream cut in its middle starts it
// over rather than skipping keys.
func TestSubscribeFullResend(t *testing.T) {
	var cut atomic.Bool
	ts := newTestServer(t, serverOptions{
		node: &node.Options{Sync: node.SyncNever, SubscriberBuffer: 8},
		wrap: func(_ *node.Node, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/watch" && cut.CompareAndSwap(true, false) {
					// Cut this stream after a few events of the resend.
					h.ServeHTTP(&limitWriter{ResponseWriter: w, left: 600}, r)
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	for i := 0; i < 50; i++ {
		ts.n.Put(fmt.Sprintf("k%02d", i), i)
	}
	cut.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := ts.c.SubscribeFrom(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	seen := map[string]bool{}
	resets, synced := 0, 0
	for synced == 0 {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case node.EventReset:
			resets++
			clear(seen)
		case node.EventState:
			seen[ev.Key] = true
		case node.EventSynced:
			synced++
		default:
			t.Fatalf("a change before the resend ended: %+v", ev)
		}
	}
	if len(seen) != 50 || resets < 2 {
		t.Fatalf("after the resend: %d keys, %d resets (want 50 keys, and a second reset after the cut)", len(seen), resets)
	}
	ts.n.Put("live", 1)
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != node.EventChange || ev.Key != "live" {
		t.Fatalf("live event %+v, %v", ev, err)
	}
}

// limitWriter ends a response after left bytes (the stream breaks), each
// write flushed to the client.
type limitWriter struct {
	http.ResponseWriter
	left int
}

func (w *limitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *limitWriter) Flush()                      { w.ResponseWriter.(http.Flusher).Flush() }
func (w *limitWriter) Write(b []byte) (int, error) {
	if w.left <= 0 {
		panic(http.ErrAbortHandler)
	}
	if len(b) > w.left {
		b = b[:w.left]
	}
	w.left -= len(b)
	n, err := w.ResponseWriter.Write(b)
	w.Flush() // what was written reaches the client before the cut
	return n, err
}
