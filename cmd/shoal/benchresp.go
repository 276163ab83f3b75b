package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const benchRESPUsage = `Usage: shoal bench resp [flags]

bench resp runs redis-benchmark (Debian's redis-tools) against shoal's RESP
endpoint and against a Redis server with the same durability, in the same
run, and prints both with shoal's ratio:

  redis-benchmark -c CLIENTS -n REQUESTS -t TEST -d VALUE-SIZE [-P N] [-r KEYSPACE] --csv

once per --pipelines value and test, Redis then shoal each time, and reads
each server's CPU time (INFO cpu, which shoal answers as Redis does) before
and after, for the CPU it spent per request, and shoal's INFO stats for
the plain writes per shared record (node/resp/combine.go). Without --shoal-addr
it starts a throwaway agent (this binary, --sync always, a temporary data
directory); without --redis-addr it starts redis-server with
--appendonly yes --appendfsync always (every write fsynced before its reply,
like shoal's --sync always) in a temporary directory. Both run on this
machine next to the load generator: the numbers compare the two servers
under the same conditions, not absolute capacity.
`

// respBenchRow is one redis-benchmark test against one target.
type respBenchRow struct {
	Target   string  `json:"target"`
	Test     string  `json:"test"`
	Pipeline int     `json:"pipeline"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// The server's CPU time (system and user) per request, from INFO cpu
	// around the run; 0 when the server did not report it.
	CPUMicrosPerOp float64 `json:"server_cpu_us_per_op,omitempty"`
	// Shoal's plain writes per shared record (node/resp/combine.go): the
	// rounds of writes over the shared batches of the run, from INFO
	// stats; 0 when the server keeps no such count (Redis) or wrote none.
	RoundsPerBatch float64 `json:"rounds_per_batch,omitempty"`
}

func (m *Main) runBenchRESP(ctx context.Context, args []string) error {
	fs := newFlagSet("bench resp", m.Stderr, benchRESPUsage+"\n")
	shoalAddr := fs.String("shoal-addr", "", "host:port of a running shoal RESP endpoint (empty = start a throwaway agent)")
	redisAddr := fs.String("redis-addr", "", "host:port of a running Redis to compare with (empty = start redis-server)")
	benchBin := fs.String("redis-benchmark", "redis-benchmark", "the redis-benchmark program")
	serverBin := fs.String("redis-server", "redis-server", "the redis-server program")
	clients := fs.Int("clients", 256, "redis-benchmark -c: parallel connections")
	requests := fs.Int("requests", 200000, "redis-benchmark -n: requests per test")
	tests := fs.String("tests", "set,get,incr", "redis-benchmark -t: tests")
	valueSize := fs.Int("value-size", 256, "redis-benchmark -d: value size in bytes")
	pipelines := fs.String("pipelines", "1,16", "redis-benchmark -P values, comma list (1 = no pipelining)")
	keyspace := fs.Int("keyspace", 0, "redis-benchmark -r: random keys out of this many (0 = one key per test, redis-benchmark's default)")
	agentArgs := fs.String("agent-args", "", "extra flags for the throwaway agent, space separated")
	output := fs.String("output", "human", "report format: human or json")
	fs.StringVar(output, "o", "human", "shorthand for --output")
	if _, err := parseArgs(fs, args, m.Getenv); err != nil {
		return err
	}
	var ps []int
	for _, s := range strings.Split(*pipelines, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 1 {
			return usageError("--pipelines: want positive integers, got %q", *pipelines)
		}
		ps = append(ps, p)
	}
	if *clients < 1 || *requests < 1 || *valueSize < 1 {
		return usageError("--clients, --requests and --value-size must be positive")
	}
	if *output != "human" && *output != "json" {
		return usageError("-o: want human or json, got %q", *output)
	}
	if _, err := exec.LookPath(*benchBin); err != nil {
		return fmt.Errorf("bench resp needs redis-benchmark (apt-get install redis-tools): %w", err)
	}
	tmp, err := os.MkdirTemp("", "shoal-bench-resp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if *redisAddr == "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		host, port, _ := net.SplitHostPort(addr)
		if err := os.Mkdir(tmp+"/redis", 0o755); err != nil {
			return err
		}
		stop, err := startChild(io.Discard, nil, *serverBin, "--bind", host, "--port", port, "--dir", tmp+"/redis",
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no")
		if err != nil {
			return fmt.Errorf("starting redis-server (apt-get install redis-server): %w", err)
		}
		defer stop()
		*redisAddr = addr
	}
	if *shoalAddr == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		addrs := make([]string, 3)
		for i := range addrs {
			if addrs[i], err = freeLoopbackAddr(); err != nil {
				return err
			}
		}
		aargs := []string{"agent", "--name", "bench", "--data-dir", tmp + "/shoal", "--http", addrs[0],
			"--gossip", addrs[1], "--resp", addrs[2], "--sync", "always", "--log-level", "warn"}
		aargs = append(aargs, strings.Fields(*agentArgs)...)
		stop, err := startChild(m.Stderr, nil, exe, aargs...)
		if err != nil {
			return err
		}
		defer stop()
		*shoalAddr = addrs[2]
	}
	for _, a := range []string{*redisAddr, *shoalAddr} {
		if err := waitRESP(ctx, a, 30*time.Second); err != nil {
			return err
		}
	}
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
	}
	fmt.Fprintf(m.Stderr, "bench resp: redis at %s, shoal at %s; %d CPUs, load average %s\n",
		*redisAddr, *shoalAddr, runtime.NumCPU(), load())

	var rows []respBenchRow
	for _, p := range ps {
		for _, test := range strings.Split(*tests, ",") {
			for _, target := range []struct{ name, addr string }{{"redis", *redisAddr}, {"shoal", *shoalAddr}} {
				host, port, _ := net.SplitHostPort(target.addr)
				bargs := []string{"-h", host, "-p", port, "-c", strconv.Itoa(*clients), "-n", strconv.Itoa(*requests),
					"-t", strings.TrimSpace(test), "-d", strconv.Itoa(*valueSize), "--csv"}
				if p > 1 {
					bargs = append(bargs, "-P", strconv.Itoa(p))
				}
				if *keyspace > 0 {
					bargs = append(bargs, "-r", strconv.Itoa(*keyspace))
				}
				fmt.Fprintf(m.Stderr, "bench resp: %s: redis-benchmark %s\n", target.name, strings.Join(bargs, " "))
				cpuBefore, cpuErr := infoCPU(target.addr)
				statsBefore, _ := infoFields(target.addr, "stats")
				cmd := exec.CommandContext(ctx, *benchBin, bargs...)
				cmd.Stderr = m.Stderr
				out, err := cmd.Output()
				if err != nil {
					return fmt.Errorf("redis-benchmark against %s: %w", target.name, err)
				}
				cpuAfter, err := infoCPU(target.addr)
				cpuErr = errors.Join(cpuErr, err)
				statsAfter, _ := infoFields(target.addr, "stats")
				got, err := parseBenchCSV(out)
				if err != nil {
					return fmt.Errorf("redis-benchmark against %s: %w\n%s", target.name, err, out)
				}
				for _, r := range got {
					r.Target, r.Pipeline = target.name, p
					if cpuErr == nil && len(got) == 1 {
						r.CPUMicrosPerOp = (cpuAfter - cpuBefore) / float64(*requests) * 1e6
					}
					if len(got) == 1 {
						r.RoundsPerBatch = perBatch(statsBefore, statsAfter)
					}
					rows = append(rows, r)
				}
				if cpuErr != nil {
					fmt.Fprintf(m.Stderr, "bench resp: %s: no CPU time: %v\n", target.name, cpuErr)
				}
			}
		}
	}
	fmt.Fprintf(m.Stderr, "bench resp: load average after: %s\n", load())
	if *output == "json" {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "test\tpipeline\tredis ops/s\tshoal ops/s\tshoal/redis\tredis p50 ms\tshoal p50 ms\tredis CPU µs/op\tshoal CPU µs/op\tshoal rounds/record\t")
	cpu := func(us float64) string {
		if us <= 0 {
			return "-"
		}
		return strconv.FormatFloat(us, 'f', 2, 64)
	}
	for _, r := range rows {
		if r.Target != "redis" {
			continue
		}
		for _, s := range rows {
			if s.Target == "shoal" && s.Test == r.Test && s.Pipeline == r.Pipeline {
				per := "-"
				if s.RoundsPerBatch > 0 {
					per = strconv.FormatFloat(s.RoundsPerBatch, 'f', 1, 64)
				}
				fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f×\t%.2f\t%.2f\t%s\t%s\t%s\t\n", r.Test, r.Pipeline, r.RPS, s.RPS, s.RPS/r.RPS,
					r.P50ms, s.P50ms, cpu(r.CPUMicrosPerOp), cpu(s.CPUMicrosPerOp), per)
			}
		}
	}
	return tw.Flush()
}

// infoCPU returns the CPU time (system and user, in seconds) the RESP
// server at addr reports in INFO cpu.
func infoCPU(addr string) (float64, error) {
	fields, err := infoFields(addr, "cpu")
	if err != nil {
		return 0, err
	}
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, ok := fields[k]
		if !ok {
			return 0, errors.New("INFO cpu has no used_cpu_sys and used_cpu_user")
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu: %s: %w", k, err)
		}
		total += f
	}
	return total, nil
}

// perBatch is the rounds of plain writes per shared batch between two INFO
// stats answers of shoal; 0 without them.
func perBatch(before, after map[string]string) float64 {
	count := func(m map[string]string, k string) float64 {
		f, _ := strconv.ParseFloat(m[k], 64)
		return f
	}
	batches := count(after, "shoal_shared_batches") - count(before, "shoal_shared_batches")
	if batches <= 0 {
		return 0
	}
	return (count(after, "shoal_shared_batch_rounds") - count(before, "shoal_shared_batch_rounds")) / batches
}

// infoFields returns the "key:value" lines of one INFO section of the RESP
// server at addr.
func infoFields(addr, section string) (map[string]string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n", len(section), section); err != nil {
		return nil, err
	}
	rd := bufio.NewReader(c)
	head, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("INFO %s answered %q", section, strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// parseBenchCSV reads redis-benchmark --csv output: a header, then
// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
// "p95_latency_ms","p99_latency_ms","max_latency_ms" rows.
func parseBenchCSV(out []byte) ([]respBenchRow, error) {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, `"`) { // skips warnings printed among the rows
			lines = append(lines, l)
		}
	}
	recs, err := csv.NewReader(strings.NewReader(strings.Join(lines, "\n"))).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows []respBenchRow
	for _, rec := range recs {
		if len(rec) < 7 || rec[0] == "test" {
			continue
		}
		rps, err1 := strconv.ParseFloat(rec[1], 64)
		p50, err2 := strconv.ParseFloat(rec[4], 64)
		p99, err3 := strconv.ParseFloat(rec[6], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		rows = append(rows, respBenchRow{Test: rec[0], RPS: rps, P50ms: p50, P99ms: p99})
	}
	if len(rows) == 0 {
		return nil, errors.New("no results in the output")
	}
	return rows, nil
}

// waitRESP waits until addr answers PING.
func waitRESP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = io.WriteString(c, "*1\r\n$4\r\nPING\r\n")
			var line string
			if err == nil {
				line, err = bufio.NewReader(c).ReadString('\n')
			}
			c.Close()
			if err == nil && strings.HasPrefix(line, "+PONG") {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("PING answered %q", strings.TrimSpace(line))
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.Join(fmt.Errorf("%s did not answer PING within %s", addr, timeout), last)
}
