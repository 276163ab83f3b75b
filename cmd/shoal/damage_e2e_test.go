package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// treeOf maps every file under dir (but LOCK files) to its contents.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestE2EDamagedLogLosesNothing is the scenario with real
// processes: two agents, 300 acknowledged PUTs on n1 replicated to n2,
// both stopped, one byte flipped in n1's log. n1 then refuses to start
// (exit non-zero, no file changed) and `wal verify` exits 1; `wal repair`
// sets the damage aside and gives n1 a new identity; n1 restarted alone
// takes 50 PUTs, n2 restarted takes 50 more, and within 30 s both hold
// every acknowledged write with equal digests. Variants: the damage in
// the last segment, in a sealed segment, and under snapshots that cover
// it.
func TestE2EDamagedLogLosesNothing(t *testing.T) {
	bin := shoalBinary(t)
	variants := []struct {
		name  string
		extra []string
		// victim picks the store file to damage among n1's segments.
		victim func(stores []string) string
	}{
		{"last segment", nil, func(s []string) string { return s[len(s)-1] }},
		{"sealed segment", []string{"--segment-bytes", "8KiB"}, func(s []string) string { return s[len(s)/2] }},
		{"snapshots", []string{"--snapshot-every-ops", "50"}, func(s []string) string { return s[len(s)-1] }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			root := t.TempDir()
			ctx := context.Background()
			n1 := newAgentProc(t, bin, root, "n1", nil, v.extra...)
			n1.start()
			n2 := newAgentProc(t, bin, root, "n2", []string{n1.gossip}, v.extra...)
			n1.join = []string{n2.gossip}
			n2.start()
			acked := map[string]string{}
			put := func(n *agentProc, key string) {
				val := fmt.Sprintf(`"%s written on %s"`, key, n.name)
				if err := n.client.Put(key, json.RawMessage(val)); err != nil {
					t.Fatalf("PUT %s on %s: %v", key, n.name, err)
				}
				acked[key] = val
			}
			for i := 0; i < 300; i++ {
				put(n1, fmt.Sprintf("k/%03d", i))
			}
			eventually(t, 30*time.Second, "n2 holds n1's writes", func() (bool, string) { return converged(n1, n2) })
			for _, n := range []*agentProc{n1, n2} {
				if code := n.term(); code != 0 {
					t.Fatalf("%s exit %d\n%s", n.name, code, n.logTail())
				}
			}
			oldID := readReplica(t, n1.dir)

			stores, _ := filepath.Glob(filepath.Join(n1.dir, "wal", "*.log"))
			slices.Sort(stores)
			victim := v.victim(stores)
			b, err := os.ReadFile(victim)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x20
			if err := os.WriteFile(victim, b, 0o644); err != nil {
				t.Fatal(err)
			}

			if out, err := exec.Command(bin, "wal", "verify", n1.dir).CombinedOutput(); exitCode(err) != 1 {
				t.Fatalf("wal verify of the damaged directory: exit %d\n%s", exitCode(err), out)
			}
			before := treeOf(t, n1.dir)
			actx, cancel := context.WithTimeout(ctx, 60*time.Second)
			out, err := exec.CommandContext(actx, bin, "agent", "--name", "n1", "--data-dir", n1.dir,
				"--http", n1.httpAddr, "--gossip", n1.gossip).CombinedOutput()
			cancel()
			if exitCode(err) <= 0 || !strings.Contains(string(out), "shoal wal repair") {
				t.Fatalf("agent on the damaged directory: exit %d (want non-zero, naming the repair)\n%s", exitCode(err), out)
			}
			if after := treeOf(t, n1.dir); !maps.Equal(before, after) {
				t.Fatal("the refused start changed the data directory")
			}
			out, err = exec.Command(bin, "wal", "repair", n1.dir).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "repaired") || !strings.Contains(string(out), "new replica ID") {
				t.Fatalf("wal repair: %v\n%s", err, out)
			}
			t.Logf("wal repair:\n%s", out)
			if newID := readReplica(t, n1.dir); newID == oldID {
				t.Fatalf("repair kept replica ID %s", oldID)
			}

			// n1 alone first (n2 is down), then n2.
			n1.start()
			for i := 0; i < 50; i++ {
				put(n1, fmt.Sprintf("a/%03d", i))
			}
			n2.start()
			for i := 0; i < 50; i++ {
				put(n2, fmt.Sprintf("b/%03d", i))
			}
			eventually(t, 30*time.Second, "every acknowledged write on both nodes, equal digests", func() (bool, string) {
				if ok, state := converged(n1, n2); !ok {
					return false, state
				}
				for _, n := range []*agentProc{n1, n2} {
					for _, prefix := range []string{"k/", "a/", "b/"} {
						keys, err := n.client.Keys(prefix, 0)
						if err != nil {
							return false, err.Error()
						}
						want := 0
						for k := range acked {
							if strings.HasPrefix(k, prefix) {
								want++
							}
						}
						if len(keys) != want {
							return false, fmt.Sprintf("%s holds %d of %d %s keys", n.name, len(keys), want, prefix)
						}
					}
				}
				return true, ""
			})
			for key, val := range acked {
				for _, n := range []*agentProc{n1, n2} {
					a, err := n.client.Get(key)
					if got, _ := json.Marshal(a.Data); err != nil || string(got) != val {
						t.Fatalf("%s on %s = %v, %v; want %s", key, n.name, a, err, val)
					}
				}
			}
		})
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func readReplica(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "identity"))
	if err != nil {
		t.Fatal(err)
	}
	var id struct {
		Replica string `json:"replica"`
	}
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatal(err)
	}
	return id.Replica
}
