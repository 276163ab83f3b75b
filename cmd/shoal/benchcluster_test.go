package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchCluster runs bench cluster with 2 real agents for about a
// second at a low rate: every write is acknowledged and seen on both
// nodes, the per-write costs are measured, the plot is written, and no
// agent is left running.
func TestBenchCluster(t *testing.T) {
	bin := shoalBinary(t)
	svgDir := t.TempDir()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), []string{"bench", "cluster", "--nodes", "2", "--rate", "50", "--duration", "1s",
		"--warmup", "200ms", "--conns", "4", "--writers-on", "2", "--agent-bin", bin, "--dir", t.TempDir(), "-o", "json", "--svg", svgDir})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if kids := childrenOf(t, os.Getpid()); len(kids) > 0 {
		t.Errorf("processes left behind: %v", kids)
	}
	var rep clusterReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout.String())
	}
	// 50 writes are due in the window; at 50/s none waits for a sender.
	if rep.Nodes != 2 || rep.Scheduled != 50 || rep.Errors != 0 || rep.Unsent != 0 || rep.Acked != 50 {
		t.Fatalf("report %+v\nstderr:\n%s", rep, stderr.String())
	}
	if rep.RunSeenOnAll != rep.RunAcked || rep.NotSeen != 0 {
		t.Errorf("not every write seen on both nodes: %+v", rep)
	}
	if rep.AckedInWindow == 0 || rep.SeenOnAll != rep.AckedInWindow || rep.Visible.Count != int(rep.SeenOnAll) || rep.Ack.Count != int(rep.Acked) {
		t.Errorf("latency populations: %+v", rep)
	}
	if rep.RunAcked < rep.Acked || rep.WireBytesPerOp <= 0 || rep.CPUMicrosPerOp <= 0 {
		t.Errorf("per-write costs: %+v", rep)
	}
	if rep.Visible.P50 > rep.Visible.P99 || rep.Visible.P99 > rep.Visible.Max {
		t.Errorf("percentiles out of order: %+v", rep.Visible)
	}
	if len(rep.PerNode) != 2 || !rep.PerNode[0].Writer || !rep.PerNode[1].Writer {
		t.Errorf("per node: %+v", rep.PerNode)
	}
	for _, n := range rep.PerNode {
		// Each node showed every write seen on all, none later than the last.
		if n.Visible.Count < int(rep.SeenOnAll) || n.Visible.Max > rep.Visible.Max {
			t.Errorf("%s: %+v, on all: %+v", n.Node, n.Visible, rep.Visible)
		}
	}
	if len(rep.Goals) != 0 {
		t.Errorf("goals at 2 nodes: %+v", rep.Goals)
	}
	checkSVG(t, filepath.Join(svgDir, "cluster-cdf-2.svg"), "2 agents, 50 writes/s offered")

	var human bytes.Buffer
	rep.Goals = clusterGoals(&clusterReport{Nodes: 3, OfferedRate: 5000, Visible: latencyReport{P99: 12}})
	if err := printClusterReport(&human, &rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"sustained", "ack→visible-all", "wire bytes", "µs CPU", "seen on all", "ack→node2 (w)", "cores busy", "NOT MET"} {
		if !strings.Contains(human.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, human.String())
		}
	}
}

// childrenOf lists the live child processes of pid (Linux; elsewhere
// none are found).
func childrenOf(t *testing.T, pid int) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		return nil
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, strings.TrimSpace(s[:i+1]))
		}
	}
	return out
}

// TestClusterGoals: the goals apply at their node count and rate only.
func TestClusterGoals(t *testing.T) {
	for _, tc := range []struct {
		nodes  int
		rate   float64
		goals  int
		target float64 // of the last goal
	}{{10, 5000, 2, 25}, {10, 1000, 1, 10}, {3, 5000, 1, 10}, {3, 1000, 0, 0}, {2, 5000, 0, 0}} {
		r := &clusterReport{Nodes: tc.nodes, OfferedRate: tc.rate, AchievedRate: tc.rate, KeptUp: true, Visible: latencyReport{P99: 9, Count: 100}}
		g := clusterGoals(r)
		if len(g) != tc.goals || len(g) > 0 && (g[len(g)-1].Target != tc.target || !g[len(g)-1].Met) {
			t.Errorf("%d nodes at %.0f/s: goals %+v", tc.nodes, tc.rate, g)
		}
	}
	g := clusterGoals(&clusterReport{Nodes: 10, OfferedRate: 5000, AchievedRate: 4000, KeptUp: true, Visible: latencyReport{P99: 30, Count: 100}})
	if g[0].Met || g[1].Met {
		t.Errorf("4,000/s and 30 ms reported as meeting the goals: %+v", g)
	}
	// A latency within the goal is not met when the cluster fell behind
	// the offered rate (it is a lighter load's), nor when nothing was
	// measured.
	for _, r := range []*clusterReport{
		{Nodes: 3, OfferedRate: 5000, KeptUp: false, Visible: latencyReport{P99: 5, Count: 100}},
		{Nodes: 3, OfferedRate: 5000, KeptUp: true},
	} {
		if g := clusterGoals(r); len(g) != 1 || g[0].Met || g[0].Note == "" {
			t.Errorf("%+v: goals %+v", r, g)
		}
	}
}

// TestScrapeMetrics sums a metric's samples over its labels.
func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `# HELP shoal_gossip_sent_bytes_total Wire bytes sent, by message type.
# TYPE shoal_gossip_sent_bytes_total counter
shoal_gossip_sent_bytes_total{type="batch"} 1000
shoal_gossip_sent_bytes_total{type="digest",x="a}b"} 24.5
shoal_gossip_sent_bytes_totalx 7
process_cpu_seconds_total 1.25
`)
	}))
	defer srv.Close()
	got, err := scrapeMetrics(context.Background(), srv.URL, "shoal_gossip_sent_bytes_total", "process_cpu_seconds_total")
	if err != nil || got["shoal_gossip_sent_bytes_total"] != 1024.5 || got["process_cpu_seconds_total"] != 1.25 {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := scrapeMetrics(context.Background(), srv.URL, "absent_total"); err == nil {
		t.Fatal("a missing metric is not an error")
	}
}

// TestCDFPlot writes a CDF of two series, one with zero latencies (drawn
// at the axis' start on the log scale).
func TestCDFPlot(t *testing.T) {
	lat := make([]time.Duration, 2000)
	for i := range lat {
		lat[i] = time.Duration(i) * 10 * time.Microsecond
	}
	path := filepath.Join(t.TempDir(), "sub", "cdf.svg")
	err := writeCDFPlot(path, "test plot", []cdfSeries{{"all", lat}, {"zeros", make([]time.Duration, 3)}, {"none", nil}},
		[]cdfGoal{{"p99 goal", 10}})
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, path, "test plot", "all", "zeros", "p99 goal")
	// Nothing to draw is still a plot.
	if err := writeCDFPlot(path, "empty", nil, nil); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, path, "empty")
	if pts := cdfPoints(lat, 100); len(pts) > 102 || pts[len(pts)-1].Y != 1 || pts[0].X != minPlotMs {
		t.Errorf("%d points, last %v, first %v", len(pts), pts[len(pts)-1], pts[0])
	}
}
