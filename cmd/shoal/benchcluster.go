package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/client"
)

const benchClusterUsage = `Usage: shoal bench cluster --nodes N --rate R [flags]

Starts N agent processes (this binary's "agent") on random 127/8 loopback
addresses with temporary data directories (--sync always), joins them, and
writes R new keys per second to them (open loop: write i is due at i/R s,
over up to --conns connections), to the first --writers-on nodes in turn.
A receiver per node reads that node's watch stream (GET /v1/watch) and
timestamps each key's arrival. A write's convergence latency runs from the
acknowledgement of its PUT to its arrival on the last node.

The report gives, for the --duration window after --warmup:
  sustained rate         writes/s acknowledged in the window, beside the
                         offered rate
  due→ack                of the writes due in the window: due time to
                         acknowledgement, queueing included
  ack→visible-on-all     of the writes acknowledged in the window: p50,
                         p99, max (0 when a write showed everywhere before
                         its acknowledgement reached the bench)
  ack→nodeK              the same on each node; (w) marks the nodes that
                         took writes, whose figure is the watch stream's
                         own delay
  wire bytes/op          shoal_gossip_sent_bytes_total summed over the
                         nodes (replication streams; memberlist's own
                         probes are not counted), per acknowledged write
  CPU/op                 the agents' CPU time (process_cpu_seconds_total),
                         per acknowledged write; it includes serving the
                         bench's watch streams
Both per-op figures cover the whole run, warmup included. The bench runs on
the same machine and shares its cores with the agents: the report gives its
own CPU use too. When the cluster cannot keep up with the offered rate the
writer falls behind (writes due are never sent), and the latency goals are
reported as not met.

Every child is stopped on exit, on Ctrl-C too.
`

// clusterBenchConfig is the load of one bench cluster run.
type clusterBenchConfig struct {
	nodes                   int
	rate                    float64
	duration, warmup, drain time.Duration
	writersOn               int
	conns                   int
	valueSize               int
	output, svgDir          string
	dir                     string
	agentArgs               string
	exe                     string // the shoal binary (os.Executable by default)
	progress                io.Writer
}

func (m *Main) runBenchCluster(ctx context.Context, args []string) error {
	c := clusterBenchConfig{progress: m.Stderr}
	fs := newFlagSet("bench cluster", m.Stderr, benchClusterUsage+"\n")
	fs.IntVar(&c.nodes, "nodes", 3, "agent processes")
	fs.Float64Var(&c.rate, "rate", 1000, "writes per second offered (open loop)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "writes before the window, not measured")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "how long to wait after the last write for every write to show on every node")
	fs.IntVar(&c.writersOn, "writers-on", 1, "nodes that take the writes, in turn (1 = the first one only)")
	fs.IntVar(&c.conns, "conns", 64, "concurrent connections of the writer at most")
	fs.IntVar(&c.valueSize, "value-size", 256, "bytes per value (a JSON string)")
	jsonPath := reportFlags(fs, &c.output)
	fs.StringVar(&c.svgDir, "svg", "", "write cluster-cdf-N.svg (the convergence latency CDF) into this directory")
	fs.StringVar(&c.dir, "dir", "", "where the temporary data directories go (default: the system's temporary directory)")
	fs.StringVar(&c.agentArgs, "agent-args", "", "extra flags for every agent, space separated (e.g. \"--sync interval\")")
	fs.StringVar(&c.exe, "agent-bin", "", "the shoal binary the agents run (default: this one)")
	pos, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("bench cluster takes no arguments, got %q", pos)
	}
	if c.nodes < 1 || c.nodes > 64 {
		return usageError("--nodes: want 1 to 64, got %d", c.nodes)
	}
	if c.rate <= 0 || c.duration <= 0 || c.warmup < 0 || c.drain <= 0 || c.conns < 1 || c.valueSize < 2 {
		return usageError("--rate, --duration, --drain and --conns must be positive, --value-size at least 2")
	}
	if c.writersOn < 1 || c.writersOn > c.nodes {
		return usageError("--writers-on: want 1 to --nodes (%d), got %d", c.nodes, c.writersOn)
	}
	if c.output != "human" && c.output != "json" {
		return usageError("-o: want human or json, got %q", c.output)
	}
	if c.exe == "" {
		if c.exe, err = os.Executable(); err != nil {
			return err
		}
	}
	rep, err := runClusterBench(ctx, &c)
	if err != nil {
		return err
	}
	if c.svgDir != "" {
		path := filepath.Join(c.svgDir, fmt.Sprintf("cluster-cdf-%d.svg", c.nodes))
		title := fmt.Sprintf("Convergence of %d agents at %s writes/s offered", c.nodes, fmtCount(c.rate))
		if err := writeCDFPlot(path, title, []cdfSeries{{label: rep.label(), lat: rep.latencies}}, rep.cdfGoals()); err != nil {
			return err
		}
	}
	if err := saveJSON(*jsonPath, rep); err != nil {
		return err
	}
	if c.output == "json" {
		return writeJSON(m.Stdout, rep)
	}
	return printClusterReport(m.Stdout, rep)
}

// clusterReport is the result of bench cluster.
type clusterReport struct {
	Nodes     int `json:"nodes"`
	WritersOn int `json:"writers_on"`
	Conns     int `json:"conns"`
	ValueSize int `json:"value_size"`
	// OfferedRate and AchievedRate are writes/s in the window: due, and
	// acknowledged.
	OfferedRate  float64 `json:"offered_per_sec"`
	AchievedRate float64 `json:"sustained_per_sec"`
	Seconds      float64 `json:"seconds"`
	Scheduled    int64   `json:"scheduled"` // writes due in the window
	Acked        int64   `json:"acked"`     // of those, acknowledged
	Errors       int64   `json:"errors"`    // of those, failed
	Unsent       int64   `json:"unsent"`    // of those, never sent: the writer fell behind
	KeptUp       bool    `json:"kept_up"`
	// AckedInWindow counts the writes whose acknowledgement arrived in the
	// window (whenever due): Visible's population, SeenOnAll of them showed
	// on every node, NotSeen did not within --drain.
	AckedInWindow int64 `json:"acked_in_window"`
	SeenOnAll     int64 `json:"seen_on_all"`
	NotSeen       int64 `json:"not_seen"`
	// VisibleBeforeAck counts writes that showed on every node before
	// their acknowledgement reached the bench (latency 0).
	VisibleBeforeAck int64         `json:"visible_before_ack"`
	Ack              latencyReport `json:"ack_ms"`            // due time to acknowledgement, of the writes due in the window
	Visible          latencyReport `json:"visible_on_all_ms"` // acknowledgement to visible on every node, of the writes acknowledged in the window
	// PerNode is acknowledgement to visible on each node (a writer's own
	// shows the watch stream's delay alone).
	PerNode []nodeVisibility `json:"per_node"`
	// The whole run (warmup included): writes acknowledged, and of those
	// seen on every node; the costs are per acknowledged write.
	RunAcked       int64           `json:"run_acked"`
	RunSeenOnAll   int64           `json:"run_seen_on_all"`
	WireBytesPerOp float64         `json:"wire_bytes_per_op"`
	CPUMicrosPerOp float64         `json:"cpu_us_per_op"`
	AgentCores     float64         `json:"agent_cores"` // the agents' CPU seconds per second of the run
	BenchCores     float64         `json:"bench_cores"` // the bench process's (writer and watchers); 0 where unknown
	Goals          []goalCheck     `json:"goals"`
	latencies      []time.Duration // ack to visible, sorted, for the CDF
}

// nodeVisibility is the ack-to-visible latency on one node.
type nodeVisibility struct {
	Node    string        `json:"node"`
	Writer  bool          `json:"writer"` // the node took writes
	Visible latencyReport `json:"visible_ms"`
}

func (r *clusterReport) label() string {
	return fmt.Sprintf("%d agents, %s writes/s offered", r.Nodes, fmtCount(r.OfferedRate))
}

// cdfGoals are the latency goals of the run, for its CDF plot.
func (r *clusterReport) cdfGoals() []cdfGoal {
	var out []cdfGoal
	for _, g := range r.Goals {
		if g.Unit == "ms" {
			out = append(out, cdfGoal{label: fmt.Sprintf("p99 goal at %s/s", fmtCount(r.OfferedRate)), ms: g.Target})
		}
	}
	return out
}

// benchAgent is one agent process of the cluster bench.
type benchAgent struct {
	name, url, gossip string
	logPath           string
	log               *os.File
	stop              func()
}

// tail returns the end of the agent's log, for an error message.
func (a *benchAgent) tail() string {
	b, _ := os.ReadFile(a.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// childEnv is this process's environment without the SHOAL_* variables,
// so that the agents run with the bench's flags only.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// startBenchCluster starts c.nodes agents under root, each joining the
// first, and waits until every one serves and sees every other alive with
// its data stream up. The agents are in the returned slice even on error;
// stopBenchCluster stops them.
func startBenchCluster(ctx context.Context, c *clusterBenchConfig, root string) ([]*benchAgent, error) {
	env := childEnv()
	var agents []*benchAgent
	start := func(i int, join string) error {
		name := fmt.Sprintf("node%d", i+1)
		httpAddr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		gossipAddr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		a := &benchAgent{name: name, url: "http://" + httpAddr, gossip: gossipAddr, logPath: filepath.Join(root, name+".log")}
		if a.log, err = os.Create(a.logPath); err != nil {
			return err
		}
		args := []string{"agent", "--name", name, "--data-dir", filepath.Join(root, name), "--http", httpAddr,
			"--gossip", gossipAddr, "--log-level", "warn"}
		if join != "" {
			args = append(args, "--join", join)
		}
		args = append(args, strings.Fields(c.agentArgs)...)
		if a.stop, err = startChild(a.log, env, c.exe, args...); err != nil {
			a.log.Close()
			return err
		}
		agents = append(agents, a)
		return nil
	}
	if err := start(0, ""); err != nil {
		return agents, err
	}
	if err := waitHealthy(ctx, agents[0].url, "", 30*time.Second); err != nil {
		return agents, fmt.Errorf("%s: %w\n%s", agents[0].name, err, agents[0].tail())
	}
	for i := 1; i < c.nodes; i++ {
		if err := start(i, agents[0].gossip); err != nil {
			return agents, err
		}
	}
	for _, a := range agents {
		if err := waitHealthy(ctx, a.url, "", 30*time.Second); err != nil {
			return agents, fmt.Errorf("%s: %w\n%s", a.name, err, a.tail())
		}
	}
	// Wait until the membership is complete and every data stream up, so
	// that the first writes do not measure the joining.
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range agents {
		cl, err := client.New(a.url, &client.Options{Timeout: 5 * time.Second})
		if err != nil {
			return agents, err
		}
		for {
			ms, err := cl.Members()
			ready := 0
			for _, m := range ms {
				if m.State == "alive" && (m.Self || m.Connected) {
					ready++
				}
			}
			if err == nil && ready == c.nodes {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				return agents, fmt.Errorf("%s: %d of %d members alive and connected after 30s (%v)\n%s", a.name, ready, c.nodes, err, a.tail())
			}
			select {
			case <-ctx.Done():
				cl.Close()
				return agents, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		cl.Close()
	}
	return agents, nil
}

// stopBenchCluster stops the agents one after the other, the last started
// first (each leaves while the others are up, which they acknowledge at
// once).
func stopBenchCluster(agents []*benchAgent) {
	for i := len(agents) - 1; i >= 0; i-- {
		agents[i].stop()
		agents[i].log.Close()
	}
}

// Arrival bookkeeping of one write: how many nodes showed it, and whether
// its acknowledgement arrived, in one word so that exactly one of the two
// sides sees the write complete.
const ackedFlag = 1 << 24

// runClusterBench runs one bench cluster and stops every agent it started.
func runClusterBench(ctx context.Context, c *clusterBenchConfig) (rep *clusterReport, err error) {
	root, err := os.MkdirTemp(c.dir, "shoal-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(root)) }()
	fmt.Fprintf(c.progress, "bench cluster: starting %d agents\n", c.nodes)
	agents, err := startBenchCluster(ctx, c, root)
	defer stopBenchCluster(agents)
	if err != nil {
		return nil, err
	}

	total := int((c.warmup+c.duration).Seconds()*c.rate) + 2
	prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	var (
		base      = time.Now()
		since     = func() int64 { return int64(time.Since(base)) + 1 } // 0 = not yet
		ackAt     = make([]int64, total)
		state     = make([]atomic.Int32, total)
		seen      = make([][]int64, c.nodes) // seen[node][write], each row its receiver's
		acked     atomic.Int64               // acknowledged writes, whole run
		complete  atomic.Int64               // acknowledged writes seen on every node
		completed = make(chan struct{}, 1)
		nodes     = int32(c.nodes)
	)
	signal := func() {
		select {
		case completed <- struct{}{}:
		default:
		}
	}

	// One receiver per node, subscribed before the first write.
	rctx, stopReceivers := context.WithCancel(ctx)
	defer stopReceivers()
	var receivers sync.WaitGroup
	var subErr atomic.Value
	for n, a := range agents {
		seen[n] = make([]int64, total)
		cl, err := client.New(a.url, nil)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		sub, err := cl.Subscribe(rctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("%s: watch: %w", a.name, err)
		}
		row := seen[n]
		receivers.Go(func() {
			defer sub.Close()
			for {
				ev, err := sub.Next(rctx)
				if err != nil {
					if rctx.Err() == nil {
						subErr.CompareAndSwap(nil, fmt.Sprintf("%s: watch: %v", a.name, err))
					}
					return
				}
				at := since()
				if ev.Kind != node.EventChange && ev.Kind != node.EventState {
					continue
				}
				rest, ok := strings.CutPrefix(ev.Key, prefix)
				i, err := strconv.Atoi(rest)
				if !ok || err != nil || i < 0 || i >= total || row[i] != 0 {
					continue
				}
				row[i] = at
				if v := state[i].Add(1); v == ackedFlag|nodes {
					complete.Add(1)
					signal()
				}
			}
		})
	}

	before, err := scrapeCluster(ctx, agents)
	if err != nil {
		return nil, err
	}
	runStart := time.Now()
	benchCPUBefore := processCPUSeconds()

	tr := &http.Transport{MaxIdleConnsPerHost: c.conns, MaxConnsPerHost: c.conns, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	value := make([]byte, c.valueSize)
	value[0], value[len(value)-1] = '"', '"'
	for i := 1; i < len(value)-1; i++ {
		value[i] = 'a' + byte(i%26)
	}
	put := func(ctx context.Context, _ int, i int64) error {
		if i >= int64(total) {
			return fmt.Errorf("write %d beyond the plan of %d", i, total)
		}
		a := agents[int(i)%c.writersOn]
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.url+"/v1/kv/"+prefix+strconv.FormatInt(i, 10), bytes.NewReader(value))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("PUT on %s: status %d", a.name, resp.StatusCode)
		}
		if err != nil {
			return err
		}
		ackAt[i] = since()
		acked.Add(1)
		if v := state[i].Or(ackedFlag); v == nodes { // the old value: seen everywhere already
			complete.Add(1)
			signal()
		}
		return nil
	}
	st, err := runOpenLoop(ctx, openLoopPlan{rate: c.rate, conns: c.conns, warmup: c.warmup, duration: c.duration,
		label: fmt.Sprintf("cluster %d nodes", c.nodes), progress: c.progress}, put)
	if err != nil {
		return nil, err
	}

	// Wait for every acknowledged write to show on every node.
	drainEnd := time.NewTimer(c.drain)
	defer drainEnd.Stop()
drain:
	for complete.Load() < acked.Load() {
		select {
		case <-completed:
		case <-drainEnd.C:
			break drain
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	runSeconds := time.Since(runStart).Seconds()
	benchCPU := processCPUSeconds() - benchCPUBefore
	after, err := scrapeCluster(ctx, agents)
	if err != nil {
		return nil, err
	}
	stopReceivers()
	receivers.Wait()
	if v, ok := subErr.Load().(string); ok {
		return nil, errors.New(v)
	}

	rep = &clusterReport{Nodes: c.nodes, WritersOn: c.writersOn, Conns: c.conns, ValueSize: c.valueSize,
		OfferedRate: st.Offered(), AchievedRate: st.Achieved(), Seconds: st.Window.Seconds(),
		Scheduled: st.Scheduled, Acked: st.OK, Errors: st.Errors, Unsent: st.Unsent(), KeptUp: st.KeptUp(),
		Ack: summarize(st.Latencies), RunAcked: acked.Load(), RunSeenOnAll: complete.Load()}
	from, to := int64(st.WindowStart.Sub(base))+1, int64(st.WindowEnd.Sub(base))+1
	var lat []time.Duration
	perNode := make([][]time.Duration, c.nodes)
	for i := range ackAt {
		if ackAt[i] < from || ackAt[i] >= to { // not acknowledged in the window
			continue
		}
		rep.AckedInWindow++
		var last int64
		for n := range seen {
			if seen[n][i] != 0 {
				perNode[n] = append(perNode[n], time.Duration(max(0, seen[n][i]-ackAt[i])))
			}
		}
		for n := range seen {
			if seen[n][i] == 0 {
				last = 0
				break
			}
			last = max(last, seen[n][i])
		}
		if last == 0 {
			rep.NotSeen++
			continue
		}
		rep.SeenOnAll++
		d := time.Duration(last - ackAt[i])
		if d < 0 {
			rep.VisibleBeforeAck++
			d = 0
		}
		lat = append(lat, d)
	}
	rep.Visible = summarize(lat) // sorts lat
	rep.latencies = lat
	for n, l := range perNode {
		rep.PerNode = append(rep.PerNode, nodeVisibility{Node: agents[n].name, Writer: n < c.writersOn, Visible: summarize(l)})
	}
	if n := float64(rep.RunAcked); n > 0 {
		rep.WireBytesPerOp = (after.sentBytes - before.sentBytes) / n
		rep.CPUMicrosPerOp = (after.cpuSeconds - before.cpuSeconds) / n * 1e6
	}
	rep.AgentCores = (after.cpuSeconds - before.cpuSeconds) / runSeconds
	rep.BenchCores = benchCPU / runSeconds
	rep.Goals = clusterGoals(rep)
	return rep, nil
}

// clusterCounters are the sums over the agents of the metrics the cluster
// bench reads.
type clusterCounters struct {
	sentBytes, cpuSeconds float64
}

func scrapeCluster(ctx context.Context, agents []*benchAgent) (clusterCounters, error) {
	var sum clusterCounters
	for _, a := range agents {
		m, err := scrapeMetrics(ctx, a.url, "shoal_gossip_sent_bytes_total", "process_cpu_seconds_total")
		if err != nil {
			return sum, fmt.Errorf("%s: %w", a.name, err)
		}
		sum.sentBytes += m["shoal_gossip_sent_bytes_total"]
		sum.cpuSeconds += m["process_cpu_seconds_total"]
	}
	return sum, nil
}

// scrapeMetrics reads base's /metrics and sums, for each name, the
// samples of that metric over all label values. A name with no sample is
// an error.
func scrapeMetrics(ctx context.Context, base string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || !slices.Contains(names, line[:end]) {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %v", line, err)
		}
		out[line[:end]] += v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("GET /metrics: no %s", n)
		}
	}
	return out, nil
}

func printClusterReport(w io.Writer, r *clusterReport) error {
	fmt.Fprintf(w, "cluster: %d agents, writes to %d of them over up to %d connections, %d B values, %.1fs measured\n",
		r.Nodes, r.WritersOn, r.Conns, r.ValueSize, r.Seconds)
	fmt.Fprintf(w, "  sustained        %s writes/s acknowledged of %s offered (%d errors, %d never sent)\n",
		fmtCount(r.AchievedRate), fmtCount(r.OfferedRate), r.Errors, r.Unsent)
	if !r.KeptUp {
		fmt.Fprintf(w, "  the cluster did not keep up with the offered rate: the latencies below are a lower bound\n")
	}
	fmt.Fprintf(w, "  %-16s %10s %10s %10s %10s %10s\n", "ms", "p50", "p90", "p99", "p99.9", "max")
	for _, l := range []struct {
		name string
		r    latencyReport
	}{{"due→ack", r.Ack}, {"ack→visible-all", r.Visible}} {
		fmt.Fprintf(w, "  %-16s %10.2f %10.2f %10.2f %10.2f %10.2f\n", l.name, l.r.P50, l.r.P90, l.r.P99, l.r.P999, l.r.Max)
	}
	for _, n := range r.PerNode {
		name := "ack→" + n.Node
		if n.Writer {
			name += " (w)"
		}
		fmt.Fprintf(w, "  %-16s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, n.Visible.P50, n.Visible.P90, n.Visible.P99, n.Visible.P999, n.Visible.Max)
	}
	fmt.Fprintf(w, "  seen on all      %d of %d writes acknowledged in the window", r.SeenOnAll, r.AckedInWindow)
	if r.NotSeen > 0 {
		fmt.Fprintf(w, " (%d never showed on some node)", r.NotSeen)
	}
	if r.VisibleBeforeAck > 0 {
		fmt.Fprintf(w, "; %d showed everywhere before their ack arrived", r.VisibleBeforeAck)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  per write        %s wire bytes (all nodes), %s µs CPU (all agents)\n", fmtCount(r.WireBytesPerOp), fmtCount(r.CPUMicrosPerOp))
	fmt.Fprintf(w, "  cores busy       %.2f agents, %.2f this bench (writer and watchers)\n", r.AgentCores, r.BenchCores)
	return printGoals(w, r.Goals)
}
