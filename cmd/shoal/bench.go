package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const benchUsage = `Usage: shoal bench put|http|cluster|resp|all [flags]
       shoal bench noop-server [--http ADDR]

Measurements to run on your own machine. Each figure is printed next to its
baseline, measured in the same run (a shared machine's drift then hits both
alike), as a table or as JSON (-o json), and beside the goal it is held to
where the project has one (met or not met: a run never fails on a goal).

  put      embedded durable Put against a raw group-commit loop (write +
           fdatasync on a plain file) and bbolt, at several writer counts
  http     the HTTP API against a no-op net/http server, closed loop (each
           connection waits for its answer) or open loop at a fixed --rate
  cluster  N agent processes on loopback at an offered write rate: sustained
           rate, ack-to-visible-on-all latency, wire bytes and CPU per write
  all      every figure and plot the README shows (--svg DIR writes the plots)

bench resp runs redis-benchmark against the RESP endpoint and against Redis
(appendfsync always) in the same run.

bench noop-server runs only the no-op reference server of bench http.

Run "shoal bench COMMAND --help" for the flags of each.
`

func (m *Main) runBench(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(m.Stdout, benchUsage)
		if len(args) == 0 {
			return usageError("bench: say which: put, http, cluster, resp, all or noop-server")
		}
		return nil
	}
	switch args[0] {
	case "put":
		return m.runBenchPut(ctx, args[1:])
	case "http":
		return m.runBenchHTTP(ctx, args[1:])
	case "cluster":
		return m.runBenchCluster(ctx, args[1:])
	case "resp":
		return m.runBenchRESP(ctx, args[1:])
	case "all":
		return m.runBenchAll(ctx, args[1:])
	case "noop-server":
		return m.runNoopServer(ctx, args[1:])
	}
	return usageError("bench: unknown benchmark %q (want put, http, cluster, resp, all or noop-server)", args[0])
}

// writeJSON writes v as indented JSON, the -o json of every bench.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// saveJSON writes v as indented JSON to path, unless path is empty.
func saveJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// latencyReport is a latency distribution in milliseconds.
type latencyReport struct {
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99.9"`
	Max   float64 `json:"max"`
	Count int     `json:"count"`
}

// summarize computes percentiles from latencies (sorted in place).
func summarize(lat []time.Duration) latencyReport {
	if len(lat) == 0 {
		return latencyReport{}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) float64 {
		i := int(q*float64(len(lat))+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return ms(lat[i])
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return latencyReport{
		Mean: ms(sum / time.Duration(len(lat))), P50: at(0.50), P90: at(0.90), P99: at(0.99),
		P999: at(0.999), Max: ms(lat[len(lat)-1]), Count: len(lat),
	}
}

// a constant JSON object, the least any HTTP API server does per request.
func (m *Main) runNoopServer(ctx context.Context, args []string) error {
	fs := newFlagSet("bench noop-server", m.Stderr, benchUsage+"\n")
	addr := fs.String("http", "127.0.0.1:7071", "address to serve on")
	if _, err := parseArgs(fs, args, m.Getenv); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: noopHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-m.Signals:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func noopHandler() http.Handler {
	answer := []byte(`{"key":"k","type":"register","value":"v"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = w.Write(answer)
	})
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago (for child processes that must be told their address). The
// host is a random one of 127.0.0.0/8, so that another program taking
// ephemeral ports on 127.0.0.1 meanwhile cannot take this one.
func freeLoopbackAddr() (string, error) {
	ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254), 1+rand.IntN(254))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", err
		}
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startChild starts exe with args, its output going to stderr; stop sends
// it SIGINT (a graceful shutdown) and waits, with SIGKILL after 10 s. env
// nil means this process's environment. The child runs in a process group
// of its own, so that a Ctrl-C at the terminal reaches only the bench, which
// then stops its children one by one, and (on Linux) it is killed if the
// bench dies without stopping it. stop is safe to call twice.
func startChild(stderr io.Writer, env []string, exe string, args ...string) (stop func(), err error) {
	cmd := exec.Command(exe, args...)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.Env = env
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}, nil
}

// waitHealthy polls GET /healthz until it answers 200 or timeout passes.
func waitHealthy(ctx context.Context, base, token string, timeout time.Duration) error {
	base = strings.TrimRight(base, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	var last error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.Join(fmt.Errorf("%s did not become healthy within %s", base, timeout), last)
}

// reportFlags adds the report flags every bench takes: --output (-o)
// human or json, and --json FILE (the report also written there).
func reportFlags(fs *flag.FlagSet, output *string) (jsonPath *string) {
	fs.StringVar(output, "output", "human", "report format: human or json")
	fs.StringVar(output, "o", "human", "shorthand for --output")
	return fs.String("json", "", "also write the JSON report to this file (the table still prints)")
}
