package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRunLoadAgainstNoop drives the no-op reference server briefly and
// checks the load generator counts requests and the report shows them.
func TestRunLoadAgainstNoop(t *testing.T) {
	srv := httptest.NewServer(noopHandler())
	defer srv.Close()
	c := &benchConfig{conns: 4, duration: 200 * time.Millisecond, warmup: 50 * time.Millisecond,
		ops: []string{"put", "incr", "batch"}, batch: 4, valueSize: 256, keys: 10, progress: io.Discard, output: "json"}
	var results []*benchResult
	for _, op := range c.ops {
		r, err := runLoad(context.Background(), c, "noop", srv.URL, op)
		if err != nil {
			t.Fatal(err)
		}
		perReq := 1
		if op == "batch" {
			perReq = 4
		}
		if r.Ops == 0 || r.Errors != 0 || r.Latency.Count*perReq != int(r.Ops) || r.Latency.P50 > r.Latency.Max {
			t.Fatalf("%s: result %+v", op, r)
		}
		results = append(results, r)
	}
	var out bytes.Buffer
	if err := printBenchReport(&out, c, results); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results []benchResult `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Results) != 3 {
		t.Fatalf("report %s: %v", out.String(), err)
	}
	c.output = "human"
	out.Reset()
	if err := printBenchReport(&out, c, results); err != nil || !strings.Contains(out.String(), "noop") {
		t.Fatalf("human report %q: %v", out.String(), err)
	}
}
