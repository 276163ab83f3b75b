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

	"github.com/shoaldb/shoal/node/client"
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
	first, err := client.New(agents[0].URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	last, err := client.New(agents[2].URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if err := first.Put("hello", json.RawMessage(`"world"`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := last.Get("hello")
		if err == nil && a.Data == "world" {
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
