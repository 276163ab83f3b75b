package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func newHTTPTestNode(t testing.TB, opts *node.Options) *node.Node {
	t.Helper()
	if opts == nil {
		opts = &node.Options{Sync: node.SyncNever}
	}
	n, err := node.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// call sends one request to h and returns the status and the body.
func call(t testing.TB, h http.Handler, method, path, body string, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// want checks a request's status, and that error answers are JSON
// {"error": "..."}; it returns the decoded body.
func want(t testing.TB, h http.Handler, status int, method, path, body string, header ...string) map[string]any {
	t.Helper()
	code, out := call(t, h, method, path, body, header...)
	if code != status {
		t.Fatalf("%s %s %q: status %d, want %d; body %s", method, path, body, code, status, out)
	}
	if code == http.StatusNoContent {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, out)
	}
	if code >= 400 {
		if e, ok := m["error"].(string); !ok || e == "" {
			t.Fatalf("%s %s: error answer without an error message: %q", method, path, out)
		}
		if c, ok := m["code"].(string); !ok || c == "" {
			t.Fatalf("%s %s: error answer without a code: %q", method, path, out)
		}
	}
	return m
}

func jsonEq(t testing.TB, got any, wantJSON string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(wantJSON), &w); err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(got)
	ws, _ := json.Marshal(w)
	if string(g) != string(ws) {
		t.Fatalf("got %s, want %s", g, ws)
	}
}

func TestHTTPEveryType(t *testing.T) {
	h := NewHandler(newHTTPTestNode(t, nil), nil)

	m := want(t, h, 200, "PUT", "/v1/kv/greeting", `{"text": "hello", "n": 12345678901234567}`)
	jsonEq(t, m, `{"key":"greeting","type":"register","value":{"text":"hello","n":12345678901234567}}`)
	m = want(t, h, 200, "GET", "/v1/kv/greeting", "")
	jsonEq(t, m, `{"key":"greeting","type":"register","value":{"n":12345678901234567,"text":"hello"}}`)
	m = want(t, h, 200, "GET", "/v1/kv/greeting?siblings=true", "")
	sibs, _ := m["siblings"].([]any)
	if len(sibs) != 1 {
		t.Fatalf("siblings = %v, want one", m["siblings"])
	}
	// A register field of a document: field=F, repeated for a nested path.
	want(t, h, 200, "PATCH", "/v1/kv/card", `{"set": {"title": "t"}, "incr": {"votes": 1}, "nested": {"meta": {"set": {"by": "ann"}}}}`)
	m = want(t, h, 200, "GET", "/v1/kv/card?siblings=true&field=title", "")
	jsonEq(t, m["value"], `{"meta":{"by":"ann"},"title":"t","votes":1}`)
	if sibs, _ := m["siblings"].([]any); len(sibs) != 1 || sibs[0].(map[string]any)["value"] != "t" {
		t.Fatalf("title siblings = %v", m["siblings"])
	}
	m = want(t, h, 200, "GET", "/v1/kv/card?siblings=true&field=meta&field=by", "")
	if sibs, _ := m["siblings"].([]any); len(sibs) != 1 || sibs[0].(map[string]any)["value"] != "ann" {
		t.Fatalf("meta.by siblings = %v", m["siblings"])
	}
	want(t, h, 409, "GET", "/v1/kv/card?siblings=true&field=votes", "")
	want(t, h, 409, "GET", "/v1/kv/card?siblings=true", "")
	want(t, h, 404, "GET", "/v1/kv/card?siblings=true&field=nope", "")

	// Keys holding '/', spaces, '%' and non-ASCII travel escaped.
	for _, key := range []string{"a/b/c", "with space", "100%", "ключ", "..", "x/incr", `quo"te\<&>`} {
		p := "/v1/kv/" + url.PathEscape(key)
		m = want(t, h, 200, "PUT", p, " \n[\"v\",\n 2]\n")
		jsonEq(t, m["value"], `["v",2]`)
		m = want(t, h, 200, "GET", p, "")
		if m["key"] != key {
			t.Fatalf("key %q came back as %v", key, m["key"])
		}
	}

	m = want(t, h, 200, "POST", "/v1/kv/hits/incr", `{"by": 5}`)
	jsonEq(t, m, `{"key":"hits","type":"counter","value":5}`)
	m = want(t, h, 200, "POST", "/v1/kv/hits/incr", ``) // no body: by 1
	jsonEq(t, m["value"], `6`)
	m = want(t, h, 200, "POST", "/v1/kv/hits/incr", `{"by": -10}`)
	jsonEq(t, m["value"], `-4`)
	// A key with slashes and an action.
	want(t, h, 200, "POST", "/v1/kv/stats/daily/incr", `{"by": 2}`)
	m = want(t, h, 200, "GET", "/v1/kv/"+url.PathEscape("stats/daily"), "")
	jsonEq(t, m["value"], `2`)

	m = want(t, h, 200, "POST", "/v1/kv/tags/add", `{"members": ["b", "a", "c"]}`)
	jsonEq(t, m, `{"key":"tags","type":"set","value":["a","b","c"]}`)
	m = want(t, h, 200, "POST", "/v1/kv/tags/remove", `{"members": ["b"]}`)
	jsonEq(t, m["value"], `["a","c"]`)

	m = want(t, h, 200, "PATCH", "/v1/kv/doc", `{"set": {"title": "x", "meta": {"a": 1}}, "incr": {"views": 3}, "add": {"tags": ["t1"]}, "enable": ["pinned"]}`)
	jsonEq(t, m, `{"key":"doc","type":"map","value":{"meta":{"a":1},"pinned":true,"tags":["t1"],"title":"x","views":3},"sets":[["tags"]]}`)
	m = want(t, h, 200, "PATCH", "/v1/kv/doc", `{"delete": ["meta", "pinned"], "nested": {"author": {"set": {"name": "ann"}}}}`)
	jsonEq(t, m["value"], `{"author":{"name":"ann"},"tags":["t1"],"title":"x","views":3}`)

	m = want(t, h, 200, "GET", "/v1/kv?prefix=stats", "")
	jsonEq(t, m, `{"keys":[{"key":"stats/daily","type":"counter"}]}`)
	m = want(t, h, 200, "GET", "/v1/kv?limit=2", "")
	jsonEq(t, m["keys"], `[{"key":"..","type":"register"},{"key":"100%","type":"register"}]`)

	want(t, h, 204, "DELETE", "/v1/kv/greeting", "")
	want(t, h, 404, "GET", "/v1/kv/greeting", "")
	want(t, h, 404, "DELETE", "/v1/kv/greeting", "")

	m = want(t, h, 200, "GET", "/v1/status", "")
	if m["digest"] == "" || m["replica"] == "" || m["keys"].(float64) < 5 {
		t.Fatalf("status = %v", m)
	}
	m = want(t, h, 200, "GET", "/v1/members", "")
	if ms, _ := m["members"].([]any); len(ms) != 1 {
		t.Fatalf("members = %v", m)
	}
	want(t, h, 200, "GET", "/healthz", "")
}

func TestHTTPErrorStatuses(t *testing.T) {
	n := newHTTPTestNode(t, &node.Options{Sync: node.SyncNever, MaxValueBytes: 1 << 10})
	h := NewHandler(n, &Options{MaxBodyBytes: 4 << 10})
	want(t, h, 200, "PUT", "/v1/kv/reg", `1`)
	want(t, h, 200, "POST", "/v1/kv/cnt/incr", `{"by":1}`)
	longKey := strings.Repeat("k", node.MaxKeyBytes+1)

	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"malformed JSON value", "PUT", "/v1/kv/x", `{"a":`, 400},
		{"two JSON values", "PUT", "/v1/kv/x", `1 2`, 400},
		{"empty PUT body", "PUT", "/v1/kv/x", ``, 400},
		{"NaN is not JSON", "PUT", "/v1/kv/x", `NaN`, 400},
		{"incr by a string", "POST", "/v1/kv/cnt/incr", `{"by":"x"}`, 400},
		{"incr by a float", "POST", "/v1/kv/cnt/incr", `{"by":1.5}`, 400},
		{"incr unknown field", "POST", "/v1/kv/cnt/incr", `{"by":1,"extra":2}`, 400},
		{"incr body not an object", "POST", "/v1/kv/cnt/incr", `[1]`, 400},
		{"members not an array", "POST", "/v1/kv/s/add", `{"members":"a"}`, 400},
		{"members empty", "POST", "/v1/kv/s/add", `{"members":[]}`, 400},
		{"patch empty", "PATCH", "/v1/kv/d", `{}`, 400},
		{"patch wrong shape", "PATCH", "/v1/kv/d", `{"set":[1]}`, 400},
		{"patch bad value", "PATCH", "/v1/kv/d", `{"set":{"f":tru}}`, 400},
		{"empty key", "PUT", "/v1/kv/", `1`, 400},
		{"key not UTF-8", "PUT", "/v1/kv/%FF", `1`, 400},
		{"limit not a number", "GET", "/v1/kv?limit=x", ``, 400},
		{"incr on a register", "POST", "/v1/kv/reg/incr", `{"by":1}`, 409},
		{"add to a counter", "POST", "/v1/kv/cnt/add", `{"members":["a"]}`, 409},
		{"patch a register", "PATCH", "/v1/kv/reg", `{"set":{"a":1}}`, 409},
		{"put on a counter", "PUT", "/v1/kv/cnt", `1`, 409},
		{"siblings of a counter", "GET", "/v1/kv/cnt?siblings=true", ``, 409},
		{"key too long", "PUT", "/v1/kv/" + longKey, `1`, 413},
		{"key too long on read", "GET", "/v1/kv/" + longKey, ``, 413},
		{"body too large", "PUT", "/v1/kv/x", `"` + strings.Repeat("a", 5<<10) + `"`, 413},
		{"value too large for the node", "PUT", "/v1/kv/x", `"` + strings.Repeat("a", 2<<10) + `"`, 413},
		{"no such key", "GET", "/v1/kv/nope", ``, 404},
		{"no such endpoint", "GET", "/v2/kv/x", ``, 404},
		{"unknown action", "POST", "/v1/kv/x/frobnicate", `{}`, 404},
		{"POST without action", "POST", "/v1/kv/x", `{}`, 405},
		{"wrong method", "DELETE", "/v1/status", ``, 405},
		{"batch unknown op", "POST", "/v1/batch", `{"ops":[{"op":"zap","key":"a"}]}`, 400},
		{"batch empty", "POST", "/v1/batch", `{"ops":[]}`, 400},
		{"watch bad from", "GET", "/v1/watch?from=x", ``, 400},
		{"watch from beyond the log", "GET", "/v1/watch?from=999999", ``, 410},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want(t, h, tt.status, tt.method, tt.path, tt.body)
		})
	}
	// Nothing of the refused writes is visible.
	want(t, h, 404, "GET", "/v1/kv/x", "")
}

// TestHTTPErrorCodes: error answers carry the machine-readable code of the
// same table as their status, a distinct code per kind of error.
func TestHTTPErrorCodes(t *testing.T) {
	n := newHTTPTestNode(t, nil)
	h := NewHandler(n, &Options{MaxBodyBytes: 64})
	want(t, h, 200, "PUT", "/v1/kv/reg", `1`)
	for _, tt := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/kv?limit=x", "", 400, "bad_request"},
		{"PUT", "/v1/kv/%FF", "1", 400, "invalid_key"},
		{"PUT", "/v1/kv/x", "{", 400, "invalid_value"},
		{"GET", "/v1/kv/nope", "", 404, "not_found"},
		{"GET", "/v2", "", 404, "no_endpoint"},
		{"DELETE", "/v1/status", "", 405, "method_not_allowed"},
		{"POST", "/v1/kv/reg/incr", `{"by":1}`, 409, "wrong_type"},
		{"POST", "/v1/sync/wait", "", 409, "offline"},
		{"GET", "/v1/watch?from=999", "", 410, "offset_unavailable"},
		{"GET", "/v1/kv/" + strings.Repeat("k", node.MaxKeyBytes+1), "", 413, "too_large"},
		{"PUT", "/v1/kv/x", `"` + strings.Repeat("a", 100) + `"`, 413, "too_large"},
	} {
		if m := want(t, h, tt.status, tt.method, tt.path, tt.body); m["code"] != tt.code {
			t.Errorf("%s %s: code %v, want %s", tt.method, tt.path, m["code"], tt.code)
		}
	}
	seen := map[string]bool{"internal": true}
	for _, e := range httpErrorStatuses {
		if seen[e.code] {
			t.Errorf("code %q used twice", e.code)
		}
		seen[e.code] = true
	}
}

// TestHTTPSetPaths: answers for a map name its set fields, nested ones
// too, and not a register field holding an array of strings.
func TestHTTPSetPaths(t *testing.T) {
	n := newHTTPTestNode(t, nil)
	h := NewHandler(n, nil)
	m := want(t, h, 200, "PATCH", "/v1/kv/d", `{"set":{"arr":["x"],"obj":{"s":["y"]}},"add":{"t":["a"]},"nested":{"sub":{"add":{"s":["b"]},"incr":{"c":1}}}}`)
	jsonEq(t, m["sets"], `[["sub","s"],["t"]]`)
	m = want(t, h, 200, "GET", "/v1/kv/d", "")
	jsonEq(t, m["sets"], `[["sub","s"],["t"]]`)
	want(t, h, 200, "POST", "/v1/kv/s/add", `{"members":["a"]}`)
	if m = want(t, h, 200, "GET", "/v1/kv/s", ""); m["sets"] != nil {
		t.Fatalf("a set answer names set fields: %v", m)
	}
}

func TestHTTPToken(t *testing.T) {
	h := NewHandler(newHTTPTestNode(t, nil), &Options{Token: "s3cret"})
	want(t, h, 401, "GET", "/v1/status", "")
	want(t, h, 401, "PUT", "/v1/kv/a", `1`, "Authorization", "Bearer wrong")
	want(t, h, 401, "PUT", "/v1/kv/a", `1`, "Authorization", "s3cret")
	want(t, h, 401, "GET", "/metrics", "")
	want(t, h, 200, "PUT", "/v1/kv/a", `1`, "Authorization", "Bearer s3cret")
	want(t, h, 200, "GET", "/v1/kv/a", ``, "Authorization", "bearer s3cret")
	// Health checks need no token.
	want(t, h, 200, "GET", "/healthz", "")
	code, _ := call(t, h, "GET", "/v1/status", "")
	if code != 401 {
		t.Fatal(code)
	}
}

func TestHTTPShutdown(t *testing.T) {
	n := newHTTPTestNode(t, nil)
	h := NewHandler(n, nil)
	want(t, h, 200, "PUT", "/v1/kv/a", `1`)
	h.Drain()
	want(t, h, 503, "PUT", "/v1/kv/a", `2`)
	want(t, h, 503, "POST", "/v1/kv/c/incr", `{"by":1}`)
	want(t, h, 503, "DELETE", "/v1/kv/a", ``)
	want(t, h, 503, "POST", "/v1/batch", `{"ops":[{"op":"put","key":"b","value":1}]}`)
	want(t, h, 503, "GET", "/healthz", ``)
	want(t, h, 503, "GET", "/v1/watch", ``)
	// Reads go on until the node closes.
	want(t, h, 200, "GET", "/v1/kv/a", ``)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	want(t, h, 503, "GET", "/v1/kv/a", ``)
	want(t, h, 503, "GET", "/v1/status", ``)

	// A node closed under a handler that was not drained: 503 too.
	n2 := newHTTPTestNode(t, nil)
	h2 := NewHandler(n2, nil)
	_ = n2.Close()
	want(t, h2, 503, "PUT", "/v1/kv/a", `1`)
	want(t, h2, 503, "GET", "/healthz", ``)
}

func TestHTTPBatchIsAtomic(t *testing.T) {
	h := NewHandler(newHTTPTestNode(t, nil), nil)
	want(t, h, 200, "PUT", "/v1/kv/reg", `"r"`)
	m := want(t, h, 200, "POST", "/v1/batch", `{"ops":[
		{"op":"put","key":"a","value":{"x":1}},
		{"op":"incr","key":"c","by":3},
		{"op":"incr","key":"c"},
		{"op":"add","key":"s","members":["m1","m2"]},
		{"op":"remove","key":"s","members":["m1"]},
		{"op":"patch","key":"d","patch":{"set":{"f":true}}},
		{"op":"delete","key":"reg"}]}`)
	jsonEq(t, m, `{"ops":7}`)
	jsonEq(t, want(t, h, 200, "GET", "/v1/kv/c", "")["value"], `4`)
	jsonEq(t, want(t, h, 200, "GET", "/v1/kv/s", "")["value"], `["m2"]`)
	jsonEq(t, want(t, h, 200, "GET", "/v1/kv/d", "")["value"], `{"f":true}`)
	want(t, h, 404, "GET", "/v1/kv/reg", "")

	// One failing operation (incr on a register) and none applies.
	want(t, h, 409, "POST", "/v1/batch", `{"ops":[{"op":"put","key":"b","value":1},{"op":"incr","key":"a"}]}`)
	want(t, h, 404, "GET", "/v1/kv/b", "")
}

func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n := newHTTPTestNode(t, &node.Options{Sync: node.SyncNever, Registerer: reg})
	h := NewHandler(n, &Options{Gatherer: reg})
	want(t, h, 200, "PUT", "/v1/kv/a", `1`)
	code, body := call(t, h, "GET", "/metrics", "")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "shoal_") {
		t.Fatalf("metrics: %d\n%.2000s", code, body)
	}
	// No gatherer: no endpoint.
	want(t, NewHandler(n, nil), 404, "GET", "/metrics", "")
}

// sseEvent is one parsed SSE event.
type sseEvent struct {
	id   string
	kind string
	data map[string]any
}

// readEvents reads SSE events from r until n events arrived.
func readEvents(t *testing.T, sc *bufio.Scanner, n int) []sseEvent {
	t.Helper()
	var evs []sseEvent
	var cur sseEvent
	var data string
	for len(evs) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if err := json.Unmarshal([]byte(data), &cur.data); err != nil {
					t.Fatalf("event data %q: %v", data, err)
				}
				evs = append(evs, cur)
			}
			cur, data = sseEvent{}, ""
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
	if len(evs) < n {
		t.Fatalf("stream ended after %d of %d events: %v", len(evs), n, sc.Err())
	}
	return evs
}

func openWatch(t *testing.T, ctx context.Context, base, query, lastID string) (*http.Response, *bufio.Scanner) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/watch"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	return resp, bufio.NewScanner(resp.Body)
}

func TestHTTPWatchAndResume(t *testing.T) {
	n := newHTTPTestNode(t, nil)
	h := NewHandler(n, &Options{WatchKeepAlive: 50 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	// A stream that misses events must fail the test, not hang it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resp, sc := openWatch(t, ctx, srv.URL, "?prefix=w/", "")
	want(t, h, 200, "PUT", "/v1/kv/w%2Fa", `1`)
	want(t, h, 200, "PUT", "/v1/kv/other", `1`) // not under the prefix
	want(t, h, 200, "POST", "/v1/kv/w%2Fc/incr", `{"by":2}`)
	// A batch is one record: its events share an offset, and only the last
	// carries the id.
	want(t, h, 200, "POST", "/v1/batch", `{"ops":[{"op":"put","key":"w/b1","value":1},{"op":"put","key":"w/b2","value":2}]}`)
	want(t, h, 204, "DELETE", "/v1/kv/w%2Fa", "")
	evs := readEvents(t, sc, 5)
	resp.Body.Close()
	keys := []string{}
	for _, e := range evs {
		keys = append(keys, e.data["key"].(string))
	}
	if got := strings.Join(keys, ","); got != "w/a,w/c,w/b1,w/b2,w/a" {
		t.Fatalf("event keys %s", got)
	}
	if evs[2].id != "" || evs[3].id == "" || evs[2].data["offset"] != evs[3].data["offset"] {
		t.Fatalf("batch events: %+v %+v", evs[2], evs[3])
	}
	if evs[4].data["deleted"] != true || evs[1].data["value"] != float64(2) {
		t.Fatalf("events: %+v", evs)
	}
	for i, e := range []int{0, 1, 3, 4} {
		if evs[e].id != fmt.Sprint(evs[e].data["offset"]) {
			t.Fatalf("event %d: id %q, offset %v", i, evs[e].id, evs[e].data["offset"])
		}
	}

	// Resume after the first event: everything after it arrives, nothing
	// before (the catch-up sends each key's current value once).
	want(t, h, 200, "PUT", "/v1/kv/w%2Fz", `9`)
	resp, sc = openWatch(t, ctx, srv.URL, "?prefix=w/", evs[0].id)
	got := readEvents(t, sc, 5)
	resp.Body.Close()
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.data["key"].(string)] = true
	}
	for _, k := range []string{"w/a", "w/c", "w/b1", "w/b2", "w/z"} {
		if !seen[k] {
			t.Fatalf("resume missed %s: %+v", k, got)
		}
	}
	// ?from= is inclusive.
	resp, sc = openWatch(t, ctx, srv.URL, "?prefix=w/z&from="+fmt.Sprint(evs[4].data["offset"]), "")
	got = readEvents(t, sc, 1)
	resp.Body.Close()
	if got[0].data["key"] != "w/z" {
		t.Fatalf("from: %+v", got)
	}

	// Draining ends open streams with an error event.
	resp, sc = openWatch(t, ctx, srv.URL, "", "")
	defer resp.Body.Close()
	h.Drain()
	got = readEvents(t, sc, 1)
	if got[0].kind != "error" {
		t.Fatalf("after drain: %+v", got)
	}
}

// FuzzHTTPBodies sends arbitrary bodies to every endpoint that reads one:
// the handler never panics and never answers 500.
func FuzzHTTPBodies(f *testing.F) {
	for _, s := range []string{``, `1`, `"x"`, `{"by":1}`, `{"members":["a"]}`, `{"set":{"a":1},"delete":["b"],"incr":{"c":1}}`,
		`{"ops":[{"op":"put","key":"a","value":1}]}`, `{"nested":{"a":{"nested":{"b":{"set":{"c":null}}}}}}`, `[[[[[[]]]]]]`,
		`{"by":9223372036854775807}`, `{"ops":[{"op":"patch","key":"k","patch":{"add":{"s":["x"]}}}]}`, "\xff", `{"a":1e400}`,
		`{"ttl":"30s"}`, `{"persist":true}`, `{"ttl":"-1s"}`, `{"ops":[{"op":"expire","key":"f","ttl":"1m"},{"op":"persist","key":"f"}]}`} {
		for ep := 0; ep < 8; ep++ {
			f.Add(uint8(ep), s)
		}
	}
	n := newHTTPTestNode(f, nil)
	h := NewHandler(n, &Options{MaxBodyBytes: 64 << 10, MaxBatchBodyBytes: 64 << 10})
	eps := []struct{ method, path string }{
		{"PUT", "/v1/kv/f"}, {"POST", "/v1/kv/c/incr"}, {"POST", "/v1/kv/s/add"},
		{"POST", "/v1/kv/s/remove"}, {"PATCH", "/v1/kv/d"}, {"POST", "/v1/batch"},
		{"POST", "/v1/kv/f/expire"}, {"PUT", "/v1/kv/f?ttl=1h"},
	}
	f.Fuzz(func(t *testing.T, ep uint8, body string) {
		e := eps[int(ep)%len(eps)]
		code, out := call(t, h, e.method, e.path, body)
		if code >= 500 {
			t.Fatalf("%s %s %q: %d %s", e.method, e.path, body, code, out)
		}
		if code >= 400 && !strings.Contains(out, `"error"`) {
			t.Fatalf("%s %s %q: %d without a JSON error: %s", e.method, e.path, body, code, out)
		}
	})
}

// BenchmarkHTTPHandlerPut measures the handler and the node without the
// network: durable PUTs of a 256-byte value from 256 goroutines through
// ServeHTTP, against a handler that only drains the body (the same request
// and recorder costs), to isolate what a PUT costs beyond HTTP itself.
func BenchmarkHTTPHandlerPut(b *testing.B) {
	value := `"` + strings.Repeat("v", 254) + `"`
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"key":"k","type":"register","value":"v"}` + "\n"))
	})
	for _, target := range []string{"noop", "shoal"} {
		b.Run(target, func(b *testing.B) {
			var h http.Handler = noop
			if target == "shoal" {
				h = NewHandler(newHTTPTestNode(b, &node.Options{Sync: node.SyncAlways}), nil)
			}
			b.SetParallelism(128) // 256 goroutines on 2 CPUs
			var i atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("PUT", fmt.Sprintf("/v1/kv/bench-%d", i.Add(1)%10000), strings.NewReader(value))
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

// BenchmarkHTTPHandlerGet measures GET of a 256-byte register through
// ServeHTTP, without the network, from GOMAXPROCS goroutines.
func BenchmarkHTTPHandlerGet(b *testing.B) {
	n := newHTTPTestNode(b, nil)
	const keys = 10000
	var batch node.Batch
	for i := range keys {
		batch.Put(fmt.Sprintf("bench-%d", i), strings.Repeat("v", 254))
	}
	if err := n.Commit(&batch); err != nil {
		b.Fatal(err)
	}
	h := NewHandler(n, nil)
	var i atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", fmt.Sprintf("/v1/kv/bench-%d", i.Add(1)%keys), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// blockingWriter is a ResponseWriter whose Write of a chunk holding one of
// its block markers waits until that marker's release is closed (its
// blocked is closed when it starts waiting).
type blockingWriter struct {
	header http.Header
	blocks map[string]*writeBlock
	mu     sync.Mutex
	out    strings.Builder
}

type writeBlock struct {
	blocked, release chan struct{}
	once             atomic.Bool // blocks the first matching write only
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(b []byte) (int, error) {
	for marker, blk := range w.blocks {
		if strings.Contains(string(b), marker) && blk.once.CompareAndSwap(false, true) {
			close(blk.blocked)
			<-blk.release
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// TestHTTPWatchFallsBehindAndGoesOn: a reader that falls behind the live
// feed (its events held back while a record is half written) is not cut
// off: the stream goes on from the log after the last id it was sent,
// every key arrives with its current value, synced marks the end of the
// catch-up, and live events follow.
func TestHTTPWatchFallsBehindAndGoesOn(t *testing.T) {
	n := newHTTPTestNode(t, &node.Options{Sync: node.SyncNever, SubscriberBuffer: 3})
	h := NewHandler(n, nil)
	blockZ := &writeBlock{blocked: make(chan struct{}), release: make(chan struct{})}
	blockA := &writeBlock{blocked: make(chan struct{}), release: make(chan struct{})}
	w := &blockingWriter{header: http.Header{}, blocks: map[string]*writeBlock{`"key":"z"`: blockZ, `"key":"a"`: blockA}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/watch", nil).WithContext(ctx))
	}()
	for deadline := time.Now().Add(10 * time.Second); h.Watchers() != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not open")
		}
		time.Sleep(time.Millisecond)
	}
	commit := func(keys ...string) {
		var b node.Batch
		for _, k := range keys {
			b.Put(k, k+"-value")
		}
		if err := n.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	commit("z") // offset 0: the handler writes it and waits in the write
	<-blockZ.blocked
	commit("a", "b", "c") // offset 1, queued whole while the handler waits
	close(blockZ.release)
	<-blockA.blocked      // the handler writes a and holds b back
	commit("d", "e", "f") // offset 2: the reader is now 4 behind
	commit("g")           // more than the buffer behind: dropped from the live feed
	close(blockA.release)
	for deadline := time.Now().Add(10 * time.Second); h.WatchResumes() != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not go on from the log; stream:\n%s", w.String())
		}
		time.Sleep(time.Millisecond)
	}
	commit("h")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.String(), `"key":"h"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no live event after the catch-up; stream:\n%s", w.String())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	out := w.String()
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		if !strings.Contains(out, `"key":"`+k+`","type":"register","value":"`+k+`-value"`) {
			t.Fatalf("key %s missing after the catch-up; stream:\n%s", k, out)
		}
	}
	if !strings.Contains(out, `"kind":"synced"`) || strings.Contains(out, "slow_subscriber") {
		t.Fatalf("stream:\n%s", out)
	}
}
