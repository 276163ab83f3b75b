package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisClient returns a go-redis client of addr, closed at the end.
func redisClient(t testing.TB, addr, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                     addr,
		Password:                 password,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		MaxRetries:               -1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRESPAgentFlags: --resp is off by default; a bare port means
// loopback; beyond loopback it needs the token (its AUTH password) or
// --insecure-no-auth, like the HTTP API.
func TestRESPAgentFlags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	a := NewAgentCommand(io.Discard)
	if err := a.ParseFlags(nil, noEnv); err != nil || a.Config.RESPAddr != "" {
		t.Fatalf("default --resp = %q, %v", a.Config.RESPAddr, err)
	}
	for _, c := range []struct {
		args       []string
		want, addr string // want: "" = accepted (with addr)
	}{
		{[]string{"--resp", "6380"}, "", "127.0.0.1:6380"},
		{[]string{"--resp", "127.0.0.1:6380"}, "", "127.0.0.1:6380"},
		{[]string{"--resp", "localhost:6380"}, "", "localhost:6380"},
		{[]string{"--resp", ":6380"}, "--insecure-no-auth", ""},
		{[]string{"--resp", "0.0.0.0:6380"}, "--token-file", ""},
		{[]string{"--resp", "0.0.0.0:6380", "--token-file", tokenFile}, "", "0.0.0.0:6380"},
		{[]string{"--resp", "0.0.0.0:6380", "--insecure-no-auth"}, "", "0.0.0.0:6380"},
		{[]string{"--resp", "no-port"}, "--resp", ""},
		{[]string{"--resp", "99999"}, "--resp", ""},
	} {
		a := NewAgentCommand(io.Discard)
		err := a.ParseFlags(c.args, noEnv)
		switch {
		case c.want == "" && (err != nil || a.Config.RESPAddr != c.addr):
			t.Errorf("%q: %v, addr %q; want %q", c.args, err, a.Config.RESPAddr, c.addr)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}

// TestRESPAgent: an agent serves RESP next to HTTP, with the API token as
// the AUTH password; the same data through both.
func TestRESPAgent(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("tok\n"), 0o600)
	a := startAgent(t, t.TempDir(), "--resp", "127.0.0.1:0", "--token-file", tokenFile)
	ctx := context.Background()
	if err := redisClient(t, a.RESPAddr(), "").Set(ctx, "k", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("SET without AUTH = %v", err)
	}
	c := redisClient(t, a.RESPAddr(), "tok")
	if err := c.Set(ctx, "k", "from resp", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Node().Get("k"); err != nil || v.Data != "from resp" {
		t.Fatalf("the node holds %v, %v", v.Data, err)
	}
	r := runShoal(t, map[string]string{"SHOAL_TOKEN": "tok"}, "", "put", "n", "42", "--addr", a.URL())
	if r.code != 0 {
		t.Fatalf("put over HTTP: %+v", r)
	}
	if v, err := c.Get(ctx, "n").Result(); err != nil || v != "42" {
		t.Fatalf("GET of a value put over HTTP = %q, %v", v, err)
	}
	if info, err := c.Info(ctx, "server").Result(); err != nil || !strings.Contains(info, "shoal_digest:"+a.Node().Digest()) {
		t.Fatalf("INFO = %q, %v", info, err)
	}
}

// TestRESPRedisCLI: Debian's redis-cli works against a node, in its
// interactive mode (a terminal from script(1)): it starts (COMMAND DOCS
// for its help), and runs commands.
func TestRESPRedisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed (apt-get install redis-tools): the interactive check is skipped")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed: redis-cli cannot be given a terminal")
	}
	a := startAgent(t, t.TempDir(), "--resp", "127.0.0.1:0")
	host, port, _ := net.SplitHostPort(a.RESPAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qec", fmt.Sprintf("%s -h %s -p %s", cli, host, port), "/dev/null")
	// TERM=dumb: linenoise reads plain lines (no cursor queries).
	cmd.Env = append(os.Environ(), "TERM=dumb")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "SET greeting \"hello world\"\nGET greeting\nINCRBY hits 5\nHSET doc title shoal\nHGETALL doc\nHELP SET\nNOSUCH\nQUIT\n")
	// Wait for redis-cli to have run the commands before closing its input.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, _ := a.Node().Get("doc"); v.Data != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-cli did not run the commands:\n%s", &out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = cmd.Wait()
	stdin.Close()
	got := out.String()
	for _, want := range []string{"OK", `"hello world"`, "(integer) 5", `1) "title"`, `2) "shoal"`,
		"Sets the string value of a key", "(error) ERR unknown command 'NOSUCH'", a.RESPAddr() + ">"} {
		if !strings.Contains(got, want) {
			t.Fatalf("redis-cli output lacks %q (exit %v):\n%s", want, err, got)
		}
	}
}

// TestRESPThreeNodes: writes made through RESP on one node read through
// RESP on the others; concurrent writes of different types converge on
// the documented type.
func TestRESPThreeNodes(t *testing.T) {
	bin := shoalBinary(t)
	root := t.TempDir()
	respAddr := func() []string {
		a, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		return []string{"--resp", a}
	}
	nodes := startCluster(t, bin, root, 3, respAddr)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	r1, r2, r3 := redisClient(t, n1.extra[1], ""), redisClient(t, n2.extra[1], ""), redisClient(t, n3.extra[1], "")

	if _, err := r1.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "greeting", "hello", 0)
		p.IncrBy(ctx, "hits", 2)
		p.SAdd(ctx, "tags", "a", "b")
		p.HSet(ctx, "doc", "title", "shoal")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r2.IncrBy(ctx, "hits", 3).Err())
	must(r3.Incr(ctx, "hits").Err())
	for _, r := range []*redis.Client{r1, r2, r3} {
		r := r
		eventually(t, 20*time.Second, "writes made elsewhere read through RESP", func() (bool, string) {
			g, _ := r.Get(ctx, "greeting").Result()
			h, _ := r.Get(ctx, "hits").Result()
			tags, _ := r.SMembers(ctx, "tags").Result()
			title, _ := r.HGet(ctx, "doc", "title").Result()
			state := fmt.Sprintf("%s: greeting %q hits %q tags %v title %q", r.Options().Addr, g, h, tags, title)
			return g == "hello" && h == "6" && len(tags) == 2 && title == "shoal", state
		})
	}

	// Concurrent first writes of different types: n3 leaves, both write
	// "k", n3 comes back. A set outranks a register (map > set > counter
	// > register), so both show the set, GET answers WRONGTYPE, and SET
	// replaces it everywhere.
	if code := n3.term(); code != 0 {
		t.Fatalf("n3 exit %d", code)
	}
	must(r1.Set(ctx, "k", "register on n1", 0).Err())
	n3.join = nil
	n3.start()
	r3 = redisClient(t, n3.extra[1], "")
	must(r3.SAdd(ctx, "k", "member on n3").Err())
	n3.term()
	n3.join = []string{n1.gossip}
	n3.start()
	eventually(t, 30*time.Second, "the type conflict converges", func() (bool, string) { return converged(n1, n2, n3) })
	for _, r := range []*redis.Client{r1, r2, r3} {
		if typ, err := r.Type(ctx, "k").Result(); err != nil || typ != "set" {
			t.Fatalf("%s: TYPE k = %q, %v", r.Options().Addr, typ, err)
		}
		if err := r.Get(ctx, "k").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("%s: GET k = %v", r.Options().Addr, err)
		}
	}
	must(r2.Set(ctx, "k", "final", 0).Err())
	for _, r := range []*redis.Client{r1, r3} {
		r := r
		eventually(t, 20*time.Second, "SET over the conflict replicates", func() (bool, string) {
			v, err := r.Get(ctx, "k").Result()
			return v == "final", fmt.Sprintf("%q %v", v, err)
		})
	}
}

// startRESPAgent starts an agent process with --sync always serving RESP
// on a free loopback address, which it returns.
func startRESPAgent(t *testing.T) (*agentProc, string) {
	ra, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := newAgentProc(t, shoalBinary(t), t.TempDir(), "n1", nil, "--resp", ra, "--sync", "always")
	p.start()
	return p, ra
}

// TestRESPExecCrash: transactions committed through RESP survive kill -9
// all or nothing: clients run EXEC in a loop against an agent with --sync
// always, the agent is SIGKILLed mid-loop and restarted, and every
// transaction is found whole or not at all, each acknowledged one
// included.
func TestRESPExecCrash(t *testing.T) {
	p, ra := startRESPAgent(t)
	ctx := context.Background()

	const clients = 4
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redisClient(t, ra, "")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each EXEC: two counters, a set member and a hash field,
				// which must all move together.
				tag := fmt.Sprintf("w%d-%d", w, i)
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Incr(ctx, "a")
					p.Incr(ctx, "b")
					p.SAdd(ctx, "members", tag)
					p.HSet(ctx, "tags", tag, "x")
					return nil
				})
				if err != nil {
					return // the agent is gone
				}
				acked.Add(1)
			}
		}()
	}
	eventually(t, 30*time.Second, "transactions run", func() (bool, string) {
		return acked.Load() >= 200, fmt.Sprint(acked.Load())
	})
	p.kill() // SIGKILL mid-loop
	close(stop)
	wg.Wait()
	committed := acked.Load()

	p.start()
	c := redisClient(t, ra, "")
	a, err1 := c.Get(ctx, "a").Int64()
	b, err2 := c.Get(ctx, "b").Int64()
	members, err3 := c.SCard(ctx, "members").Result()
	fields, err4 := c.HLen(ctx, "tags").Result()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	if a != b || a != members || a != fields {
		t.Fatalf("a torn transaction: a=%d b=%d members=%d fields=%d", a, b, members, fields)
	}
	if a < committed || a > committed+clients {
		t.Fatalf("%d transactions found, %d acknowledged (and at most %d in flight)", a, committed, clients)
	}
	t.Logf("%d transactions acknowledged before kill -9, %d found after restart", committed, a)
}

// TestBenchRESP: bench resp runs redis-benchmark against both servers
// (here two agents, so that CI needs no redis-server), once per test and
// pipeline, and reports each server's CPU per request from INFO cpu.
func TestBenchRESP(t *testing.T) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		t.Skip("redis-benchmark not installed (Debian: apt-get install redis-tools)")
	}
	a := startAgent(t, t.TempDir(), "--resp", "127.0.0.1:0")
	b := startAgent(t, t.TempDir(), "--resp", "127.0.0.1:0")
	out := mustShoal(t, "bench", "resp", "--shoal-addr", a.RESPAddr(), "--redis-addr", b.RESPAddr(),
		"--clients", "4", "--requests", "2000", "--tests", "set,get", "--pipelines", "1,4", "-o", "json")
	var rows []respBenchRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[fmt.Sprint(r.Target, r.Test, r.Pipeline)] = true
		if r.RPS <= 0 || r.P50ms < 0 || (runtime.GOOS != "windows" && r.CPUMicrosPerOp <= 0) {
			t.Errorf("row %+v", r)
		}
		// Both servers are agents here: their SETs went in shared records
		// (at least one round each), their GETs wrote nothing.
		if (r.Test == "SET") != (r.RoundsPerBatch >= 1) {
			t.Errorf("row %+v: rounds per shared record", r)
		}
	}
	for _, target := range []string{"redis", "shoal"} {
		for _, test := range []string{"SET", "GET"} {
			for _, p := range []int{1, 4} {
				if !seen[fmt.Sprint(target, test, p)] {
					t.Errorf("no row for %s %s -P %d in %+v", target, test, p, rows)
				}
			}
		}
	}
}

// TestRESPSharedBatchCrash: plain writes that many connections make at
// once share records (node/resp/combine.go); each acknowledged one
// survives kill -9. Clients INCR one counter and SET a key of their own in
// a loop against an agent with --sync always; after the SIGKILL and a
// restart the counter holds every acknowledged INCR (and at most the one
// in flight per client more), and each client's key its last
// acknowledged SET or the one after it.
func TestRESPSharedBatchCrash(t *testing.T) {
	p, ra := startRESPAgent(t)
	ctx := context.Background()

	const clients = 16
	var incrs atomic.Int64
	lastSet := make([]int64, clients) // each written by its client only, read after wg.Wait
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range clients {
		lastSet[w] = -1
		wg.Go(func() {
			c := redisClient(t, ra, "")
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c.Incr(ctx, "total").Err() != nil {
					return // the agent is gone
				}
				incrs.Add(1)
				if c.Set(ctx, fmt.Sprint("last", w), i, 0).Err() != nil {
					return
				}
				lastSet[w] = i
			}
		})
	}
	eventually(t, 30*time.Second, "writes run", func() (bool, string) {
		return incrs.Load() >= 1000, fmt.Sprint(incrs.Load())
	})
	p.kill() // SIGKILL mid-loop
	close(stop)
	wg.Wait()

	p.start()
	c := redisClient(t, ra, "")
	total, err := c.Get(ctx, "total").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if acked := incrs.Load(); total < acked || total > acked+clients {
		t.Fatalf("total = %d after kill -9, %d INCRs acknowledged (and at most %d in flight)", total, acked, clients)
	}
	for w, want := range lastSet {
		got, err := c.Get(ctx, fmt.Sprint("last", w)).Int64()
		if errors.Is(err, redis.Nil) && want < 0 {
			continue
		}
		if err != nil || got < want || got > want+1 {
			t.Fatalf("last%d = %d (%v) after kill -9; its last acknowledged SET was %d", w, got, err, want)
		}
	}
	t.Logf("%d INCRs acknowledged before kill -9, %d found after restart", incrs.Load(), total)
}
