package httpapi

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// testClock is a wall clock the test moves by hand.
type testClock struct{ ms atomic.Int64 }

func (c *testClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

func TestHTTPExpiry(t *testing.T) {
	clk := &testClock{}
	clk.ms.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	n := newHTTPTestNode(t, &node.Options{Sync: node.SyncNever, Now: clk.Now})
	h := NewHandler(n, nil)
	at := func(d time.Duration) string { return clk.Now().Add(d).UTC().Format(time.RFC3339Nano) }

	want(t, h, 200, "PUT", "/v1/kv/reg?ttl=30s", `"v"`)
	m := want(t, h, 200, "GET", "/v1/kv/reg", "")
	jsonEq(t, m, `{"key":"reg","type":"register","value":"v","expires":"`+at(30*time.Second)+`"}`)
	want(t, h, 200, "PUT", "/v1/kv/plain", `1`)
	if m := want(t, h, 200, "GET", "/v1/kv/plain", ""); m["expires"] != nil {
		t.Fatalf("a key without expiry answers expires: %v", m)
	}
	// Every type expires the same way.
	want(t, h, 200, "POST", "/v1/kv/cnt/incr", `{"by":3}`)
	want(t, h, 200, "POST", "/v1/kv/set/add", `{"members":["a"]}`)
	want(t, h, 200, "PATCH", "/v1/kv/doc?ttl=1m", `{"set":{"f":1}}`)
	for _, k := range []string{"cnt", "set"} {
		m := want(t, h, 200, "POST", "/v1/kv/"+k+"/expire", `{"ttl":"1m"}`)
		if m["expires"] != at(time.Minute) {
			t.Fatalf("expire %s answered %v", k, m)
		}
	}
	if m := want(t, h, 200, "GET", "/v1/kv/doc", ""); m["expires"] != at(time.Minute) {
		t.Fatalf("PATCH ?ttl: %v", m)
	}
	m = want(t, h, 200, "POST", "/v1/batch", `{"ops":[{"op":"put","key":"b","value":1,"ttl":"2m"},{"op":"persist","key":"set"},{"op":"expire","key":"plain","ttl":"3m"}]}`)
	for k, w := range map[string]any{"b": at(2 * time.Minute), "set": nil, "plain": at(3 * time.Minute)} {
		if m := want(t, h, 200, "GET", "/v1/kv/"+k, ""); m["expires"] != w {
			t.Fatalf("after the batch, %s: %v, want expires %v", k, m, w)
		}
	}
	m = want(t, h, 200, "POST", "/v1/kv/plain/expire", `{"persist":true}`)
	if m["expires"] != nil || m["value"] != float64(1) {
		t.Fatalf("persist answered %v", m)
	}
	want(t, h, 404, "POST", "/v1/kv/missing/expire", `{"ttl":"1s"}`)
	want(t, h, 404, "POST", "/v1/kv/missing/expire", `{"persist":true}`)

	clk.ms.Add(time.Minute.Milliseconds())
	for _, k := range []string{"reg", "cnt", "doc"} {
		want(t, h, 404, "GET", "/v1/kv/"+k, "")
	}
	want(t, h, 200, "GET", "/v1/kv/set", "")
	if m := want(t, h, 200, "GET", "/v1/kv?prefix=", ""); len(m["keys"].([]any)) != 3 {
		t.Fatalf("keys after the expiry: %v", m)
	}
}

// Every bad TTL is a 400 with code invalid_value (or bad_request for a
// malformed body) whose message names the limit.
func TestHTTPBadTTL(t *testing.T) {
	h := NewHandler(newHTTPTestNode(t, nil), nil)
	want(t, h, 200, "PUT", "/v1/kv/k", `1`)
	max := node.MaxTTL.String()
	bad := []string{"", "0", "0s", "-1s", "-5m", "abc", "30", "1x", "87601h", "9999999h", "1e3s", " 30s"}
	for _, ttl := range bad {
		for _, r := range []struct{ method, path, body string }{
			{"PUT", "/v1/kv/k?ttl=" + ttl, `2`},
			{"PATCH", "/v1/kv/d?ttl=" + ttl, `{"set":{"f":1}}`},
			{"POST", "/v1/kv/k/expire", `{"ttl":` + quote(ttl) + `}`},
			{"POST", "/v1/batch", `{"ops":[{"op":"expire","key":"k","ttl":` + quote(ttl) + `}]}`},
			{"POST", "/v1/batch", `{"ops":[{"op":"put","key":"k","value":3,"ttl":` + quote(ttl) + `}]}`},
		} {
			path := strings.ReplaceAll(r.path, " ", "%20")
			m := want(t, h, 400, r.method, path, r.body)
			if m["code"] != "invalid_value" || !strings.Contains(m["error"].(string), max) {
				t.Fatalf("%s %s %s: %v; want invalid_value naming %s", r.method, path, r.body, m, max)
			}
		}
	}
	for _, body := range []string{`{}`, `{"ttl":"1s","persist":true}`, `{"ttl":30}`, `{"persist":"yes"}`, `{"ttl":"1s","x":1}`} {
		m := want(t, h, 400, "POST", "/v1/kv/k/expire", body)
		if m["code"] != "bad_request" {
			t.Fatalf("expire %s: %v", body, m)
		}
	}
	want(t, h, 400, "POST", "/v1/batch", `{"ops":[{"op":"incr","key":"k","ttl":"1s"}]}`)
	want(t, h, 400, "POST", "/v1/batch", `{"ops":[{"op":"expire","key":"k"}]}`)
	// Nothing was written by a refused request.
	if m := want(t, h, 200, "GET", "/v1/kv/k", ""); m["value"] != float64(1) || m["expires"] != nil {
		t.Fatalf("after refused requests: %v", m)
	}
	want(t, h, 404, "GET", "/v1/kv/d", "")
	want(t, h, 200, "PUT", "/v1/kv/k?ttl="+max, `1`)
}

func quote(s string) string { return `"` + s + `"` }

// The watch stream reports an expiry as a change of kind expired, without
// an id (it comes from no record).
func TestHTTPWatchExpired(t *testing.T) {
	clk := &testClock{}
	clk.ms.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	n := newHTTPTestNode(t, &node.Options{Sync: node.SyncNever, Now: clk.Now, SweepInterval: 5 * time.Millisecond})
	h := NewHandler(n, &Options{WatchKeepAlive: 50 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, sc := openWatch(t, ctx, srv.URL, "?prefix=w/", "")
	defer resp.Body.Close()
	want(t, h, 200, "PUT", "/v1/kv/w%2Fa?ttl=1s", `1`)
	evs := readEvents(t, sc, 1)
	clk.ms.Add(1000)
	evs = append(evs, readEvents(t, sc, 1)...)
	if evs[0].data["kind"] != nil || evs[0].id == "" {
		t.Fatalf("the put: %+v", evs[0])
	}
	if e := evs[1]; e.data["kind"] != "expired" || e.data["key"] != "w/a" || e.data["deleted"] != true || e.id != "" {
		t.Fatalf("the expiry: %+v", e)
	}
}
