package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDevCluster runs `shoal dev` in process: three nodes that replicate,
// their URLs printed, the temporary data removed on Close.
func TestDevCluster(t *testing.T) {
	var out bytes.Buffer
	d := &DevCommand{Stdout: &out, Stderr: io.Discard}
	if err := d.ParseFlags([]string{"--nodes", "3", "--http-port", "0", "--gossip-port", "0", "--sync", "never", "--log-level", "error"}, noEnv); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err != nil {
		_ = d.Close()
		t.Fatal(err)
	}
	defer d.Close()
	agents := d.Agents()
	for _, a := range agents {
		if !strings.Contains(out.String(), a.URL()) {
			t.Fatalf("output does not name %s:\n%s", a.URL(), out.String())
		}
	}
	ctx := context.Background()
	first, last := &Client{Addr: agents[0].URL()}, &Client{Addr: agents[2].URL()}
	if _, err := first.Put(ctx, "hello", json.RawMessage(`"world"`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := last.Get(ctx, "hello", false)
		if err == nil && string(a.Value) == `"world"` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write on node1 did not reach node3: %v %v", a, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tmp := d.tempDir
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary data %s not removed: %v", tmp, err)
	}
	t.Logf("close took %v", time.Since(start))
}
