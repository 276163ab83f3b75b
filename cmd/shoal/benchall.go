package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const benchAllUsage = `Usage: shoal bench all [--svg DIR] [--json FILE] [-o json] [--scale F]

Runs every measurement the README shows, one after the other, at modest
durations (about two and a half minutes in all), prints each report and
then every goal beside its figure:

  put      embedded durable Put against raw group commit and bbolt,
           --writers 1,16,64,256, 2 s each
  http     durable PUT from 256 connections against the no-op server:
           closed loop for 3 s, then open loop at 2,000 requests/s for 3 s
  cluster  3 agents at 5,000 writes/s, 10 agents at 1,000 and at 5,000
           writes/s, 10 s each after 1 s of warmup (a window that holds
           the agents' first periodic state comparisons)

--svg DIR writes put-writers.svg, cluster-cdf-3.svg and cluster-cdf-10.svg
there, --json FILE the figures. The README's come from:

  go build -o /tmp/shoal ./cmd/shoal && /tmp/shoal bench all --svg cmd/shoal/bench --json cmd/shoal/bench/bench.json
`

// benchAllReport is the JSON of bench all.
type benchAllReport struct {
	Put        *putReport       `json:"put"`
	HTTPClosed *httpReport      `json:"http_closed"`
	HTTPOpen   *httpReport      `json:"http_open"`
	Cluster    []*clusterReport `json:"cluster"`
	Goals      []goalCheck      `json:"goals"`
}

func (m *Main) runBenchAll(ctx context.Context, args []string) error {
	fs := newFlagSet("bench all", m.Stderr, benchAllUsage+"\n")
	svgDir := fs.String("svg", "", "write the plots into this directory")
	output := new(string)
	jsonPath := reportFlags(fs, output)
	scale := fs.Float64("scale", 1, "multiply every measured duration (0.2 for a quick look, 3 for steadier figures)")
	dir := fs.String("dir", "", "where the temporary data goes (default: the system's temporary directory)")
	pos, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("bench all takes no arguments, got %q", pos)
	}
	if *output != "human" && *output != "json" {
		return usageError("-o: want human or json, got %q", *output)
	}
	if *scale <= 0 {
		return usageError("--scale must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	d := func(base time.Duration) time.Duration { return time.Duration(float64(base) * *scale) }
	human := *output == "human"
	var out benchAllReport
	section := func(title string) {
		if human {
			fmt.Fprintf(m.Stdout, "\n== %s\n", title)
		}
	}

	// Embedded writes.
	pc := &putBenchConfig{writers: []int{1, 16, 64, 256}, duration: d(2 * time.Second), slice: 250 * time.Millisecond,
		warmup: 250 * time.Millisecond, valueSize: 256, keys: 100_000, dir: *dir, progress: m.Stderr}
	if out.Put, err = runPutBench(ctx, pc); err != nil {
		return fmt.Errorf("bench put: %w", err)
	}
	out.Goals = append(out.Goals, out.Put.Goals...)
	if *svgDir != "" {
		if err := writePutPlot(filepath.Join(*svgDir, "put-writers.svg"), out.Put); err != nil {
			return err
		}
	}
	if human {
		section("bench put: embedded durable Put")
		if err := printPutReport(m.Stdout, out.Put); err != nil {
			return err
		}
	}

	// HTTP, closed loop then open loop.
	for _, rate := range []float64{0, 2000} {
		hc := &benchConfig{noop: true, conns: 256, rate: rate, duration: d(3 * time.Second), warmup: time.Second,
			ops: []string{"put"}, batch: 16, valueSize: 256, keys: 10_000, output: *output, progress: m.Stderr}
		results, err := runHTTPBench(ctx, m.Stderr, exe, hc)
		if err != nil {
			return fmt.Errorf("bench http: %w", err)
		}
		rep := newHTTPReport(hc, results)
		out.Goals = append(out.Goals, rep.Goals...)
		if rate == 0 {
			out.HTTPClosed = rep
			section("bench http: durable PUT, closed loop")
		} else {
			out.HTTPOpen = rep
			section("bench http: durable PUT, open loop")
		}
		if human {
			if err := printHTTPReport(m.Stdout, hc, rep); err != nil {
				return err
			}
		}
	}

	// Clusters.
	cdfs := map[int][]cdfSeries{}
	cdfGoals := map[int][]cdfGoal{}
	for _, run := range []struct {
		nodes int
		rate  float64
	}{{3, 5000}, {10, 1000}, {10, 5000}} {
		// 10 s: the window holds the agents' first periodic state
		// comparisons (due 7.5-10 s after they meet on loopback), which a
		// steady workload meets every period.
		cc := &clusterBenchConfig{nodes: run.nodes, rate: run.rate, duration: d(10 * time.Second), warmup: time.Second,
			drain: 10 * time.Second, writersOn: 1, conns: 64, valueSize: 256, dir: *dir, exe: exe, progress: m.Stderr}
		rep, err := runClusterBench(ctx, cc)
		if err != nil {
			return fmt.Errorf("bench cluster --nodes %d --rate %.0f: %w", run.nodes, run.rate, err)
		}
		out.Cluster = append(out.Cluster, rep)
		out.Goals = append(out.Goals, rep.Goals...)
		cdfs[run.nodes] = append(cdfs[run.nodes], cdfSeries{label: fmt.Sprintf("%s writes/s", fmtCount(run.rate)), lat: rep.latencies})
		cdfGoals[run.nodes] = append(cdfGoals[run.nodes], rep.cdfGoals()...)
		if human {
			section(fmt.Sprintf("bench cluster --nodes %d --rate %.0f", run.nodes, run.rate))
			if err := printClusterReport(m.Stdout, rep); err != nil {
				return err
			}
		}
	}
	if *svgDir != "" {
		for _, n := range []int{3, 10} {
			title := fmt.Sprintf("Convergence of %d agents: ack to visible on all", n)
			if err := writeCDFPlot(filepath.Join(*svgDir, fmt.Sprintf("cluster-cdf-%d.svg", n)), title, cdfs[n], cdfGoals[n]); err != nil {
				return err
			}
		}
	}

	if err := saveJSON(*jsonPath, &out); err != nil {
		return err
	}
	if !human {
		return writeJSON(m.Stdout, &out)
	}
	section("all goals")
	if err := printGoals(m.Stdout, out.Goals); err != nil {
		return err
	}
	if *svgDir != "" {
		fmt.Fprintf(m.Stdout, "plots written to %s\n", *svgDir)
	}
	return nil
}
