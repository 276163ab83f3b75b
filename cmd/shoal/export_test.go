package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

func exportTestServer(t *testing.T) (*node.Node, string) {
	t.Helper()
	n, err := node.Open(t.TempDir(), &node.Options{Sync: node.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewHandler(n, nil))
	t.Cleanup(func() { srv.Close(); n.Close() })
	return n, srv.URL
}

func runMain(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: noEnv}
	code := m.Main(context.Background(), args)
	return out.String(), errb.String(), code
}

// TestExportImport: every type (a map with a set field and a nested map,
// a key with an expiry) goes out as JSON lines and comes back the same on
// an empty node; a malformed line names its number.
func TestExportImport(t *testing.T) {
	src, srcURL := exportTestServer(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(src.Put("reg", map[string]any{"a": []any{1, "x"}, "big": json.Number("123456789012345678901234567890")}))
	must(src.PutWith("session", "token", node.WriteOptions{TTL: time.Hour}))
	_, err := src.Incr("hits", 42)
	must(err)
	must(src.SetAdd("tags", "b", "a"))
	must(src.Update("doc", node.Patch{Set: map[string]any{"title": "T", "list": []any{"r1"}},
		Add:    map[string][]string{"labels": {"x", "y"}},
		Nested: map[string]node.Patch{"meta": {Set: map[string]any{"owner": "me"}, Add: map[string][]string{"seen": {"n1"}}}}}))
	must(src.Put("other/skip", 1))

	file := filepath.Join(t.TempDir(), "out.jsonl")
	if out, errs, code := runMain(t, "", "export", "--addr", srcURL, file); code != 0 || !strings.Contains(out, "exported 6 keys") {
		t.Fatalf("export: %d %s %s", code, out, errs)
	}
	dst, dstURL := exportTestServer(t)
	if out, errs, code := runMain(t, "", "import", "--addr", dstURL, "--batch", "2", file); code != 0 || !strings.Contains(out, "imported 6 keys") {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	keys, err := src.Keys("", 0)
	must(err)
	for _, k := range keys {
		a, err := src.Get(k.Key)
		must(err)
		b, err := dst.Get(k.Key)
		must(err)
		if a.Type != b.Type || !reflect.DeepEqual(a.Data, b.Data) {
			t.Fatalf("%s: exported %+v, imported %+v", k.Key, a, b)
		}
		if d := a.Expires.Sub(b.Expires).Abs(); a.Expires.IsZero() != b.Expires.IsZero() || d > time.Minute {
			t.Fatalf("%s: expires %v, imported %v", k.Key, a.Expires, b.Expires)
		}
	}
	// --prefix and standard output.
	out, _, code := runMain(t, "", "export", "--addr", srcURL, "--prefix", "other/")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"key":"other/skip"`) {
		t.Fatalf("export --prefix: %d %q", code, out)
	}
	// A malformed line stops the import and names it.
	bad := `{"key":"ok","type":"register","value":1}` + "\n" + `{"key":"x","type":"counter","value":"nope"}` + "\n"
	_, errs, code := runMain(t, bad, "import", "--addr", dstURL)
	if code == 0 || !strings.Contains(errs, "line 2") {
		t.Fatalf("malformed import: %d %s", code, errs)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
}
