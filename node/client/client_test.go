package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

// sentinels are the errors a step's error is compared on.
var sentinels = []error{
	node.ErrNotFound, node.ErrWrongType, node.ErrInvalidKey, node.ErrInvalidValue, node.ErrTooLarge,
	node.ErrOverflow, node.ErrClosed, node.ErrReadOnly, node.ErrOffline, node.ErrOffsetUnavailable,
	node.ErrSlowSubscriber, ErrUnauthorized, context.DeadlineExceeded,
}

// storeStep is one call of the parity script: its result and error.
type storeStep struct {
	name string
	run  func(s node.Store) (any, error)
}

// messageDiffers names the steps whose errors match the same sentinels
// but whose messages differ: the server reads the key before its siblings.
var messageDiffers = map[string]bool{"Siblings missing": true}

// paritySteps exercise every method of node.Store, with valid and invalid
// arguments.
func paritySteps() []storeStep {
	put := func(key string, v any) storeStep {
		return storeStep{name: fmt.Sprintf("Put %q %#v", key, v), run: func(s node.Store) (any, error) { return nil, s.Put(key, v) }}
	}
	get := func(key string) storeStep {
		return storeStep{name: fmt.Sprintf("Get %q", key), run: func(s node.Store) (any, error) { return s.Get(key) }}
	}
	batch := func(name string, fill func(b *node.Batch)) storeStep {
		return storeStep{name: name, run: func(s node.Store) (any, error) {
			var b node.Batch
			fill(&b)
			return nil, s.Commit(&b)
		}}
	}
	doc := node.Patch{
		Set:    map[string]any{"title": "x", "arr": []any{"a", "b"}, "obj": map[string]any{"s": []any{"y"}}},
		Incr:   map[string]int64{"views": 3},
		Add:    map[string][]string{"tags": {"t2", "t1"}, "empty": {"z"}},
		Enable: []string{"pinned"},
		Nested: map[string]node.Patch{"sub": {Add: map[string][]string{"s": {"u"}}, Incr: map[string]int64{"c": -2},
			Nested: map[string]node.Patch{"deep": {Set: map[string]any{"n": 1.5}}}}},
	}
	return []storeStep{
		put("str", "hello <world> & \u2028 \"quoted\"\n"),
		put("empty", ""),
		put("int", 42),
		put("neg", int64(-7)),
		put("big", uint64(1)<<62),
		put("huge", json.Number("123456789012345678901234567890")),
		put("float", 3.25),
		put("tiny", 1e-9),
		put("large", 1e300),
		put("integral float", 2.0),
		put("bool", true),
		put("null", nil),
		put("array", []any{1, "two", 3.5, nil, []any{}, map[string]any{}}),
		put("object", map[string]any{"b": map[string]any{"c": []any{true, int8(-1)}}, "a": "x"}),
		put("raw", json.RawMessage(` {"z": [1, 2.50, "s"], "a": null} `)),
		put("bad raw", json.RawMessage(`{"a":`)),
		put("struct", struct{ A int }{1}),
		put("strings", []string{"a"}),
		put("nan", math.NaN()),
		put("", 1),
		put(strings.Repeat("k", node.MaxKeyBytes+1), 1),
		put("bad utf8 \xff", 1),
		put("bad utf8 value", "\xff"),
		get("str"), get("int"), get("huge"), get("float"), get("object"), get("raw"), get("null"),
		get("missing"), get(""), get(strings.Repeat("k", node.MaxKeyBytes+1)),
		{"Incr c 5", func(s node.Store) (any, error) { return s.Incr("c", 5) }},
		{"Incr c -8", func(s node.Store) (any, error) { return s.Incr("c", -8) }},
		{"Incr str", func(s node.Store) (any, error) { return s.Incr("str", 1) }},
		{"Incr overflow", func(s node.Store) (any, error) {
			if _, err := s.Incr("c", math.MaxInt64); err != nil {
				return nil, err
			}
			return s.Incr("c", math.MaxInt64)
		}},
		{"Incr empty key", func(s node.Store) (any, error) { return s.Incr("", 1) }},
		get("c"),
		{"SetAdd", func(s node.Store) (any, error) { return nil, s.SetAdd("set", "b", "a", "c") }},
		{"SetAdd none", func(s node.Store) (any, error) { return nil, s.SetAdd("set") }},
		{"SetAdd bad member", func(s node.Store) (any, error) { return nil, s.SetAdd("set", "\xff") }},
		{"SetAdd on a counter", func(s node.Store) (any, error) { return nil, s.SetAdd("c", "x") }},
		{"SetRemove", func(s node.Store) (any, error) { return nil, s.SetRemove("set", "b") }},
		{"SetRemove absent key", func(s node.Store) (any, error) { return nil, s.SetRemove("noset", "b") }},
		{"SetAdd then remove all", func(s node.Store) (any, error) {
			if err := s.SetAdd("gone", "x"); err != nil {
				return nil, err
			}
			return nil, s.SetRemove("gone", "x")
		}},
		get("set"), get("gone"),
		{"Update", func(s node.Store) (any, error) { return nil, s.Update("doc", doc) }},
		{"Update remove a set field's members", func(s node.Store) (any, error) {
			return nil, s.Update("doc", node.Patch{Remove: map[string][]string{"empty": {"z"}}, Disable: []string{"nope"}})
		}},
		{"Update disable a flag", func(s node.Store) (any, error) {
			return nil, s.Update("doc", node.Patch{Disable: []string{"pinned"}, Enable: []string{"on"}})
		}},
		{"Update empty", func(s node.Store) (any, error) { return nil, s.Update("doc", node.Patch{}) }},
		{"Update a register", func(s node.Store) (any, error) { return nil, s.Update("str", node.Patch{Delete: []string{"x"}}) }},
		{"Update bad field", func(s node.Store) (any, error) { return nil, s.Update("doc", node.Patch{Set: map[string]any{"": 1}}) }},
		{"Update bad value", func(s node.Store) (any, error) {
			return nil, s.Update("doc", node.Patch{Set: map[string]any{"f": struct{}{}}})
		}},
		get("doc"),
		{"Delete", func(s node.Store) (any, error) { return nil, s.Delete("int") }},
		{"Delete again", func(s node.Store) (any, error) { return nil, s.Delete("int") }},
		{"Delete empty key", func(s node.Store) (any, error) { return nil, s.Delete("") }},
		batch("Commit every kind", func(b *node.Batch) {
			b.Put("b/put", map[string]any{"k": []any{1}})
			b.Incr("b/cnt", 7)
			b.Incr("b/cnt", -1)
			b.SetAdd("b/set", "x", "y")
			b.SetRemove("b/set", "x")
			b.Update("b/doc", doc)
			b.Delete("str")
		}),
		batch("Commit empty", func(*node.Batch) {}),
		batch("Commit an invalid op", func(b *node.Batch) { b.Put("b/x", 1); b.Put("b/y", math.Inf(1)) }),
		batch("Commit a wrong type (all or none)", func(b *node.Batch) { b.Put("b/z", 1); b.Incr("b/put", 1) }),
		get("b/put"), get("b/cnt"), get("b/set"), get("b/doc"), get("b/z"), get("str"),
		{"Keys", func(s node.Store) (any, error) { return s.Keys("", 0) }},
		{"Keys b/", func(s node.Store) (any, error) { return s.Keys("b/", 0) }},
		{"Keys limit", func(s node.Store) (any, error) { return s.Keys("", 2) }},
		{"Keys none", func(s node.Store) (any, error) { return s.Keys("zzz", 0) }},
		{"Siblings", func(s node.Store) (any, error) { return s.Siblings("object") }},
		{"Siblings of a counter", func(s node.Store) (any, error) { return s.Siblings("c") }},
		{"Siblings missing", func(s node.Store) (any, error) { return s.Siblings("missing") }},
		{"Siblings empty key", func(s node.Store) (any, error) { return s.Siblings("") }},
		put("odd ?%25#/../key", "odd"),
		get("odd ?%25#/../key"),
		{"Incr odd key", func(s node.Store) (any, error) { return s.Incr("odd/incr?x=1#f", 2) }},
		{"SetAdd odd key", func(s node.Store) (any, error) { return nil, s.SetAdd("odd%2F/add", "m") }},
		{"Update odd key", func(s node.Store) (any, error) {
			return nil, s.Update("odd /..%/doc", node.Patch{Set: map[string]any{"f": 1}})
		}},
		get("odd/incr?x=1#f"), get("odd%2F/add"), get("odd /..%/doc"),
		{"Delete odd key", func(s node.Store) (any, error) { return nil, s.Delete("odd ?%25#/../key") }},
		get("odd ?%25#/../key"),
		{"WaitSynced offline", func(s node.Store) (any, error) { return nil, s.WaitSynced(context.Background()) }},
		// Expiries: two nodes' clocks differ, so reads compare whether a
		// key expires, not when.
		{"PutWith ttl", func(s node.Store) (any, error) { return nil, s.PutWith("t/put", 1, node.WriteOptions{TTL: time.Hour}) }},
		{"PutWith negative ttl", func(s node.Store) (any, error) {
			return nil, s.PutWith("t/put", 2, node.WriteOptions{TTL: -time.Second})
		}},
		{"PutWith ttl too long", func(s node.Store) (any, error) {
			return nil, s.PutWith("t/put", 2, node.WriteOptions{TTL: node.MaxTTL + 1})
		}},
		{"UpdateWith ttl", func(s node.Store) (any, error) {
			return nil, s.UpdateWith("t/doc", node.Patch{Incr: map[string]int64{"n": 1}}, node.WriteOptions{TTL: time.Minute})
		}},
		{"Expire", func(s node.Store) (any, error) { return nil, s.Expire("c", time.Hour) }},
		{"Expire zero", func(s node.Store) (any, error) { return nil, s.Expire("c", 0) }},
		{"Expire too long", func(s node.Store) (any, error) { return nil, s.Expire("c", node.MaxTTL+time.Millisecond) }},
		{"Expire missing", func(s node.Store) (any, error) { return nil, s.Expire("missing", time.Second) }},
		{"Expire empty key", func(s node.Store) (any, error) { return nil, s.Expire("", time.Second) }},
		{"Persist", func(s node.Store) (any, error) { return nil, s.Persist("t/put") }},
		{"Persist missing", func(s node.Store) (any, error) { return nil, s.Persist("missing") }},
		batch("Commit expiries", func(b *node.Batch) {
			b.PutWith("t/b", "x", node.WriteOptions{TTL: time.Hour})
			b.Expire("set", time.Hour)
			b.Persist("set")
			b.UpdateWith("t/doc", node.Patch{Incr: map[string]int64{"n": 1}}, node.WriteOptions{TTL: time.Hour})
		}),
		batch("Commit an expire of a missing key", func(b *node.Batch) { b.Expire("missing", time.Hour) }),
		expiring("t/put"), expiring("t/doc"), expiring("c"), expiring("set"), expiring("t/b"), expiring("missing"),
	}
}

// expiring reads a key's value and whether it expires.
func expiring(key string) storeStep {
	return storeStep{name: fmt.Sprintf("Get expiring %q", key), run: func(s node.Store) (any, error) {
		v, err := s.Get(key)
		return []any{v.Data, !v.Expires.IsZero()}, err
	}}
}

// TestStoreParity runs the same calls on an embedded node and through the
// client on another node: every result is reflect.DeepEqual, every error
// has the same message and matches the same sentinels, and both nodes end
// in the same state, read either way.
func TestStoreParity(t *testing.T) {
	embedded, err := node.Open(t.TempDir(), &node.Options{Sync: node.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer embedded.Close()
	ts := newTestServer(t, serverOptions{})
	for _, step := range paritySteps() {
		want, wantErr := step.run(embedded)
		got, gotErr := step.run(ts.c)
		if wantErr != nil || gotErr != nil {
			if wantErr == nil || gotErr == nil || (wantErr.Error() != gotErr.Error() && !messageDiffers[step.name]) {
				t.Errorf("%s: error %v, want %v", step.name, gotErr, wantErr)
			}
			for _, s := range sentinels {
				if errors.Is(gotErr, s) != errors.Is(wantErr, s) {
					t.Errorf("%s: errors.Is(%v, %v) = %t, want %t", step.name, gotErr, s, !errors.Is(wantErr, s), errors.Is(wantErr, s))
				}
			}
		}
		if s, ok := want.([]node.Sibling); ok && len(s) == 1 {
			// Different nodes: the same value, another origin and time.
			g := got.([]node.Sibling)
			if len(g) != 1 || !reflect.DeepEqual(g[0].Data, s[0].Data) {
				t.Errorf("%s: %#v, want %#v", step.name, got, want)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %#v, want %#v", step.name, got, want)
		}
	}
	// The same state, whichever way it is read.
	keys, err := embedded.Keys("", 0)
	if err != nil || len(keys) < 20 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		want, _ := embedded.Get(k.Key)
		direct, _ := ts.n.Get(k.Key)
		got, err := ts.c.Get(k.Key)
		if !want.Expires.IsZero() && !got.Expires.IsZero() {
			want.Expires = got.Expires // two clocks; whether it expires is compared
		}
		if err != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, direct) {
			t.Errorf("%s: client %#v (%v), node %#v, other node %#v", k.Key, got, err, direct, want)
		}
	}
}

// TestReadsEqualTheNode: every value and every other answer read through
// the client equals the node's own (Get, Siblings, Keys, Status, Members,
// SyncStatus, Digest), and a value's Go types are the node's.
func TestReadsEqualTheNode(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for _, step := range paritySteps() {
		_, _ = step.run(ts.n)
	}
	keys, _ := ts.n.Keys("", 0)
	for _, k := range keys {
		want, _ := ts.n.Get(k.Key)
		got, err := ts.c.Get(k.Key)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Get %s: %#v (%v), want %#v", k.Key, got, err, want)
		}
		if want.Type == node.TypeRegister {
			want, _ := ts.n.Siblings(k.Key)
			got, err := ts.c.Siblings(k.Key)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Siblings %s: %#v (%v), want %#v", k.Key, got, err, want)
			}
		}
	}
	// Spot checks of the Go types, so that the comparison above cannot
	// pass on two equally wrong decodings.
	for key, want := range map[string]any{
		"big":  int64(1) << 62,
		"huge": json.Number("123456789012345678901234567890"), // every digit kept
		"c":    int64(math.MaxInt64 - 3),
		"set":  []string{"a", "c"},
	} {
		if v, _ := ts.c.Get(key); !reflect.DeepEqual(v.Data, want) {
			t.Errorf("%s: %#v, want %#v", key, v.Data, want)
		}
	}
	d, _ := ts.c.Get("doc")
	m := d.Data.(map[string]any)
	if _, ok := m["tags"].([]string); !ok {
		t.Errorf("set field tags: %T", m["tags"])
	}
	if _, ok := m["arr"].([]any); !ok {
		t.Errorf("register field arr: %T", m["arr"])
	}
	if _, ok := m["sub"].(map[string]any)["s"].([]string); !ok {
		t.Errorf("nested set field: %#v", m["sub"])
	}
	if _, ok := m["obj"].(map[string]any)["s"].([]any); !ok {
		t.Errorf("register field holding an object with an array: %#v", m["obj"])
	}

	wantKeys, _ := ts.n.Keys("b/", 0)
	if got, err := ts.c.Keys("b/", 0); err != nil || !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Keys: %v %v, want %v", got, err, wantKeys)
	}
	if got, err := ts.c.Status(); err != nil || !reflect.DeepEqual(got, ts.n.Status()) {
		t.Errorf("Status: %+v %v, want %+v", got, err, ts.n.Status())
	}
	if got, err := ts.c.Members(); err != nil || !reflect.DeepEqual(got, ts.n.Members()) {
		t.Errorf("Members: %+v %v, want %+v", got, err, ts.n.Members())
	}
	if d, err := ts.c.Digest(); err != nil || d != ts.n.Digest() {
		t.Errorf("Digest: %q %v, want %q", d, err, ts.n.Digest())
	}
	if _, err := ts.c.SyncStatus(); !errors.Is(err, node.ErrOffline) {
		t.Errorf("SyncStatus offline: %v", err)
	}
	// Do gives the raw answer (here: what node.Status does not carry).
	var raw json.RawMessage
	if err := ts.c.Do("GET", "/v1/status", nil, nil, &raw); err != nil || !strings.Contains(string(raw), `"digest":"`+ts.n.Digest()+`"`) {
		t.Errorf("Do into a json.RawMessage: %s %v", raw, err)
	}
}

func TestNewAddress(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:7070":             "http://127.0.0.1:7070",
		" http://127.0.0.1:7070/ ":   "http://127.0.0.1:7070",
		"https://db.example:7070":    "https://db.example:7070",
		"http://[::1]:7070":          "http://[::1]:7070",
		"http://proxy/shoal/":        "http://proxy/shoal",
		"http://proxy/a%2Fb/":        "http://proxy/a%2Fb",
		"localhost":                  "http://localhost",
		"":                           "",
		"ftp://h":                    "",
		"http://h/?q=1":              "",
		"http://user:pw@h":           "",
		"http://":                    "",
		"http://h:1/#frag":           "",
		"http://%zz":                 "",
		"unix:///var/run/shoal.sock": "",
	} {
		c, err := New(addr, nil)
		switch {
		case want == "" && err == nil:
			t.Errorf("New(%q): no error", addr)
		case want != "" && (err != nil || c.base != want):
			t.Errorf("New(%q): %v, base %q, want %q", addr, err, c.base, want)
		}
		if c != nil {
			_ = c.Close()
		}
	}
	if _, err := New("h:1", &Options{HTTPClient: http.DefaultClient, CAFile: "x"}); err == nil {
		t.Error("HTTPClient with TLS options: no error")
	}
	if _, err := New("h:1", &Options{CAFile: "/nonexistent/ca.pem"}); err == nil {
		t.Error("missing CA file: no error")
	}
	// The path of the address prefixes every request's.
	ts := newTestServer(t, serverOptions{wrap: func(_ *node.Node, h http.Handler) http.Handler {
		return http.StripPrefix("/shoal", h)
	}})
	c, err := New(ts.srv.URL+"/shoal/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put("a/b c", 1); err != nil {
		t.Fatal(err)
	}
	if v, err := ts.n.Get("a/b c"); err != nil || v.Data != int64(1) {
		t.Fatalf("through a path prefix: %v %v", v, err)
	}
}

// TestToken: without the server's token every call is ErrUnauthorized,
// subscriptions too; with it they work.
func TestToken(t *testing.T) {
	ts := newTestServer(t, serverOptions{handler: &httpapi.Options{Token: "s3cret"}})
	ctx := context.Background()
	for name, o := range map[string]*Options{"no token": nil, "wrong token": {Token: "guess"}} {
		c, err := New(ts.srv.URL, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Put("k", 1); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Put: %v", name, err)
		}
		if _, err := c.Subscribe(ctx, ""); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Subscribe: %v", name, err)
		}
		_ = c.Close()
	}
	c, err := New(ts.srv.URL, &Options{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Put("k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get("k"); err != nil || v.Data != "v" {
		t.Fatalf("Get with the token: %v %v", v, err)
	}
	if ev, err := nextChange(ctx, sub); err != nil || ev.Key != "k" {
		t.Fatalf("event with the token: %+v %v", ev, err)
	}
}

// TestTLS: an https server is trusted through CAFile or TLSConfig (or
// InsecureSkipVerify), and refused otherwise.
func TestTLS(t *testing.T) {
	ts := newTestServer(t, serverOptions{tls: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ts.srv.Certificate())
	ctx := context.Background()
	for name, o := range map[string]*Options{
		"CAFile":             {CAFile: ca},
		"TLSConfig":          {TLSConfig: &tls.Config{RootCAs: pool}},
		"InsecureSkipVerify": {InsecureSkipVerify: true},
	} {
		c, err := New(ts.srv.URL, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Put("k", name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		sub, err := c.Subscribe(ctx, "")
		if err != nil {
			t.Errorf("%s: Subscribe: %v", name, err)
		} else {
			_ = sub.Close()
		}
		_ = c.Close()
	}
	c, err := New(ts.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var unknown x509.UnknownAuthorityError
	if err := c.Put("k", 1); !errors.As(err, &unknown) {
		t.Fatalf("untrusted certificate: %v", err)
	}
}

// TestWaitSyncedAndSyncStatus on two replicas: the client's WaitSynced
// returns once the peer holds the writes, and SyncStatus and Members say
// what the node says.
func TestWaitSyncedAndSyncStatus(t *testing.T) {
	gc := func(name string) *node.Options {
		g := gossip.DefaultLocalConfig()
		g.Name = name
		return &node.Options{Sync: node.SyncNever, Gossip: g}
	}
	ts := newTestServer(t, serverOptions{node: gc("a")})
	peer, err := node.Open(t.TempDir(), gc("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := peer.Join(ctx, ts.n.Members()[0].Addr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two alive members", func() bool {
		ms, err := ts.c.Members()
		return err == nil && len(ms) == 2 && ms[1].State == "alive" && ms[1].Replica != ""
	})
	if err := ts.c.Put("k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := ts.c.WaitSynced(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if v, err := peer.Get("k"); err != nil || v.Data != "v" {
		t.Fatalf("the peer after WaitSynced: %v %v", v, err)
	}
	got, err := ts.c.SyncStatus()
	want, _ := ts.n.SyncStatus()
	if err != nil || got.Replica != want.Replica || got.Local != want.Local || len(got.Peers) != 1 ||
		got.Peers[0].Name != "b" || !got.Peers[0].Synced || got.Peers[0].Replica != peer.ReplicaID() || got.Peers[0].Updated.IsZero() {
		t.Fatalf("SyncStatus %+v %v, node's %+v", got, err, want)
	}
	ms, _ := ts.c.Members()
	nms := ts.n.Members()
	for i := range nms {
		nms[i].Connected, ms[i].Connected = false, false // may change in between
	}
	if !reflect.DeepEqual(ms, nms) {
		t.Fatalf("Members %+v, node's %+v", ms, nms)
	}
	// A wait cancelled while the server waits (for a peer that never
	// comes) ends then, with the context's error; a wait with a context
	// already done sends nothing.
	wctx, wcancel := context.WithTimeout(context.Background(), time.Hour)
	stop := time.AfterFunc(50*time.Millisecond, wcancel)
	defer stop.Stop()
	done := make(chan error, 1)
	go func() { done <- ts.c.WaitSynced(wctx, "ghost") }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WaitSynced did not return when its context was cancelled")
	}
	if err := ts.c.WithContext(wctx).WaitSynced(wctx); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "http") {
		t.Fatalf("wait with a context already done: %v", err)
	}
}
