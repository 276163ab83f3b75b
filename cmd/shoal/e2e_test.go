package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/client"
)

// End-to-end tests with real shoal processes on loopback: the test builds
// the binary once, starts agents on free ports, and talks to them with the
// CLI (as a subprocess) and over HTTP.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// shoalBinary builds the shoal binary once per test run.
func shoalBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real processes (skipped with -short)")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "shoal-e2e-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "shoal")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// agentProc is one shoal agent process.
type agentProc struct {
	t                *testing.T
	bin, name, dir   string
	httpAddr, gossip string
	join             []string
	url              string
	cmd              *exec.Cmd
	exited           chan struct{}
	exitErr          error
	logPath          string
	extra            []string
	client           *client.Client
	mu               sync.Mutex
	stopped          bool
}

// startCluster starts n agents named n1..nN in root: n1 alone, then the
// others joining it. extra, when not nil, gives each agent's extra flags.
func startCluster(t *testing.T, bin, root string, n int, extra func() []string) []*agentProc {
	t.Helper()
	flags := func() []string {
		if extra == nil {
			return nil
		}
		return extra()
	}
	nodes := []*agentProc{newAgentProc(t, bin, root, "n1", nil, flags()...)}
	nodes[0].start()
	for i := 2; i <= n; i++ {
		nodes = append(nodes, newAgentProc(t, bin, root, fmt.Sprintf("n%d", i), []string{nodes[0].gossip}, flags()...))
	}
	for _, p := range nodes[1:] {
		p.start()
	}
	return nodes
}

func newAgentProc(t *testing.T, bin, root, name string, join []string, extra ...string) *agentProc {
	t.Helper()
	h, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	g, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{t: t, bin: bin, name: name, dir: filepath.Join(root, name), httpAddr: h, gossip: g,
		join: join, url: "http://" + h, logPath: filepath.Join(root, name+".log"), extra: extra}
	p.client, err = client.New(p.url, &client.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.client.Close()
		p.kill()
	})
	return p
}

// start starts (or restarts) the process and waits until it serves.
func (p *agentProc) start() {
	p.t.Helper()
	args := []string{"agent", "--name", p.name, "--data-dir", p.dir, "--http", p.httpAddr, "--gossip", p.gossip, "--log-level", "debug"}
	if len(p.join) > 0 {
		args = append(args, "--join", strings.Join(p.join, ","))
	}
	args = append(args, p.extra...)
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "SHOAL_TOKEN=", "SHOAL_DATA_DIR=")
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.cmd, p.exited, p.stopped = cmd, make(chan struct{}), false
	exited := p.exited
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	if err := waitHealthy(context.Background(), p.url, "", 30*time.Second); err != nil {
		p.t.Fatalf("%s: %v\nlog:\n%s", p.name, err, p.logTail())
	}
}

func (p *agentProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *agentProc) kill() {
	p.mu.Lock()
	cmd, exited, stopped := p.cmd, p.exited, p.stopped
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil || stopped {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// term sends SIGTERM and returns the exit code.
func (p *agentProc) term() int {
	p.t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.stopped = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		p.t.Fatalf("%s did not exit within 30s of SIGTERM\n%s", p.name, p.logTail())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	if p.exitErr != nil {
		p.t.Fatalf("%s: %v", p.name, p.exitErr)
	}
	return 0
}

// cli runs the shoal binary as a client of node p.
func (p *agentProc) cli(args ...string) (string, error) {
	cmd := exec.Command(p.bin, append(args, "--addr", p.url)...)
	cmd.Env = append(os.Environ(), "SHOAL_TOKEN=", "SHOAL_ADDR=")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), fmt.Errorf("shoal %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
	}
	return string(out), err
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusOf(p *agentProc) (map[string]any, error) {
	var st map[string]any
	err := p.client.Do(http.MethodGet, "/v1/status", nil, nil, &st)
	return st, err
}

// converged reports whether every node answers with the same digest and
// counts all of them as alive members.
func converged(nodes ...*agentProc) (bool, string) {
	ok := true
	var first string
	var states []string
	for i, n := range nodes {
		st, err := statusOf(n)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.name, err)
		}
		d, _ := st["digest"].(string)
		m, _ := st["members"].(float64)
		states = append(states, fmt.Sprintf("%s: digest %.12s members %v", n.name, d, m))
		if i == 0 {
			first = d
		}
		ok = ok && d == first && int(m) == len(nodes)
	}
	return ok, strings.Join(states, "; ")
}

// TestE2EThreeNodeCluster: three agent processes converge on writes made
// through the CLI and HTTP on different nodes; a watch on one node sees
// writes made on another and resumes with Last-Event-ID without a gap; a
// SIGKILLed node restarted on its directory catches up with every
// acknowledged write; SIGTERM exits 0 and leaves a clean WAL.
func TestE2EThreeNodeCluster(t *testing.T) {
	bin := shoalBinary(t)
	root := t.TempDir()
	nodes := startCluster(t, bin, root, 3, nil)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()

	// Writes through the CLI on n1 and HTTP on n2 and n3.
	if _, err := n1.cli("put", "greeting", "hello"); err != nil {
		t.Fatal(err)
	}
	if err := n2.client.Put("doc", json.RawMessage(`{"by":"n2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := n3.client.SetAdd("tags", "from-n3"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.cli("incr", "hits", "2"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "three nodes converge", func() (bool, string) { return converged(nodes...) })
	if out, err := n3.cli("get", "hits"); err != nil || out != "6\n" {
		t.Fatalf("hits on n3: %q %v", out, err)
	}
	if out, err := n1.cli("get", "doc", "-o", "json"); err != nil || !strings.Contains(out, `"by":"n2"`) {
		t.Fatalf("doc on n1: %q %v", out, err)
	}

	// A watch on n3 sees writes made on n1.
	events := make(chan node.Event, 100)
	wctx, wcancel := context.WithCancel(ctx)
	sub, err := n3.client.Subscribe(wctx, "w/")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ev, err := sub.Next(wctx)
			if err != nil {
				return
			}
			events <- ev
		}
	}()
	eventually(t, 10*time.Second, "watch open", func() (bool, string) {
		_ = n1.client.Put("w/probe", json.RawMessage(`0`))
		select {
		case ev := <-events:
			return ev.Key == "w/probe", ev.Key
		default:
			return false, "no event yet"
		}
	})
	if err := n1.client.Put("w/1", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	var last node.Event
	timeout := time.After(20 * time.Second)
	for last.Key == "" {
		select {
		case ev := <-events:
			if ev.Key == "w/probe" {
				continue // more probes of the loop above
			}
			if ev.Key != "w/1" || ev.Offset == 0 || ev.Origin == "" {
				t.Fatalf("event on n3: %+v", ev)
			}
			last = ev
		case <-timeout:
			t.Fatal("no event on n3 for a write on n1")
		}
	}
	wcancel()
	wg.Wait()
	_ = sub.Close()
	// While no one watches, more writes land; resuming after the last
	// event's record gets each of them.
	for i := 2; i <= 4; i++ {
		if err := n1.client.Put(fmt.Sprintf("w/%d", i), json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "writes reach n3", func() (bool, string) { return converged(nodes...) })
	got := map[string]bool{}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	sub, err = n3.client.SubscribeFrom(rctx, "w/", last.Offset+1)
	for err == nil && !(got["w/2"] && got["w/3"] && got["w/4"]) {
		var ev node.Event
		if ev, err = sub.Next(rctx); err == nil {
			got[ev.Key] = true
		}
	}
	if sub != nil {
		_ = sub.Close()
	}
	rcancel()
	if err != nil || got["w/1"] || got["w/probe"] {
		t.Fatalf("resume after offset %d: got %v, err %v", last.Offset, got, err)
	}

	// SIGKILL n2, keep writing on the others, restart it: it catches up.
	n2.kill()
	acked := map[string]string{}
	var incrs int64
	for i := 0; i < 30; i++ {
		n := nodes[[]int{0, 2}[i%2]]
		key := fmt.Sprintf("k/%02d", i)
		if err := n.client.Put(key, json.RawMessage(fmt.Sprintf(`"v%d"`, i))); err == nil {
			acked[key] = fmt.Sprintf("v%d", i)
		}
		if _, err := n.client.Incr("hits", 1); err == nil {
			incrs++
		}
	}
	n2.start()
	eventually(t, 30*time.Second, "restarted n2 converges", func() (bool, string) { return converged(nodes...) })
	keys, err := n2.client.Keys("k/", 0)
	if err != nil || len(keys) != len(acked) {
		t.Fatalf("n2 holds %d of %d acknowledged keys (%v)", len(keys), len(acked), err)
	}
	for key, v := range acked {
		a, err := n2.client.Get(key)
		if err != nil || a.Data != v {
			t.Fatalf("n2 %s = %v %v, want %q", key, a, err, v)
		}
	}
	if a, err := n2.client.Get("hits"); err != nil || a.Data != 6+incrs {
		t.Fatalf("hits on n2 = %v, want %d (%v)", a.Data, 6+incrs, err)
	}
	if out, err := n2.cli("wait-synced", "--wait", "20s"); err != nil || out != "synced\n" {
		t.Fatalf("wait-synced on n2: %q %v", out, err)
	}

	// SIGTERM: exit 0, and the WAL verifies with no torn tail.
	if code := n3.term(); code != 0 {
		t.Fatalf("n3 exit code %d after SIGTERM\n%s", code, n3.logTail())
	}
	out, err := exec.Command(bin, "wal", "verify", n3.dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok (0 warning(s))") {
		t.Fatalf("wal verify after SIGTERM: %v\n%s", err, out)
	}
	for _, n := range []*agentProc{n1, n2} {
		if code := n.term(); code != 0 {
			t.Fatalf("%s exit code %d\n%s", n.name, code, n.logTail())
		}
	}
}
