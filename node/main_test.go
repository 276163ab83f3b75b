package node

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the writer it kills.
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		// memberlist's probe goroutine outlives its Shutdown by up to a
		// probe round: wait for such bounded tails before calling what is
		// left a leak.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// openTest opens a node in a fresh directory and closes it at the end.
func openTest(t testing.TB, opts *Options) (*Node, string) {
	t.Helper()
	dir := t.TempDir()
	return openAt(t, dir, opts), dir
}

func openAt(t testing.TB, dir string, opts *Options) *Node {
	t.Helper()
	n, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
