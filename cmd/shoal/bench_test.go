package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
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

// TestOpenLoopAgainstNoop drives the no-op server in the open loop at a
// low rate, which it easily keeps up with: every request due is sent and
// answered, and the achieved rate is about the offered one.
func TestOpenLoopAgainstNoop(t *testing.T) {
	srv := httptest.NewServer(noopHandler())
	defer srv.Close()
	c := &benchConfig{conns: 4, rate: 200, duration: 500 * time.Millisecond, warmup: 100 * time.Millisecond,
		ops: []string{"put"}, valueSize: 256, keys: 10, progress: io.Discard, output: "json"}
	r, err := runLoad(context.Background(), c, "noop", srv.URL, "put")
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests are due in the window.
	if r.Mode != "open" || r.OfferedPerSec != 200 || r.Errors != 0 || r.Latency.Count != int(r.Ops) || r.Ops+r.Unsent != 100 {
		t.Fatalf("result %+v", r)
	}
	if ratio := r.OpsPerSec / r.OfferedPerSec; ratio < 0.5 || ratio > 1.2 {
		t.Errorf("achieved %.0f/s of %.0f/s offered", r.OpsPerSec, r.OfferedPerSec)
	}
	var out bytes.Buffer
	if err := printBenchReport(&out, c, []*benchResult{r}); err != nil {
		t.Fatal(err)
	}
	var rep httpReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Mode != "open" || rep.Rate != 200 || len(rep.Results) != 1 || rep.Results[0].KeptUp == nil {
		t.Fatalf("report %s: %v", out.String(), err)
	}
	c.output = "human"
	out.Reset()
	if err := printBenchReport(&out, c, []*benchResult{r}); err != nil || !strings.Contains(out.String(), "offered/s") {
		t.Fatalf("human report %q: %v", out.String(), err)
	}
}

// TestOpenLoopSchedule: requests are taken once each, in order of their
// due times, and only those due in the window are counted.
func TestOpenLoopSchedule(t *testing.T) {
	var mu sync.Mutex
	var got []int64
	st, err := runOpenLoop(context.Background(), openLoopPlan{rate: 1000, conns: 3, warmup: 50 * time.Millisecond, duration: 100 * time.Millisecond},
		func(_ context.Context, _ int, i int64) error {
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if st.Scheduled != 100 || st.FirstMeasured != 50 || st.EndMeasured != 150 || st.OK != st.Sent || len(got) > 150 {
		t.Fatalf("stats %+v", st)
	}
	slices.Sort(got)
	for k, i := range got {
		if i != int64(k) {
			t.Fatalf("request %d taken as the %dth (duplicate or gap)", i, k)
		}
	}
}

// TestOpenLoopLatencyFromDue: latency runs from the due time, so a
// target slower than the schedule shows its queue: with one connection,
// 10 ms between requests and 30 ms per answer, the k-th request of the
// window cannot be answered before 30 + 20k ms after it was due (a closed
// loop would report 30 ms for each).
func TestOpenLoopLatencyFromDue(t *testing.T) {
	plan := openLoopPlan{rate: 100, conns: 1, duration: 200 * time.Millisecond}
	st, err := runOpenLoop(context.Background(), plan, func(ctx context.Context, _ int, _ int64) error {
		time.Sleep(30 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.OK < 3 || len(st.Latencies) != int(st.OK) {
		t.Fatalf("stats %+v", st)
	}
	slices.Sort(st.Latencies)
	if floor := time.Duration(30+20*(st.OK-1)) * time.Millisecond; st.Latencies[len(st.Latencies)-1] < floor {
		t.Fatalf("longest latency %s of %d requests, want at least %s", st.Latencies[len(st.Latencies)-1], st.OK, floor)
	}
	if st.KeptUp() {
		t.Errorf("reported as keeping up: %+v", st)
	}
}

// TestOpenLoopFallsBehind: a target that answers nothing until the window
// is over is reported as not keeping up, its backlog as unsent.
func TestOpenLoopFallsBehind(t *testing.T) {
	plan := openLoopPlan{rate: 500, conns: 2, warmup: 20 * time.Millisecond, duration: 100 * time.Millisecond}
	st, err := runOpenLoop(context.Background(), plan, func(ctx context.Context, _ int, _ int64) error {
		select {
		case <-time.After(plan.warmup + plan.duration + 50*time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The two senders took the first two requests (due in the warmup) and
	// were busy past the window's end.
	if st.Scheduled != 50 || st.Sent != 0 || st.Unsent() != 50 || st.KeptUp() {
		t.Fatalf("stats %+v, kept up %v", st, st.KeptUp())
	}
}

// TestOpenLoopCancel: the loop ends with its context.
func TestOpenLoopCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := runOpenLoop(ctx, openLoopPlan{rate: 100, conns: 2, duration: time.Hour}, func(ctx context.Context, _ int, _ int64) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
