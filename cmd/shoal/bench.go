package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const benchUsage = `Usage: shoal bench http [flags]
       shoal bench resp [flags]
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

bench resp compares the RESP endpoint with Redis under redis-benchmark (see
shoal bench resp --help).

bench noop-server runs only that reference server.
`

// benchConfig is the load of one bench run.
type benchConfig struct {
	addr, token      string
	noopAddr         string
	noop             bool
	conns            int
	duration, warmup time.Duration
	ops              []string
	batch            int
	valueSize        int
	keys             int
	output           string
	agentArgs        string
	progress         io.Writer
}

func (m *Main) runBench(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(m.Stdout, benchUsage)
		if len(args) == 0 {
			return usageError("bench: say which: http, resp or noop-server")
		}
		return nil
	}
	switch args[0] {
	case "http":
		return m.runBenchHTTP(ctx, args[1:])
	case "resp":
		return m.runBenchRESP(ctx, args[1:])
	case "noop-server":
		return m.runNoopServer(ctx, args[1:])
	}
	return usageError("bench: unknown benchmark %q (want http, resp or noop-server)", args[0])
}

func (m *Main) runBenchHTTP(ctx context.Context, args []string) error {
	c := benchConfig{progress: m.Stderr}
	fs := newFlagSet("bench http", m.Stderr, benchUsage+"\n")
	fs.StringVar(&c.addr, "addr", "", "URL of the node to load (empty = start a throwaway agent)")
	fs.StringVar(&c.token, "token", "", "bearer token of the node")
	fs.BoolVar(&c.noop, "noop", true, "also measure a no-op net/http reference server (separate process) under the same load")
	fs.StringVar(&c.noopAddr, "noop-addr", "", "URL of a running reference server to use instead of starting one")
	fs.IntVar(&c.conns, "conns", 256, "concurrent connections (one request in flight on each)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per workload and target")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured time before each measurement")
	ops := fs.String("ops", "put,incr", "workloads in order, comma list of put, incr and batch")
	fs.IntVar(&c.batch, "batch", 16, "puts per request of the batch workload (POST /v1/batch); ops/s counts puts")
	fs.IntVar(&c.valueSize, "value-size", 256, "size of the PUT body in bytes (a JSON string)")
	fs.IntVar(&c.keys, "keys", 10000, "number of distinct keys (and counters) written")
	fs.StringVar(&c.output, "output", "human", "report format: human or json")
	fs.StringVar(&c.output, "o", "human", "shorthand for --output")
	fs.StringVar(&c.agentArgs, "agent-args", "", "extra flags for the throwaway agent, space separated (e.g. \"--sync interval\")")
	if _, err := parseArgs(fs, args, m.Getenv); err != nil {
		return err
	}
	var l listFlag
	_ = l.Set(*ops)
	c.ops = l
	for _, op := range c.ops {
		if op != "put" && op != "incr" && op != "batch" {
			return usageError("--ops: unknown workload %q (want put, incr or batch)", op)
		}
	}
	if c.conns < 1 || c.keys < 1 || c.valueSize < 2 || c.duration <= 0 || c.batch < 1 {
		return usageError("--conns, --keys, --duration must be positive and --value-size at least 2")
	}
	if c.output != "human" && c.output != "json" {
		return usageError("-o: want human or json, got %q", c.output)
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if c.addr == "" {
		dir, err := os.MkdirTemp("", "shoal-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		gaddr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		agentArgs := []string{"agent", "--name", "bench", "--data-dir", dir, "--http", addr, "--gossip", gaddr, "--log-level", "warn"}
		agentArgs = append(agentArgs, strings.Fields(c.agentArgs)...)
		stop, err := startChild(ctx, m.Stderr, exe, agentArgs...)
		if err != nil {
			return err
		}
		defer stop()
		c.addr = "http://" + addr
		fmt.Fprintf(m.Stderr, "bench: started a throwaway agent at %s (data in %s)\n", c.addr, dir)
	}
	if c.noop && c.noopAddr == "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		stop, err := startChild(ctx, m.Stderr, exe, "bench", "noop-server", "--http", addr)
		if err != nil {
			return err
		}
		defer stop()
		c.noopAddr = "http://" + addr
	}
	for _, u := range []string{c.addr, c.noopAddr} {
		if u == "" {
			continue
		}
		if err := waitHealthy(ctx, u, c.token, 30*time.Second); err != nil {
			return err
		}
	}

	var results []*benchResult
	for _, op := range c.ops {
		if c.noopAddr != "" {
			r, err := runLoad(ctx, &c, "noop", c.noopAddr, op)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		r, err := runLoad(ctx, &c, "shoal", c.addr, op)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return printBenchReport(m.Stdout, &c, results)
}

// benchResult is the measurement of one workload against one target.
type benchResult struct {
	Target    string        `json:"target"`
	Op        string        `json:"op"`
	Conns     int           `json:"conns"`
	Ops       int64         `json:"ops"`
	Errors    int64         `json:"errors"`
	Seconds   float64       `json:"seconds"`
	OpsPerSec float64       `json:"ops_per_sec"`
	Latency   latencyReport `json:"latency_ms"`
	FirstErr  string        `json:"first_error,omitempty"`
}

type latencyReport struct {
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99.9"`
	Max   float64 `json:"max"`
	Count int     `json:"count"`
}

// batchBody is a POST /v1/batch body of n puts of a size-byte JSON string
// to random keys.
func batchBody(rng *rand.Rand, n, keys, size int) []byte {
	val := make([]byte, size-2)
	for i := range val {
		val[i] = 'a' + byte(i%26)
	}
	b := make([]byte, 0, n*(size+48)+16)
	b = append(b, `{"ops":[`...)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":"put","key":"bench-`...)
		b = strconv.AppendInt(b, int64(rng.IntN(keys)), 10)
		b = append(b, `","value":"`...)
		b = append(b, val...)
		b = append(b, `"}`...)
	}
	return append(b, "]}"...)
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

// runLoad puts c.conns concurrent request loops on one target for
// warmup+duration and measures the second part.
func runLoad(ctx context.Context, c *benchConfig, target, base, op string) (*benchResult, error) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        c.conns,
		MaxIdleConnsPerHost: c.conns,
		MaxConnsPerHost:     c.conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base = strings.TrimRight(base, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	var body []byte
	switch op {
	case "put":
		// A JSON string of exactly valueSize bytes, quotes included.
		body = make([]byte, c.valueSize)
		body[0], body[len(body)-1] = '"', '"'
		for i := 1; i < len(body)-1; i++ {
			body[i] = 'a' + byte(i%26)
		}
	case "incr":
		body = []byte(`{"by":1}`)
	}
	perReq := 1
	if op == "batch" {
		perReq = c.batch
	}

	var (
		measuring atomic.Bool
		stopped   atomic.Bool
		done      atomic.Int64
		errs      atomic.Int64
		firstErr  atomic.Value
		mu        sync.Mutex
		all       []time.Duration
		wg        sync.WaitGroup
	)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < c.conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			lat := make([]time.Duration, 0, 4096)
			for !stopped.Load() {
				var path, method string
				k := strconv.Itoa(rng.IntN(c.keys))
				reqBody := body
				switch op {
				case "put":
					method, path = http.MethodPut, "/v1/kv/bench-"+k
				case "incr":
					method, path = http.MethodPost, "/v1/kv/bench-counter-"+k+"/incr"
				case "batch":
					method, path = http.MethodPost, "/v1/batch"
					reqBody = batchBody(rng, c.batch, c.keys, c.valueSize)
				}
				req, err := http.NewRequestWithContext(lctx, method, base+path, bytes.NewReader(reqBody))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
					}
				}
				d := time.Since(t0)
				if stopped.Load() {
					break
				}
				if err != nil {
					if lctx.Err() != nil {
						break
					}
					firstErr.CompareAndSwap(nil, err.Error())
					if measuring.Load() {
						errs.Add(1)
					}
					continue
				}
				if measuring.Load() {
					lat = append(lat, d)
					done.Add(int64(perReq))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(w)
	}

	label := fmt.Sprintf("%s %s", target, op)
	progress := func(phase string, n int64, since time.Time) {
		el := time.Since(since).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(n) / el
		}
		fmt.Fprintf(c.progress, "\r%-12s %-8s %6.1fs %10.0f ops/s %10d ops %6d errors   ", label, phase, el, rate, n, errs.Load())
	}
	wait := func(d time.Duration, phase string, since time.Time) error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		end := time.NewTimer(d)
		defer end.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-end.C:
				return nil
			case <-t.C:
				progress(phase, done.Load(), since)
			}
		}
	}
	err := wait(c.warmup, "warmup", time.Now())
	start := time.Now()
	measuring.Store(true)
	if err == nil {
		err = wait(c.duration, "measure", start)
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	n := done.Load()
	stopped.Store(true)
	cancel()
	wg.Wait()
	progress("done", n, start)
	fmt.Fprintln(c.progress)
	if err != nil {
		return nil, err
	}
	r := &benchResult{
		Target: target, Op: op, Conns: c.conns, Ops: n, Errors: errs.Load(),
		Seconds: elapsed.Seconds(), OpsPerSec: float64(n) / elapsed.Seconds(),
		Latency: summarize(all),
	}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = v
	}
	if n == 0 {
		return r, fmt.Errorf("bench %s: no request succeeded against %s (first error: %s)", label, base, r.FirstErr)
	}
	return r, nil
}

func printBenchReport(w io.Writer, c *benchConfig, results []*benchResult) error {
	ratios := map[string]float64{}
	noop := map[string]float64{}
	for _, r := range results {
		if r.Target == "noop" {
			noop[r.Op] = r.OpsPerSec
		}
	}
	for _, r := range results {
		if r.Target == "shoal" && noop[r.Op] > 0 {
			ratios[r.Op] = r.OpsPerSec / noop[r.Op]
		}
	}
	if c.output == "json" {
		return json.NewEncoder(w).Encode(map[string]any{
			"conns": c.conns, "value_size": c.valueSize, "keys": c.keys,
			"results": results, "ratio_to_noop": ratios,
		})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\top\tconns\tops/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	for _, r := range results {
		l := r.Latency
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n",
			r.Target, r.Op, r.Conns, r.OpsPerSec, l.P50, l.P90, l.P99, l.P999, l.Max, r.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, op := range c.ops {
		if v, ok := ratios[op]; ok {
			fmt.Fprintf(w, "shoal/noop %s: %.2f\n", op, v)
		}
	}
	for _, r := range results {
		if r.FirstErr != "" && r.Errors > 0 {
			fmt.Fprintf(w, "first error (%s %s): %s\n", r.Target, r.Op, r.FirstErr)
		}
	}
	return nil
}

// runNoopServer serves the no-op reference: it drains the body and answers
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
