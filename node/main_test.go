package node

import (
	"bytes"
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

// peerRecords is what a peer receives of the records cs: their bytes,
// copied, and each decoded afresh (the sender's Op shares its entries with
// the sender's state).
func peerRecords(t testing.TB, cs []committed) (raws [][]byte, ops []*Op) {
	t.Helper()
	for _, c := range cs {
		op, err := DecodeOp(c.Record)
		must(t, err)
		raws, ops = append(raws, bytes.Clone(c.Record)), append(ops, op)
	}
	return raws, ops
}

// reopenSame closes n, opens its directory again with opts and fails the
// test unless the state replays to the same digest: what n applied is in
// its WAL. why says what would have gone wrong.
func reopenSame(t testing.TB, n *Node, opts *Options, why string) *Node {
	t.Helper()
	d, dir := n.Digest(), n.Dir()
	must(t, n.Close())
	n = openAt(t, dir, opts)
	if n.Digest() != d {
		t.Fatalf("the state changed across a restart: %s", why)
	}
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
