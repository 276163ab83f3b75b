// Package cmd_test enforces the dependency directions of the design:
// crdt is pure, wal stands alone, gossip knows nothing of storage, and only
// the binary and the examples embed node.
package cmd_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/shoaldb/shoal"

// deps lists the non-test dependencies of pkg with go list -deps.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var list []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if p := strings.TrimSpace(sc.Text()); p != "" && p != pkg {
			list = append(list, p)
		}
	}
	return list
}

// packages lists every package of the module.
func packages(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

func under(pkg, dir string) bool {
	p := module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to check layering: %v", err)
	}
	for _, pkg := range packages(t) {
		ds := deps(t, pkg)
		switch {
		case under(pkg, "crdt"):
			for _, d := range ds {
				if !under(d, "crdt") {
					t.Errorf("%s imports %s: crdt may import only the standard library", pkg, d)
				}
			}
		case under(pkg, "wal"):
			for _, d := range ds {
				if !under(d, "wal") && d != "github.com/tysonmote/gommap" {
					t.Errorf("%s imports %s: wal may import only the standard library and gommap", pkg, d)
				}
			}
		case under(pkg, "gossip"):
			for _, d := range ds {
				if under(d, "wal") || under(d, "crdt") || under(d, "node") {
					t.Errorf("%s imports %s: gossip must not import wal, crdt or node", pkg, d)
				}
			}
		}
		if !under(pkg, "cmd") && !under(pkg, "examples") && !under(pkg, "node") {
			for _, d := range ds {
				if under(d, "node") {
					t.Errorf("%s imports %s: only cmd/ and examples/ may import node", pkg, d)
				}
			}
		}
	}
}

// imports lists the direct imports of pkg (standard library included).
func imports(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestNodeHasNoHTTP: the embedded store does not carry an HTTP server;
// the API lives in node/httpapi, built on node's exported API.
func TestNodeHasNoHTTP(t *testing.T) {
	for _, d := range imports(t, module+"/node") {
		if d == "net/http" || strings.HasPrefix(d, "net/http/") || strings.Contains(d, "promhttp") {
			t.Errorf("node imports %s", d)
		}
	}
}

// TestToolsReadThroughNode: the binary reads the data formats through node
// and wal's own readers, never itself (one reader per format).
func TestToolsReadThroughNode(t *testing.T) {
	for _, d := range imports(t, module+"/cmd/shoal") {
		if under(d, "wal") || under(d, "crdt") {
			t.Errorf("cmd/shoal imports %s", d)
		}
	}
}
