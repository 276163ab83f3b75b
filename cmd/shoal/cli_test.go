package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

// TestCLIOutputsExact pins, byte for byte, the outputs the CLI builds from
// the client's values rather than printing the server's answer (events,
// siblings, key lists, a register holding null, a map with set fields, a
// value as stored), as the API answers them: no HTML escaping, no number
// rounded, a PUT answered with the canonical value.
func TestCLIOutputsExact(t *testing.T) {
	a := startAgent(t, t.TempDir())
	sh := func(args ...string) string { t.Helper(); return mustShoal(t, append(args, "--addr", a.URL())...) }
	sh("put", "nul", "null")
	sh("put", "html", `<a href="x">&</a>`)
	sh("put", "big", "123456789012345678901234567890")
	sh("incr", "hits", "6")
	sh("add", "tags", "b", "a")
	sh("remove", "tags", "a", "b")
	sh("patch", "doc", "--set", "title=Hello", "--add", "tags=x", "--enable", "pinned")
	sh("patch", "doc", `{"nested":{"sub":{"add":{"s":["q"]},"set":{"n":null}}}}`)
	sh("put", "gone", "1")
	sh("del", "gone")
	replica := regexp.MustCompile(`"replica":"([0-9a-f]{16})"`).FindStringSubmatch(sh("status", "-o", "json"))[1]

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "nul", "-o", "json"}, `{"key":"nul","type":"register","value":null}` + "\n"},
		{[]string{"get", "nul"}, "null\n"},
		{[]string{"get", "html", "-o", "json"}, `{"key":"html","type":"register","value":"<a href=\"x\">&</a>"}` + "\n"},
		{[]string{"get", "big"}, "123456789012345678901234567890\n"}, // every digit, as stored
		{[]string{"get", "doc"}, "{\n  \"pinned\": true,\n  \"sub\": {\n    \"n\": null,\n    \"s\": [\n      \"q\"\n    ]\n  },\n  \"tags\": [\n    \"x\"\n  ],\n  \"title\": \"Hello\"\n}\n"},
		{[]string{"keys", "zzz", "-o", "json"}, `{"keys":[]}` + "\n"},
		{[]string{"keys", "h"}, "hits  counter\nhtml  register\n"},
		{[]string{"watch", "--from", "0", "--count", "7"}, "0\tregister\tnul\t\n1\tregister\thtml\t<a href=\"x\">&</a>\n" +
			"2\tregister\tbig\t123456789012345678901234567890\n3\tcounter\thits\t6\n5\tdel\ttags\n" +
			"7\tmap\tdoc\t{\"pinned\":true,\"sub\":{\"n\":null,\"s\":[\"q\"]},\"tags\":[\"x\"],\"title\":\"Hello\"}\n9\tdel\tgone\n"},
		{[]string{"watch", "--from", "0", "--count", "7", "-o", "json"}, `{"key":"nul","type":"register","origin":"R","offset":0}
{"key":"html","type":"register","value":"<a href=\"x\">&</a>","origin":"R","offset":1}
{"key":"big","type":"register","value":123456789012345678901234567890,"origin":"R","offset":2}
{"key":"hits","type":"counter","value":6,"origin":"R","offset":3}
{"key":"tags","deleted":true,"origin":"R","offset":5}
{"key":"doc","type":"map","value":{"pinned":true,"sub":{"n":null,"s":["q"]},"tags":["x"],"title":"Hello"},"origin":"R","offset":7}
{"key":"gone","deleted":true,"origin":"R","offset":9}
`},
		// Writes last: the replays above show each key's latest change.
		{[]string{"put", "-o", "json", "j", `{"b":1, "a":2}`}, `{"key":"j","type":"register","value":{"a":2,"b":1}}` + "\n"}, // as stored
		{[]string{"incr", "hits", "0", "-o", "json"}, `{"key":"hits","type":"counter","value":6}` + "\n"},
		{[]string{"watch", "--after", "5", "--count", "1"}, "7\tmap\tdoc\t{\"pinned\":true,\"sub\":{\"n\":null,\"s\":[\"q\"]},\"tags\":[\"x\"],\"title\":\"Hello\"}\n"},
	} {
		want := strings.ReplaceAll(tt.want, `"origin":"R"`, `"origin":"`+replica+`"`)
		if got := sh(tt.args...); got != want {
			t.Errorf("shoal %q:\n got %q\nwant %q", tt.args, got, want)
		}
	}
	// With --siblings, the API's answer as it is.
	resp, err := http.Get(a.URL() + "/v1/kv/html?siblings=true")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var api bytes.Buffer
	_ = json.Compact(&api, body)
	if got := sh("get", "html", "--siblings", "-o", "json"); got != api.String()+"\n" || !strings.Contains(got, `"time":"`) {
		t.Errorf("get --siblings -o json:\n got %q\nwant %q", got, api.String())
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"watch", "--after", "abc"}, "Error: bad request: Last-Event-ID \"abc\" is not a WAL offset\n"},
		{[]string{"watch", "--timeout", "100ms"}, "Error: context deadline exceeded\n"},
	} {
		if r := runShoal(t, nil, "", append(tt.args, "--addr", a.URL())...); r.code != 1 || r.err != tt.err {
			t.Errorf("shoal %q: %+v, want exit 1 and %q", tt.args, r, tt.err)
		}
	}
	// --wait 0 is the server's default wait (no peers here: at once).
	if got := sh("wait-synced", "--wait", "0"); got != "synced\n" {
		t.Errorf("wait-synced --wait 0: %q", got)
	}
}

// TestCLIWatchEnds: an interrupted watch exits 0; a dropped stream ends
// it with exit 1 (it does not reconnect: a script restarts it with
// --after).
func TestCLIWatchEnds(t *testing.T) {
	n, err := node.Open(t.TempDir(), &node.Options{Sync: node.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := httpapi.NewHandler(n, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	watch := func(ctx context.Context) <-chan cliResult {
		done := make(chan cliResult, 1)
		go func() {
			var out, errb bytes.Buffer
			m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: noEnv}
			code := m.Main(ctx, []string{"watch", "--addr", srv.URL})
			done <- cliResult{out.String(), errb.String(), code}
		}()
		deadline := time.Now().Add(20 * time.Second)
		for h.Watchers() == 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		return done
	}
	result := func(done <-chan cliResult) cliResult {
		t.Helper()
		select {
		case r := <-done:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("the watch did not end")
			return cliResult{}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := watch(ctx)
	cancel()
	if r := result(done); r.code != 0 || r.err != "" {
		t.Errorf("interrupted: %+v", r)
	}

	deadline := time.Now().Add(20 * time.Second)
	for h.Watchers() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond) // the first stream's end reaches the server
	}
	done = watch(context.Background())
	srv.CloseClientConnections()
	if r := result(done); r.code != 1 || r.err != "Error: unexpected EOF\n" {
		t.Errorf("dropped: %+v", r)
	}
}

// TestCLIQuotesUnprintableKeys: a key holding ESC, CR or LF is printed
// quoted, never raw to the terminal; printable keys print as they are.
func TestCLIQuotesUnprintableKeys(t *testing.T) {
	a := startAgent(t, t.TempDir())
	evil := "k\x1b[2J\r\nFAKE\tline"
	for _, k := range []string{evil, "plain", `"quoted"`} {
		mustShoal(t, "put", k, "1", "--addr", a.URL())
	}
	out := mustShoal(t, "keys", "--addr", a.URL())
	if strings.ContainsAny(out, "\x1b\r") || strings.Contains(out, "\nFAKE") {
		t.Fatalf("keys printed a control character raw: %q", out)
	}
	for _, want := range []string{strconv.Quote(evil), "plain ", strconv.Quote(`"quoted"`)} {
		if !strings.Contains(out, want) {
			t.Fatalf("keys output %q lacks %q", out, want)
		}
	}
	out = mustShoal(t, "watch", "--from", "0", "--count", "4", "--addr", a.URL())
	if strings.ContainsAny(out, "\x1b\r") || !strings.Contains(out, strconv.Quote(evil)) || !strings.Contains(out, "\tsynced") {
		t.Fatalf("watch output %q", out)
	}
}

// TestCLIExpiry: put --ttl, patch --ttl, expire and persist, get showing
// the expiry, bad TTLs refused naming the limit.
func TestCLIExpiry(t *testing.T) {
	a := startAgent(t, t.TempDir())
	sh := func(args ...string) string { t.Helper(); return mustShoal(t, append(args, "--addr", a.URL())...) }
	if out := sh("put", "--ttl", "1h", "s", "v"); out != "OK\n" {
		t.Fatalf("put --ttl: %q", out)
	}
	out := sh("get", "s")
	if !regexp.MustCompile(`^v\n\(expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\)\n$`).MatchString(out) {
		t.Fatalf("get of an expiring key: %q", out)
	}
	var js struct{ Expires string }
	if err := json.Unmarshal([]byte(sh("get", "s", "-o", "json")), &js); err != nil || js.Expires == "" {
		t.Fatalf("get -o json: %+v %v", js, err)
	}
	exp, err := time.Parse(time.RFC3339Nano, js.Expires)
	if err != nil || exp.Before(time.Now().Add(59*time.Minute)) {
		t.Fatalf("expires %q (%v)", js.Expires, err)
	}
	sh("incr", "c", "2")
	sh("expire", "c", "30m")
	if out := sh("get", "c"); !strings.HasPrefix(out, "2\n(expires ") {
		t.Fatalf("get after expire: %q", out)
	}
	if out := sh("persist", "c", "-o", "json"); out != `{"key":"c","type":"counter","value":2}`+"\n" {
		t.Fatalf("persist -o json: %q", out)
	}
	if out := sh("get", "c"); out != "2\n" {
		t.Fatalf("get after persist: %q", out)
	}
	sh("patch", "d", "--ttl", "2h", "--set", "f=1")
	if out := sh("get", "d", "-o", "json"); !strings.Contains(out, `"expires":"`) {
		t.Fatalf("patch --ttl: %q", out)
	}
	for _, args := range [][]string{
		{"put", "--ttl", "0s", "s", "v"}, {"put", "--ttl", "-1m", "s", "v"}, {"put", "--ttl", "soon", "s", "v"},
		{"put", "--ttl", "100000h", "s", "v"}, {"expire", "c", "0"}, {"expire", "c", "x"}, {"patch", "d", "--ttl", "-1s", "--set", "f=2"},
	} {
		r := runShoal(t, nil, "", append(args, "--addr", a.URL())...)
		if r.code == 0 || !strings.Contains(r.err, node.MaxTTL.String()) {
			t.Fatalf("shoal %q: exit %d, stderr %q; want a failure naming %v", args, r.code, r.err, node.MaxTTL)
		}
	}
	if r := runShoal(t, nil, "", "expire", "missing", "1s", "--addr", a.URL()); r.code == 0 || !strings.Contains(r.err, "not found") {
		t.Fatalf("expire of a missing key: %+v", r)
	}
	if out := sh("get", "s"); !strings.HasPrefix(out, "v\n(expires ") {
		t.Fatalf("a refused put changed the key: %q", out)
	}
}
