package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// TestE2EBackupRestoreJoin: a backup taken from a running agent with the
// CLI restores into a new directory with a new replica ID; an agent on it
// joins the cluster and converges, with the writes made after the backup
// and without a key deleted after it; truncated and foreign files are
// refused and nothing is written.
func TestE2EBackupRestoreJoin(t *testing.T) {
	bin := shoalBinary(t)
	root := t.TempDir()
	nodes := startCluster(t, bin, root, 2, nil)
	n1, n2 := nodes[0], nodes[1]
	for i := range 200 {
		n := []*agentProc{n1, n2}[i%2]
		if err := n.client.Put(fmt.Sprintf("k/%03d", i), json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n2.client.Incr("visits", 7); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "n1 and n2 converge", func() (bool, string) { return converged(n1, n2) })

	file := filepath.Join(root, "n1.backup")
	if out, err := n1.cli("backup", file); err != nil || !strings.Contains(out, "saved") {
		t.Fatalf("shoal backup: %v\n%s", err, out)
	}
	// After the backup: a new key, a deleted one, a counter moved on.
	if err := n2.client.Put("after", json.RawMessage(`"x"`)); err != nil {
		t.Fatal(err)
	}
	if err := n1.client.Delete("k/000"); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.client.Incr("visits", 1); err != nil {
		t.Fatal(err)
	}

	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"truncated": good[:len(good)*2/3], "foreign": []byte("not a backup at all")} {
		bad := filepath.Join(root, name+".backup")
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "from-"+name)
		out, err := exec.Command(bin, "restore", bad, dir).CombinedOutput()
		want := map[string]string{"truncated": "truncated", "foreign": "not a shoal backup"}[name]
		if exitCode(err) <= 0 || !strings.Contains(string(out), want) || !strings.Contains(string(out), "nothing written") {
			t.Fatalf("restore of a %s file: exit %d (want non-zero naming %q)\n%s", name, exitCode(err), want, out)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("restore of a %s file created %s", name, dir)
		}
	}

	n3dir := filepath.Join(root, "n3")
	out, err := exec.Command(bin, "restore", file, n3dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "new replica ID") {
		t.Fatalf("shoal restore: %v\n%s", err, out)
	}
	t.Logf("restore: %s", out)
	if id1, id3 := readReplica(t, n1.dir), readReplica(t, n3dir); id1 == id3 || readReplica(t, n2.dir) == id3 {
		t.Fatalf("the restored directory reuses replica ID %s", id3)
	}
	n3 := newAgentProc(t, bin, root, "n3", []string{n1.gossip})
	n3.start()
	if err := n3.client.Put("from-n3", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the restored node converges with the cluster", func() (bool, string) { return converged(n1, n2, n3) })
	for _, n := range []*agentProc{n1, n2, n3} {
		if _, err := n.client.Get("k/000"); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("%s: key deleted after the backup: %v", n.name, err)
		}
		for _, k := range []string{"after", "from-n3", "k/199"} {
			if _, err := n.client.Get(k); err != nil {
				t.Fatalf("%s: %s: %v", n.name, k, err)
			}
		}
		if v, err := n.client.Get("visits"); err != nil || v.Data != int64(8) {
			t.Fatalf("%s: visits = %+v, %v", n.name, v, err)
		}
	}
}
