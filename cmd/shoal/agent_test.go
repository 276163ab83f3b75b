package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
)

// noEnv is an empty environment, so the tests do not depend on SHOAL_*
// variables of whoever runs them.
func noEnv(string) string { return "" }

// cliResult is what one in-process run of the shoal command gave.
type cliResult struct {
	out, err string
	code     int
}

// runShoal runs the shoal command line in process.
func runShoal(t testing.TB, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }}
	code := m.Main(context.Background(), args)
	return cliResult{out.String(), errb.String(), code}
}

// mustShoal runs a command that must succeed and returns its output.
func mustShoal(t testing.TB, args ...string) string {
	t.Helper()
	r := runShoal(t, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("shoal %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.out, r.err)
	}
	return r.out
}

// startAgent runs an agent in process on free loopback ports.
func startAgent(t testing.TB, dir string, extra ...string) *AgentCommand {
	t.Helper()
	a := NewAgentCommand(io.Discard)
	args := append([]string{"--name", filepath.Base(dir), "--data-dir", dir, "--http", "127.0.0.1:0",
		"--gossip", "127.0.0.1:0", "--sync", "never", "--log-level", "error"}, extra...)
	if err := a.ParseFlags(args, noEnv); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err != nil {
		_ = a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestAgentConfigDefaultsAndEnv(t *testing.T) {
	a := NewAgentCommand(io.Discard)
	if err := a.ParseFlags(nil, noEnv); err != nil {
		t.Fatal(err)
	}
	c := a.Config
	if c.DataDir != "./shoal-data" || c.HTTPAddr != "127.0.0.1:7070" || c.GossipAddr != "127.0.0.1:7946" || c.Sync != "always" {
		t.Fatalf("defaults: %+v", c)
	}
	env := map[string]string{
		"SHOAL_DATA_DIR": "/env/dir", "SHOAL_HTTP": "127.0.0.1:1", "SHOAL_JOIN": "a:1,b:2",
		"SHOAL_TOKEN": "tok", "SHOAL_SYNC": "interval", "SHOAL_SNAPSHOT_EVERY_BYTES": "64MiB", "SHOAL_NAME": "envname",
	}
	a = NewAgentCommand(io.Discard)
	if err := a.ParseFlags([]string{"--name", "flagname", "--join", "c:3"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	c = a.Config
	if c.DataDir != "/env/dir" || c.HTTPAddr != "127.0.0.1:1" || c.Token != "tok" || c.Sync != "interval" ||
		c.SnapshotEveryBytes != 64<<20 || c.Name != "flagname" || strings.Join(c.Join, ",") != "c:3" {
		t.Fatalf("flags over env over defaults: %+v", c)
	}
	for _, bad := range [][]string{{"--sync", "sometimes"}, {"--tls-cert", "x"}, {"--log-format", "xml"}, {"extra-arg"}} {
		if err := NewAgentCommand(io.Discard).ParseFlags(bad, noEnv); err == nil {
			t.Errorf("ParseFlags(%q): want an error", bad)
		}
	}
}

func TestCLIAgainstAgent(t *testing.T) {
	a := startAgent(t, t.TempDir())
	addr := []string{"--addr", a.URL()}
	sh := func(args ...string) string { t.Helper(); return mustShoal(t, append(args, addr...)...) }

	if got := sh("put", "greeting", "hello world"); got != "OK\n" {
		t.Fatalf("put: %q", got)
	}
	if got := sh("get", "greeting"); got != "hello world\n" {
		t.Fatalf("get: %q", got)
	}
	sh("put", "num", "42")
	sh("put", "str", "42", "--string")
	if got := sh("get", "num", "-o", "json"); got != `{"key":"num","type":"register","value":42}`+"\n" {
		t.Fatalf("get -o json: %q", got)
	}
	if got := sh("get", "str", "-o", "json"); !strings.Contains(got, `"value":"42"`) {
		t.Fatalf("--string: %q", got)
	}
	if r := runShoal(t, nil, `{"from":"stdin"}`, append([]string{"put", "doc0", "-"}, addr...)...); r.code != 0 {
		t.Fatalf("put from stdin: %+v", r)
	}
	if got := sh("get", "doc0"); got != `{"from":"stdin"}`+"\n" {
		t.Fatalf("stdin value: %q", got)
	}
	if got := sh("incr", "hits"); got != "1\n" {
		t.Fatalf("incr: %q", got)
	}
	if got := sh("incr", "hits", "-5"); got != "-4\n" {
		t.Fatalf("incr -5: %q", got)
	}
	if got := sh("incr", "hits", "--by", "10"); got != "6\n" {
		t.Fatalf("incr --by: %q", got)
	}
	sh("add", "tags", "b", "a", "c")
	sh("remove", "tags", "b")
	if got := sh("get", "tags"); got != "a\nc\n" {
		t.Fatalf("set: %q", got)
	}
	sh("patch", "doc", "--set", "title=Hello", "--set", `meta={"v":1}`, "--incr", "views=2", "--add", "tags=x", "--enable", "pinned")
	sh("patch", "doc", `{"delete":["meta"],"incr":{"views":1}}`)
	if got := sh("get", "doc", "-o", "json"); got != `{"key":"doc","type":"map","value":{"pinned":true,"tags":["x"],"title":"Hello","views":3}}`+"\n" {
		t.Fatalf("patch: %q", got)
	}
	if got := sh("keys", "d"); !strings.Contains(got, "doc") || !strings.Contains(got, "map") || strings.Contains(got, "hits") {
		t.Fatalf("keys d: %q", got)
	}
	if got := sh("keys", "--limit", "2", "-o", "json"); got != `{"keys":[{"key":"doc","type":"map"},{"key":"doc0","type":"register"}]}`+"\n" {
		t.Fatalf("keys -o json: %q", got)
	}
	if got := sh("get", "greeting", "--siblings"); !strings.Contains(got, "ORIGIN") || !strings.Contains(got, "hello world") {
		t.Fatalf("siblings: %q", got)
	}
	sh("del", "greeting")

	st := sh("status", "-o", "json")
	var status map[string]any
	if err := json.Unmarshal([]byte(st), &status); err != nil || status["digest"] == "" || status["node"] != a.Config.Name {
		t.Fatalf("status: %q", st)
	}
	if got := sh("status"); !strings.Contains(got, "digest:") {
		t.Fatalf("status: %q", got)
	}
	if got := sh("members"); !strings.Contains(got, "NAME") || !strings.Contains(got, a.Config.Name) {
		t.Fatalf("members: %q", got)
	}
	// Replay of the log from the start: every key once, with its value now.
	if got := sh("watch", "--from", "0", "--count", "1", "--timeout", "20s", "tags"); !strings.Contains(got, "set\ttags\ta c") {
		t.Fatalf("watch: %q", got)
	}

	// Errors: the server's message, exit 1; usage errors exit 2.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"get", "greeting"}, 1, "not found"},
		{[]string{"incr", "num"}, 1, "wrong type"},
		{[]string{"add", "hits", "x"}, 1, "wrong type"},
		{[]string{"get"}, 2, "wrong number of arguments"},
		{[]string{"incr", "k", "notanumber"}, 2, "BY must be an integer"},
		{[]string{"get", "k", "-o", "yaml"}, 2, "want human or json"},
		{[]string{"patch", "doc"}, 2, "give the patch"},
		{[]string{"frob"}, 2, "unknown command"},
	} {
		r := runShoal(t, nil, "", append(tc.args, addr...)...)
		if r.code != tc.code || !strings.Contains(r.err, tc.msg) {
			t.Errorf("shoal %q: exit %d, stderr %q; want exit %d with %q", tc.args, r.code, r.err, tc.code, tc.msg)
		}
	}
	// --help works on every subcommand and exits 0.
	for _, c := range clientCommands {
		if r := runShoal(t, nil, "", c.name, "--help"); r.code != 0 || !strings.Contains(r.err, "Usage: shoal "+c.name) {
			t.Errorf("%s --help: exit %d, %q", c.name, r.code, r.err)
		}
	}
	// An unreachable server is an error, not a hang.
	if r := runShoal(t, nil, "", "get", "k", "--addr", "http://127.0.0.1:1"); r.code != 1 {
		t.Errorf("unreachable: %+v", r)
	}
}

func TestCLIToken(t *testing.T) {
	a := startAgent(t, t.TempDir(), "--token", "s3cret")
	r := runShoal(t, nil, "", "put", "k", "1", "--addr", a.URL())
	if r.code != 1 || !strings.Contains(r.err, "bearer token") {
		t.Fatalf("no token: %+v", r)
	}
	r = runShoal(t, nil, "", "put", "k", "1", "--addr", a.URL(), "--token", "wrong")
	if r.code != 1 {
		t.Fatalf("wrong token: %+v", r)
	}
	env := map[string]string{"SHOAL_TOKEN": "s3cret", "SHOAL_ADDR": a.URL()}
	if r = runShoal(t, env, "", "put", "k", "1"); r.code != 0 {
		t.Fatalf("token and address from the environment: %+v", r)
	}
}

// TestAgentGracefulClose: Close ends watches with an error event, refuses
// writes, and is safe twice.
func TestAgentGracefulClose(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir)
	mustShoal(t, "put", "k", "1", "--addr", a.URL())

	started := make(chan struct{})
	var res cliResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var out, errb bytes.Buffer
		m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: noEnv}
		// Wait until the stream is open before closing the agent.
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for a.handler.Watchers() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			close(started)
		}()
		res.code = m.Main(context.Background(), []string{"watch", "--addr", a.URL()})
		res.out, res.err = out.String(), errb.String()
	}()
	<-started
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wg.Wait()
	if res.code != 1 || !strings.Contains(res.err, "shutting down") {
		t.Fatalf("watch across shutdown: %+v", res)
	}
	// The data directory is clean: a new agent opens it and has the write.
	b := startAgent(t, dir)
	if got := mustShoal(t, "get", "k", "--addr", b.URL()); got != "1\n" {
		t.Fatalf("after restart: %q", got)
	}
	if r := runShoal(t, nil, "", "wal", "verify", dir); r.code != 0 {
		t.Fatalf("wal verify after a clean close: %+v", r)
	}
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and its key.
func writeSelfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shoal test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestAgentTLS(t *testing.T) {
	cert, key := writeSelfSignedCert(t, t.TempDir())
	a := startAgent(t, t.TempDir(), "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(a.URL(), "https://") {
		t.Fatalf("URL %s", a.URL())
	}
	mustShoal(t, "put", "k", `"tls"`, "--addr", a.URL(), "--cacert", cert)
	if got := mustShoal(t, "get", "k", "--addr", a.URL(), "--cacert", cert); got != "tls\n" {
		t.Fatalf("get over TLS: %q", got)
	}
	if r := runShoal(t, nil, "", "get", "k", "--addr", a.URL()); r.code != 1 || !strings.Contains(r.err, "certificate") {
		t.Fatalf("untrusted certificate: %+v", r)
	}
}

// TestWALVerifyAndDump writes through an agent with small segments, then
// checks the log tools on the closed directory: dump prints what was
// written; verify passes, then finds a flipped byte in a sealed segment.
func TestWALVerifyAndDump(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "--segment-bytes", "1KiB")
	for i := 0; i < 40; i++ {
		mustShoal(t, "put", fmt.Sprintf("k%02d", i), fmt.Sprintf(`{"i":%d}`, i), "--addr", a.URL())
	}
	mustShoal(t, "add", "set1", "m1", "m2", "--addr", a.URL())
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	out := mustShoal(t, "wal", "dump", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 41 {
		t.Fatalf("dump printed %d lines, want 41:\n%s", len(lines), out)
	}
	var last node.OpLine
	if err := json.Unmarshal([]byte(lines[40]), &last); err != nil || last.Key != "set1" || last.Type != "set" || last.Offset != 40 || len(last.Dots) != 1 {
		t.Fatalf("last line %s: %v", lines[40], err)
	}
	var first struct {
		Key   string `json:"key"`
		Delta struct {
			Register []struct {
				Value json.RawMessage `json:"value"`
			} `json:"register"`
		} `json:"delta"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Key != "k00" || string(first.Delta.Register[0].Value) != `{"i":0}` {
		t.Fatalf("first line %s: %v", lines[0], err)
	}
	if got := mustShoal(t, "wal", "dump", dir, "--from", "39", "--prefix", "set"); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"key":"set1"`) {
		t.Fatalf("dump --from --prefix: %q", got)
	}

	if got := mustShoal(t, "wal", "verify", dir); !strings.Contains(got, "ok") {
		t.Fatalf("verify: %q", got)
	}
	segs, err := filepath.Glob(filepath.Join(dir, dataWALDir, "*.log"))
	slices.Sort(segs)
	if err != nil || len(segs) < 3 {
		t.Fatalf("want several segments: %v %v", segs, err)
	}
	// Flip one payload byte in the middle of a sealed segment.
	victim := segs[1]
	b, _ := os.ReadFile(victim)
	at := int64(len(b) / 2)
	b[at] ^= 0x20
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runShoal(t, nil, "", "wal", "verify", dir)
	if r.code != 1 || !strings.Contains(r.out, filepath.Base(victim)) || !strings.Contains(r.out, "in a sealed segment") {
		t.Fatalf("verify after a flipped byte: exit %d\n%s%s", r.code, r.out, r.err)
	}
	var rep node.Inspection
	r = runShoal(t, nil, "", "wal", "verify", dir, "-o", "json")
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil || rep.OK || len(rep.Problems) == 0 || *rep.Problems[0].Byte > at {
		t.Fatalf("verify -o json: %s %v", r.out, err)
	}
	if r := runShoal(t, nil, "", "wal", "dump", dir); r.code != 1 || !strings.Contains(r.err, "damaged") {
		t.Fatalf("dump over damage: %+v", r)
	}
}

// TestWALDumpFollow tails the log of a running agent.
func TestWALDumpFollow(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "--segment-bytes", "1KiB")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1) // an early exit ends the pipe, not the test's wait
	var stderr syncBuffer
	go func() {
		m := &Main{Stdin: strings.NewReader(""), Stdout: pw, Stderr: &stderr, Getenv: noEnv}
		done <- m.Main(ctx, []string{"wal", "dump", dir, "--follow", "--poll", "10ms"})
		pw.Close()
	}()
	dec := json.NewDecoder(pr)
	for i := 0; i < 30; i++ {
		mustShoal(t, "incr", fmt.Sprintf("c%d", i), "--addr", a.URL())
		var line node.OpLine
		if err := dec.Decode(&line); err != nil {
			cancel()
			t.Fatalf("line %d: %v; dump --follow said: %s", i, err, stderr.String())
		}
		if line.Offset != uint64(i) || line.Key != fmt.Sprintf("c%d", i) || line.Type != "counter" {
			t.Fatalf("line %d: %+v", i, line)
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if code := <-done; code != 0 {
		t.Fatalf("dump --follow exit %d", code)
	}
}

// TestAgentsEncrypted: agents sharing --encrypt-key replicate; one with
// another key (from a keyring file) does not get in.
func TestAgentsEncrypted(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	other := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	a := startAgent(t, t.TempDir(), "--encrypt-key", key)
	b := startAgent(t, t.TempDir(), "--encrypt-key", key, "--join", a.GossipAddr())
	ring := filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(ring, []byte("# primary first\n"+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startAgent(t, t.TempDir(), "--keyring-file", ring, "--join", a.GossipAddr())

	mustShoal(t, "put", "secret", "42", "--addr", a.URL())
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := runShoal(t, nil, "", "get", "secret", "--addr", b.URL())
		if r.code == 0 && r.out == "42\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write did not reach the agent with the same key: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := runShoal(t, nil, "", "get", "secret", "--addr", c.URL()); r.code != 1 {
		t.Fatalf("the agent with another key got the data: %+v", r)
	}
	if ms := c.Node().Members(); len(ms) != 1 {
		t.Fatalf("the agent with another key joined: %+v", ms)
	}
	for _, bad := range [][]string{{"--encrypt-key", "not base64!"}, {"--encrypt-key", "c2hvcnQ="}, {"--encrypt-key", key, "--keyring-file", ring}} {
		if err := NewAgentCommand(io.Discard).ParseFlags(bad, noEnv); err == nil {
			t.Errorf("ParseFlags(%q): want an error", bad)
		}
	}
}

// TestWALVerifySnapshots: verify checks the snapshots and that they cover
// the offsets the truncated WAL no longer holds.
func TestWALVerifySnapshots(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "--snapshot-every-ops", "10", "--segment-bytes", "1KiB")
	for i := 0; i < 50; i++ {
		mustShoal(t, "put", fmt.Sprintf("k%02d", i), fmt.Sprint(i), "--addr", a.URL())
	}
	// The WAL is truncated once a second snapshot is written: the snapshots
	// run beside the writes, so the last puts can end before it starts.
	eventually(t, 10*time.Second, "a second snapshot after 50 puts, one due every 10", func() (bool, string) {
		snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.snap"))
		return len(snaps) >= 2, fmt.Sprint(snaps)
	})
	if err := a.Close(); err != nil { // waits for the snapshot being written
		t.Fatal(err)
	}
	var rep node.Inspection
	r := runShoal(t, nil, "", "wal", "verify", dir, "-o", "json")
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil || r.code != 0 || !rep.OK || len(rep.Snapshots) == 0 || rep.First == 0 {
		t.Fatalf("verify with snapshots (want some, and a truncated WAL): exit %d %s %v", r.code, r.out, err)
	}
	// A flipped byte in the newest snapshot is reported.
	snaps := filepath.Join(dir, "snapshots")
	newest := filepath.Join(snaps, rep.Snapshots[len(rep.Snapshots)-1])
	b, _ := os.ReadFile(newest)
	b[len(b)-3] ^= 1
	_ = os.WriteFile(newest, b, 0o644)
	r = runShoal(t, nil, "", "wal", "verify", dir)
	if r.code != 1 || !strings.Contains(r.out, "checksum mismatch") || !strings.Contains(r.out, filepath.Base(newest)) {
		t.Fatalf("damaged snapshot: exit %d\n%s", r.code, r.out)
	}
	// Without any snapshot the truncated WAL is missing operations.
	if err := os.RemoveAll(snaps); err != nil {
		t.Fatal(err)
	}
	r = runShoal(t, nil, "", "wal", "verify", dir)
	if r.code != 1 || !strings.Contains(r.out, "operations are missing") {
		t.Fatalf("no snapshot: exit %d\n%s", r.code, r.out)
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine and read
// from another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
