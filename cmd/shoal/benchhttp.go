package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const benchHTTPUsage = `Usage: shoal bench http [flags]

Drives a node's HTTP API with --conns concurrent connections, one workload
after another (--ops: put = durable PUT of a --value-size value to one of
--keys keys, incr = POST .../incr on one of --keys counters, batch = POST
/v1/batch of --batch such puts, counted as --batch ops), and reports ops/s
and latency percentiles (per request), with a progress line on stderr.

Closed loop (the default): each connection sends its next request when the
previous one is answered, so the load slows down with the target and the
latencies leave out the time requests would have waited: a throughput
measure. Open loop (--rate R): requests are due at fixed intervals, R per
second in all, each sent by the next free connection; latency runs from the
time a request was due to its answer, so queueing shows. The report gives the
achieved rate beside the offered one, and says when the target could not
keep up (then requests still due at the end were never sent, and the
latencies are a lower bound).

Without --addr it starts a throwaway agent (this binary, a temporary data
directory, loopback, default sync policy) and measures that. With --noop it
also starts a no-op net/http server (bench noop-server: drains the body and
answers a small constant JSON) in a separate process and puts the same load
on it right before each workload: that is the HTTP ceiling on this machine,
measured in the same run, and the report gives shoal's ratio to it.
`

// benchConfig is the load of one bench http run.
type benchConfig struct {
	addr, token      string
	noopAddr         string
	noop             bool
	conns            int
	rate             float64 // requests/s of the open loop; 0 = closed loop
	duration, warmup time.Duration
	ops              []string
	batch            int
	valueSize        int
	keys             int
	output           string
	agentArgs        string
	progress         io.Writer
}

func (m *Main) runBenchHTTP(ctx context.Context, args []string) error {
	c := benchConfig{progress: m.Stderr}
	fs := newFlagSet("bench http", m.Stderr, benchHTTPUsage+"\n")
	fs.StringVar(&c.addr, "addr", "", "URL of the node to load (empty = start a throwaway agent)")
	fs.StringVar(&c.token, "token", "", "bearer token of the node")
	fs.BoolVar(&c.noop, "noop", true, "also measure a no-op net/http reference server (separate process) under the same load")
	fs.StringVar(&c.noopAddr, "noop-addr", "", "URL of a running reference server to use instead of starting one")
	fs.IntVar(&c.conns, "conns", 256, "concurrent connections (one request in flight on each)")
	fs.Float64Var(&c.rate, "rate", 0, "open loop: requests per second in all, due at fixed intervals (0 = closed loop)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per workload and target")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured time before each measurement")
	ops := fs.String("ops", "put,incr", "workloads in order, comma list of put, incr and batch")
	fs.IntVar(&c.batch, "batch", 16, "puts per request of the batch workload (POST /v1/batch); ops/s counts puts")
	fs.IntVar(&c.valueSize, "value-size", 256, "size of the PUT body in bytes (a JSON string)")
	fs.IntVar(&c.keys, "keys", 10000, "number of distinct keys (and counters) written")
	jsonPath := reportFlags(fs, &c.output)
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
	if c.conns < 1 || c.keys < 1 || c.valueSize < 2 || c.duration <= 0 || c.batch < 1 || c.rate < 0 {
		return usageError("--conns, --keys, --duration must be positive, --rate not negative and --value-size at least 2")
	}
	if c.output != "human" && c.output != "json" {
		return usageError("-o: want human or json, got %q", c.output)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	results, err := runHTTPBench(ctx, m.Stderr, exe, &c)
	if err != nil {
		return err
	}
	if err := saveJSON(*jsonPath, newHTTPReport(&c, results)); err != nil {
		return err
	}
	return printBenchReport(m.Stdout, &c, results)
}

// runHTTPBench starts what c asks for (a throwaway agent, the no-op
// server; exe is the shoal binary), runs the workloads and stops them.
func runHTTPBench(ctx context.Context, stderr io.Writer, exe string, c *benchConfig) ([]*benchResult, error) {
	addr, noopAddr := c.addr, c.noopAddr
	if addr == "" {
		dir, err := os.MkdirTemp("", "shoal-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		httpAddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		gaddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		agentArgs := []string{"agent", "--name", "bench", "--data-dir", dir, "--http", httpAddr, "--gossip", gaddr, "--log-level", "warn"}
		agentArgs = append(agentArgs, strings.Fields(c.agentArgs)...)
		stop, err := startChild(stderr, nil, exe, agentArgs...)
		if err != nil {
			return nil, err
		}
		defer stop()
		addr = "http://" + httpAddr
		fmt.Fprintf(stderr, "bench: started a throwaway agent at %s (data in %s)\n", addr, dir)
	}
	if c.noop && noopAddr == "" {
		httpAddr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		stop, err := startChild(stderr, nil, exe, "bench", "noop-server", "--http", httpAddr)
		if err != nil {
			return nil, err
		}
		defer stop()
		noopAddr = "http://" + httpAddr
	}
	for _, u := range []string{addr, noopAddr} {
		if u == "" {
			continue
		}
		if err := waitHealthy(ctx, u, c.token, 30*time.Second); err != nil {
			return nil, err
		}
	}

	var results []*benchResult
	for _, op := range c.ops {
		if noopAddr != "" {
			r, err := runLoad(ctx, c, "noop", noopAddr, op)
			if err != nil {
				return nil, err
			}
			results = append(results, r)
		}
		r, err := runLoad(ctx, c, "shoal", addr, op)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// benchResult is the measurement of one workload against one target.
type benchResult struct {
	Target    string        `json:"target"`
	Op        string        `json:"op"`
	Mode      string        `json:"mode"` // closed or open (loop)
	Conns     int           `json:"conns"`
	Ops       int64         `json:"ops"`
	Errors    int64         `json:"errors"`
	Seconds   float64       `json:"seconds"`
	OpsPerSec float64       `json:"ops_per_sec"`
	Latency   latencyReport `json:"latency_ms"`
	FirstErr  string        `json:"first_error,omitempty"`

	// Open loop only: the offered rate in ops/s, the requests due in the
	// window but never sent, and whether the target kept up (see
	// openLoopStats.KeptUp). Latencies run from each request's due time.
	OfferedPerSec float64 `json:"offered_per_sec,omitempty"`
	Unsent        int64   `json:"unsent,omitempty"`
	KeptUp        *bool   `json:"kept_up,omitempty"`
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

// httpLoad is one workload on one target: its client and requests.
type httpLoad struct {
	c      *benchConfig
	tr     *http.Transport
	hc     *http.Client
	base   string
	op     string
	body   []byte // of put and incr
	perReq int    // ops per request
}

func newHTTPLoad(c *benchConfig, base, op string) *httpLoad {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        c.conns,
		MaxIdleConnsPerHost: c.conns,
		MaxConnsPerHost:     c.conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	base = strings.TrimRight(base, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	l := &httpLoad{c: c, tr: tr, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: base, op: op, perReq: 1}
	switch op {
	case "put":
		// A JSON string of exactly valueSize bytes, quotes included.
		l.body = make([]byte, c.valueSize)
		l.body[0], l.body[len(l.body)-1] = '"', '"'
		for i := 1; i < len(l.body)-1; i++ {
			l.body[i] = 'a' + byte(i%26)
		}
	case "incr":
		l.body = []byte(`{"by":1}`)
	case "batch":
		l.perReq = c.batch
	}
	return l
}

func (l *httpLoad) close() { l.tr.CloseIdleConnections() }

// do sends one request of the workload and reads the answer; an answer
// other than 200 is an error.
func (l *httpLoad) do(ctx context.Context, rng *rand.Rand) error {
	var path, method string
	k := strconv.Itoa(rng.IntN(l.c.keys))
	reqBody := l.body
	switch l.op {
	case "put":
		method, path = http.MethodPut, "/v1/kv/bench-"+k
	case "incr":
		method, path = http.MethodPost, "/v1/kv/bench-counter-"+k+"/incr"
	case "batch":
		method, path = http.MethodPost, "/v1/batch"
		reqBody = batchBody(rng, l.c.batch, l.c.keys, l.c.valueSize)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, bytes.NewReader(reqBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if l.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.c.token)
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return err
}

// runLoad puts the workload op on one target for warmup+duration and
// measures the second part: in a closed loop, or in an open loop when
// c.rate is set.
func runLoad(ctx context.Context, c *benchConfig, target, base, op string) (*benchResult, error) {
	if c.rate > 0 {
		return runOpenLoad(ctx, c, target, base, op)
	}
	l := newHTTPLoad(c, base, op)
	defer l.close()
	perReq := l.perReq

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
				t0 := time.Now()
				err := l.do(lctx, rng)
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
		Target: target, Op: op, Mode: "closed", Conns: c.conns, Ops: n, Errors: errs.Load(),
		Seconds: elapsed.Seconds(), OpsPerSec: float64(n) / elapsed.Seconds(),
		Latency: summarize(all),
	}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = v
	}
	if n == 0 {
		return r, fmt.Errorf("bench %s: no request succeeded against %s (first error: %s)", label, l.base, r.FirstErr)
	}
	return r, nil
}

// runOpenLoad is runLoad's open loop: c.rate requests per second, due at
// fixed intervals, over up to c.conns connections.
func runOpenLoad(ctx context.Context, c *benchConfig, target, base, op string) (*benchResult, error) {
	l := newHTTPLoad(c, base, op)
	defer l.close()
	rngs := make([]*rand.Rand, c.conns)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	}
	label := fmt.Sprintf("%s %s", target, op)
	st, err := runOpenLoop(ctx, openLoopPlan{rate: c.rate, conns: c.conns, warmup: c.warmup, duration: c.duration,
		label: label, progress: c.progress},
		func(ctx context.Context, sender int, _ int64) error { return l.do(ctx, rngs[sender]) })
	if err != nil {
		return nil, err
	}
	keptUp := st.KeptUp()
	r := &benchResult{
		Target: target, Op: op, Mode: "open", Conns: c.conns, Ops: st.OK * int64(l.perReq), Errors: st.Errors,
		Seconds: st.Window.Seconds(), OpsPerSec: st.Achieved() * float64(l.perReq), Latency: summarize(st.Latencies),
		FirstErr: st.FirstErr, OfferedPerSec: st.Offered() * float64(l.perReq), Unsent: st.Unsent(), KeptUp: &keptUp,
	}
	if st.OK == 0 {
		return r, fmt.Errorf("bench %s: no request succeeded against %s (first error: %s)", label, l.base, r.FirstErr)
	}
	return r, nil
}

// httpRatios are shoal's ops/s over the no-op server's, by workload.
func httpRatios(results []*benchResult) map[string]float64 {
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
	return ratios
}

// httpReport is the JSON report of bench http.
type httpReport struct {
	Mode        string             `json:"mode"`
	Rate        float64            `json:"rate,omitempty"`
	Conns       int                `json:"conns"`
	ValueSize   int                `json:"value_size"`
	Keys        int                `json:"keys"`
	Results     []*benchResult     `json:"results"`
	RatioToNoop map[string]float64 `json:"ratio_to_noop"`
	Goals       []goalCheck        `json:"goals"`
}

func newHTTPReport(c *benchConfig, results []*benchResult) *httpReport {
	ratios := httpRatios(results)
	mode := "closed"
	if c.rate > 0 {
		mode = "open"
	}
	return &httpReport{Mode: mode, Rate: c.rate, Conns: c.conns, ValueSize: c.valueSize, Keys: c.keys,
		Results: results, RatioToNoop: ratios, Goals: httpGoals(c, ratios)}
}

func printBenchReport(w io.Writer, c *benchConfig, results []*benchResult) error {
	rep := newHTTPReport(c, results)
	if c.output == "json" {
		return writeJSON(w, rep)
	}
	return printHTTPReport(w, c, rep)
}

func printHTTPReport(w io.Writer, c *benchConfig, rep *httpReport) error {
	open := rep.Mode == "open"
	if open {
		fmt.Fprintf(w, "HTTP API, open loop: %s requests/s offered over up to %d connections; latency from each request's due time\n", fmtCount(c.rate), c.conns)
	} else {
		fmt.Fprintf(w, "HTTP API, closed loop: %d connections, each waiting for its answer\n", c.conns)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if open {
		fmt.Fprintln(tw, "target\top\tconns\toffered/s\tops/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tunsent\tkept up\t")
	} else {
		fmt.Fprintln(tw, "target\top\tconns\tops/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	}
	for _, r := range rep.Results {
		l := r.Latency
		if open {
			kept := "yes"
			if r.KeptUp != nil && !*r.KeptUp {
				kept = "NO"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t\n",
				r.Target, r.Op, r.Conns, r.OfferedPerSec, r.OpsPerSec, l.P50, l.P90, l.P99, l.P999, l.Max, r.Errors, r.Unsent, kept)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n",
			r.Target, r.Op, r.Conns, r.OpsPerSec, l.P50, l.P90, l.P99, l.P999, l.Max, r.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, op := range c.ops {
		if v, ok := rep.RatioToNoop[op]; ok {
			fmt.Fprintf(w, "shoal/noop %s: %.2f\n", op, v)
		}
	}
	for _, r := range rep.Results {
		if r.KeptUp != nil && !*r.KeptUp {
			fmt.Fprintf(w, "%s %s could not keep up with %.0f ops/s offered (achieved %.0f, %d requests never sent): its latencies are a lower bound\n",
				r.Target, r.Op, r.OfferedPerSec, r.OpsPerSec, r.Unsent)
		}
		if r.FirstErr != "" && r.Errors > 0 {
			fmt.Fprintf(w, "first error (%s %s): %s\n", r.Target, r.Op, r.FirstErr)
		}
	}
	return printGoals(w, rep.Goals)
}

// runNoopServer serves the no-op reference: it drains the body and answers
