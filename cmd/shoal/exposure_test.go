package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentClosedByDefault: beyond loopback the agent refuses to gossip
// without a key and to serve the API without a token, naming the flag that
// fixes it and the one that opts out; loopback and the opt-outs pass.
func TestAgentClosedByDefault(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(keyFile, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600)
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	cases := []struct {
		args []string
		want string // "" = accepted
	}{
		{[]string{"--gossip", "0.0.0.0:7946"}, "--insecure-no-encryption"},
		{[]string{"--gossip", ":7946"}, "--encrypt-key-file"},
		{[]string{"--gossip", "127.0.0.1:7946", "--advertise", "10.1.2.3:7946"}, "--insecure-no-encryption"},
		{[]string{"--http", "0.0.0.0:7070"}, "--insecure-no-auth"},
		{[]string{"--http", "[::]:7070"}, "--token-file"},
		{[]string{"--gossip", "0.0.0.0:7946", "--insecure-no-encryption"}, ""},
		{[]string{"--gossip", "0.0.0.0:7946", "--encrypt-key-file", keyFile}, ""},
		{[]string{"--http", "0.0.0.0:7070", "--insecure-no-auth"}, ""},
		{[]string{"--http", "0.0.0.0:7070", "--token-file", tokenFile}, ""},
		{[]string{"--http", "localhost:7070", "--gossip", "127.0.0.2:7946"}, ""},
		{[]string{"--token", "x", "--token-file", tokenFile}, "not both"},
		{[]string{"--encrypt-key-file", keyFile, "--keyring-file", keyFile}, "one of"},
	}
	for _, c := range cases {
		err := NewAgentCommand(io.Discard).ParseFlags(c.args, noEnv)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: refused: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		}
	}
	// The real binary exits non-zero before it opens anything.
	bin := shoalBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{{"--gossip", "0.0.0.0:7946"}, {"--http", "0.0.0.0:7070"}} {
		cmd := exec.CommandContext(ctx, bin, append([]string{"agent", "--data-dir", filepath.Join(dir, "data")}, args...)...)
		cmd.Env = append(os.Environ(), "SHOAL_TOKEN=", "SHOAL_ENCRYPT_KEY=")
		out, err := cmd.CombinedOutput()
		if exitCode(err) <= 0 || !strings.Contains(string(out), "--insecure-no-") {
			t.Fatalf("agent %q: exit %d\n%s", args, exitCode(err), out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Fatal("a refused agent created its data directory")
	}
}

// TestAgentSecretsFromFilesAndFlags: a token from a file guards the API;
// one on the command line works too but is warned about.
func TestAgentSecretsFromFilesAndFlags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("from-a-file\n"), 0o600)
	a := startAgent(t, t.TempDir(), "--token-file", tokenFile)
	if r := runShoal(t, nil, "", "status", "--addr", a.URL()); r.code != 1 {
		t.Fatalf("status without the token: %+v", r)
	}
	if r := runShoal(t, map[string]string{"SHOAL_TOKEN": "from-a-file"}, "", "status", "--addr", a.URL()); r.code != 0 {
		t.Fatalf("status with the token: %+v", r)
	}
	c := NewAgentCommand(io.Discard)
	if err := c.ParseFlags([]string{"--token", "on-the-command-line"}, noEnv); err != nil {
		t.Fatal(err)
	}
	if len(c.Config.SecretFlags) != 1 || c.Config.SecretFlags[0] != "--token" {
		t.Fatalf("secret flags %v", c.Config.SecretFlags)
	}
	c = NewAgentCommand(io.Discard)
	if err := c.ParseFlags(nil, func(k string) string { return map[string]string{"SHOAL_TOKEN": "env"}[k] }); err != nil || len(c.Config.SecretFlags) != 0 {
		t.Fatalf("a token from the environment was counted as a flag: %v %v", c.Config.SecretFlags, err)
	}
}

// TestPprofAuth: /debug/pprof/ takes the same bearer check as the API: the
// scheme in any case, the token compared in full.
func TestPprofAuth(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	srv := httptest.NewServer(withPprof(api, "tok"))
	defer srv.Close()
	for _, c := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer tok", 200}, {"bearer tok", 200}, {"BEARER  tok", 200}, {"Bearer to", 401}, {"Bearer tokk", 401}, {"Basic tok", 401}} {
		req, _ := http.NewRequest("GET", srv.URL+"/debug/pprof/cmdline", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("Authorization %q: %d, want %d", c.auth, resp.StatusCode, c.code)
		}
	}
}

// TestAgentReloadKeys: three SIGHUP rounds rotate two agents' keyring
// files to a new key; they keep replicating, and an agent holding only
// the new key joins them.
func TestAgentReloadKeys(t *testing.T) {
	oldKey := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	newKey := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	rings := []string{filepath.Join(t.TempDir(), "ring"), filepath.Join(t.TempDir(), "ring")}
	for _, r := range rings {
		os.WriteFile(r, []byte(oldKey+"\n"), 0o600)
	}
	a := startAgent(t, t.TempDir(), "--keyring-file", rings[0])
	b := startAgent(t, t.TempDir(), "--keyring-file", rings[1], "--join", a.GossipAddr())
	for _, round := range []string{oldKey + "\n" + newKey, newKey + "\n" + oldKey, newKey} {
		for i, ag := range []*AgentCommand{a, b} {
			os.WriteFile(rings[i], []byte(round+"\n"), 0o600)
			if err := ag.ReloadKeys(); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustShoal(t, "put", "rotated", "1", "--addr", a.URL())
	only := filepath.Join(t.TempDir(), "ring")
	os.WriteFile(only, []byte(newKey+"\n"), 0o600)
	c := startAgent(t, t.TempDir(), "--keyring-file", only, "--join", a.GossipAddr())
	deadline := time.Now().Add(20 * time.Second)
	for {
		rb := runShoal(t, nil, "", "get", "rotated", "--addr", b.URL())
		rc := runShoal(t, nil, "", "get", "rotated", "--addr", c.URL())
		if rb.code == 0 && rc.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rotation: b %+v, c %+v", rb, rc)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An unkeyed agent cannot start using a key without a restart.
	plain := startAgent(t, t.TempDir())
	if err := plain.ReloadKeys(); err == nil {
		t.Fatal("ReloadKeys on an unkeyed agent succeeded")
	}
}

// TestAgentHTTPBounds: a client that sends its body too slowly is cut off
// after --http-read-timeout, and --max-connections bounds the connections
// served at once.
func TestAgentHTTPBounds(t *testing.T) {
	a := startAgent(t, t.TempDir(), "--http-read-timeout", "300ms", "--max-connections", "2")
	host := strings.TrimPrefix(a.URL(), "http://")
	slow, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n1")
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("the slow body's connection was not closed by the server: %v", err)
	}
	// Two idle connections take both places: a third waits.
	var idle []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
			t.Fatalf("connection %d: %q %v", i, line, err)
		}
		idle = append(idle, c)
	}
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := hc.Get(a.URL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a third connection was served while two were open")
	}
	idle[0].Close()
	hc.Timeout = 30 * time.Second
	resp, err := hc.Get(a.URL() + "/healthz")
	if err != nil {
		t.Fatalf("a connection after one closed: %v", err)
	}
	resp.Body.Close()
}
