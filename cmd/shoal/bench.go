package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

const benchUsage = `Usage: shoal bench http [flags]
       shoal bench noop-server [--http ADDR]

bench http drives a node's HTTP API with --conns concurrent connections, one
workload after another (--ops: put = durable PUT of a --value-size value to one
of --keys keys, incr = POST .../incr on one of --keys counters, batch = POST
/v1/batch of --batch such puts, counted as --batch ops), and reports ops/s and
latency percentiles (per request), with a progress line on stderr.

Without --addr it starts a throwaway agent (this binary, a temporary data
directory, loopback, default sync policy) and measures that. With --noop it
also starts a no-op net/http server (bench noop-server: drains the body and
answers a small constant JSON) in a separate process and puts the same load
on it right before each workload: that is the HTTP ceiling on this machine,
measured in the same run, and the report gives shoal's ratio to it.

bench noop-server runs only that reference server.
`

func (m *Main) runBench(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(m.Stdout, benchUsage)
		if len(args) == 0 {
			return usageError("bench: say which: http or noop-server")
		}
		return nil
	}
	switch args[0] {
	case "http":
		return m.runBenchHTTP(ctx, args[1:])
	case "noop-server":
		return m.runNoopServer(ctx, args[1:])
	}
	return usageError("bench: unknown benchmark %q (want http or noop-server)", args[0])
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
// it SIGTERM and waits (SIGKILL after 10 s).
func startChild(ctx context.Context, stderr io.Writer, exe string, args ...string) (stop func(), err error) {
	cmd := exec.Command(exe, args...)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
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
