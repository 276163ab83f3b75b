package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchPut runs bench put for a few tens of milliseconds per
// contender and checks the table, the JSON and the plot are whole.
func TestBenchPut(t *testing.T) {
	svgDir := t.TempDir()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), []string{"bench", "put", "--writers", "1,4", "--duration", "60ms", "--slice", "30ms",
		"--warmup", "10ms", "--keys", "50", "--dir", t.TempDir(), "--json", filepath.Join(svgDir, "put.json"), "--svg", svgDir})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	// The table printed, the JSON written beside it.
	for _, s := range []string{"writers", "contender", "vs raw", "bbolt", "goals:", "goal >= 0.90"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("the table lacks %q:\n%s", s, stdout.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(svgDir, "put.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep putReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	want := []string{"raw", "shoal", "bbolt", "raw-z"}
	if len(rep.Results) != 2*len(want) || len(rep.Ratios) != 2 {
		t.Fatalf("want %d contenders at 2 writer counts and 2 ratios, got %+v", len(want), rep)
	}
	for i, r := range rep.Results {
		if r.Contender != want[i%len(want)] || r.Writers != []int{1, 4}[i/len(want)] {
			t.Errorf("result %d is %s at %d writers", i, r.Contender, r.Writers)
		}
		if r.Ops <= 0 || r.OpsPerSec <= 0 || r.Latency.Count != int(r.Ops) || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
			t.Errorf("result %+v", r)
		}
	}
	for _, r := range rep.Ratios {
		if r.ShoalRaw <= 0 || r.ShoalBbolt <= 0 || r.BboltRaw <= 0 || r.ShoalRawZ <= 0 {
			t.Errorf("ratios %+v", r)
		}
	}
	// The 1-writer goal is reported (256 B values); there is none at 4.
	if len(rep.Goals) != 1 || rep.Goals[0].Target != 0.9 || rep.Goals[0].Measured != rep.Ratios[0].ShoalRaw {
		t.Errorf("goals %+v", rep.Goals)
	}
	checkSVG(t, filepath.Join(svgDir, "put-writers.svg"), "shoal node.Put", "raw group commit", "bbolt", "raw, zero-filled ahead")
	// A report with nothing measured is still a plot.
	empty := filepath.Join(svgDir, "empty.svg")
	if err := writePutPlot(empty, &putReport{ValueSize: 256}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, empty, "Durable 256 B writes")
}

// TestBenchPutFlags: bad flags are usage errors.
func TestBenchPutFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--writers", "0"}, {"--writers", "a"}, {"--duration", "0s"}, {"--value-size", "1"}, {"-o", "xml"}, {"extra"},
	} {
		m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
		err := m.Run(context.Background(), append([]string{"bench", "put"}, args...))
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestRawGroupSharesSyncs: concurrent appenders all return, with every
// byte in the file.
// With zeros ahead (raw-z), the records are the file's first bytes and
// zeros follow them.
func TestRawGroupSharesSyncs(t *testing.T) {
	for _, ahead := range []int64{0, 100} {
		g, err := openRawGroup(filepath.Join(t.TempDir(), "raw"))
		if err != nil {
			t.Fatal(err)
		}
		g.ahead = ahead
		const writers, each = 8, 20
		n, _, lat, err := runWriters(context.Background(), writers, time.Hour, func(w, i int) error {
			if i == each {
				return errStopWriter
			}
			return g.append([]byte("0123456789abcdef"))
		}, true)
		if !errors.Is(err, errStopWriter) || n != writers*each || len(lat) != writers*each {
			t.Fatalf("ahead %d: %d appends, %d latencies, %v", ahead, n, len(lat), err)
		}
		b, err := os.ReadFile(g.f.Name())
		g.close()
		const size = writers * each * 16
		if err != nil || int64(len(b)) < size || int64(len(b)) > size+ahead {
			t.Fatalf("ahead %d: file of %d bytes, %v", ahead, len(b), err)
		}
		if !bytes.Equal(b[:size], bytes.Repeat([]byte("0123456789abcdef"), writers*each)) || bytes.ContainsFunc(b[size:], func(r rune) bool { return r != 0 }) {
			t.Fatalf("ahead %d: the file holds other bytes", ahead)
		}
	}
}

var errStopWriter = errors.New("stop")

// checkSVG checks path parses as an SVG document holding each text.
func checkSVG(t *testing.T, path string, texts ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("%s: root element %q, want svg", path, root)
	}
	for _, s := range texts {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("%s lacks %q", path, s)
		}
	}
}
