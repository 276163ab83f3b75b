package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const monitoringDir = "../../examples/monitoring"

var metricRef = regexp.MustCompile(`\bshoal_[a-z0-9_]+`)

// monitoringQueries returns every PromQL expression of the dashboard and
// the alert rules, each with where it comes from.
func monitoringQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.UID == "" || len(dash.Templating.List) == 0 || dash.Templating.List[0].Type != "datasource" {
		t.Fatalf("dashboard: no uid or no data source variable (it must import as is)")
	}
	qs := map[string]string{}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Fatalf("panel %q: duplicate id, no data source variable or no query", p.Title)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			if tg.RefID == "" || tg.Expr == "" {
				t.Fatalf("panel %q: a target without refId or expr", p.Title)
			}
			qs[tg.Expr] = "dashboard panel " + p.Title
		}
	}
	f, err := os.Open(filepath.Join(monitoringDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	alert := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "- alert: "); ok {
			alert = a
		}
		if e, ok := strings.CutPrefix(line, "expr: "); ok {
			qs[e] = "alert " + alert
		}
	}
	if len(qs) < 20 {
		t.Fatalf("only %d queries found", len(qs))
	}
	return qs
}

// TestMonitoringMetricsExist: every metric the dashboard and the alert
// rules query exists in a live agent's /metrics (a two-node cluster, so
// the per-peer series exist too), and promtool accepts the rules where it
// is installed.
func TestMonitoringMetricsExist(t *testing.T) {
	qs := monitoringQueries(t)
	bin := shoalBinary(t)
	root := t.TempDir()
	n1 := startCluster(t, bin, root, 2, nil)[0] // n1 reports its peer's lag
	if err := n1.client.Put("k", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	var have map[string]bool
	eventually(t, 30*time.Second, "n1 reports its peer's lag", func() (bool, string) {
		var err error
		have, err = scrapeNames(n1.url + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		return have["shoal_repl_peer_behind_ops"], fmt.Sprintf("%d metric names", len(have))
	})
	for q, where := range qs {
		for _, name := range metricRef.FindAllString(q, -1) {
			if !have[name] {
				t.Errorf("%s queries %s, which a live node does not export", where, name)
			}
		}
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool not installed: the rules' syntax was not checked by Prometheus itself")
		return
	}
	if out, err := exec.Command("promtool", "check", "rules", filepath.Join(monitoringDir, "alerts.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// scrapeNames returns the metric names of a Prometheus text exposition,
// with a histogram's _bucket, _sum and _count series.
func scrapeNames(url string) (map[string]bool, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		names[name] = true
	}
	return names, nil
}
