package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// openLoopPlan is a load at a fixed arrival rate (open loop): request i is
// due at start + i/rate whatever became of the ones before it, and up to
// conns are in flight at once, a free sender taking the next request due.
// A request's latency runs from when it was due, not from when a sender
// got round to it, so a target that falls behind shows its queue in the
// latencies instead of slowing the load down (the coordinated omission of
// a closed loop, where each connection waits for its previous answer).
type openLoopPlan struct {
	rate             float64 // requests per second
	conns            int
	warmup, duration time.Duration // due times in [warmup, warmup+duration) are measured
	label            string        // of the progress line
	progress         io.Writer     // nil = none
}

// openLoopStats is what an open-loop run measured: the requests due in the
// measured window, and the completions that fell in it.
type openLoopStats struct {
	Scheduled int64 // requests due in the window
	Sent      int64 // of those, sent before the window ended
	OK        int64 // of those, answered with success (after the window's end too)
	Errors    int64 // of those, failed
	// CompletedInWindow counts the successes that completed within the
	// window, whenever they were due: the achieved rate's numerator.
	CompletedInWindow int64
	Window            time.Duration
	// WindowStart and WindowEnd are the window's bounds.
	WindowStart, WindowEnd time.Time
	// FirstMeasured and EndMeasured bound the indexes of the requests
	// due in the window: [FirstMeasured, EndMeasured).
	FirstMeasured, EndMeasured int64
	Latencies                  []time.Duration // of the OK requests, due to done
	FirstErr                   string
}

// Unsent is how many requests due in the window no sender had taken when
// it ended: the backlog of a target that cannot keep up.
func (s *openLoopStats) Unsent() int64 { return s.Scheduled - s.Sent }

// Offered and Achieved are requests per second.
func (s *openLoopStats) Offered() float64 { return float64(s.Scheduled) / s.Window.Seconds() }
func (s *openLoopStats) Achieved() float64 {
	return float64(s.CompletedInWindow) / s.Window.Seconds()
}

// KeptUp: the target completed at least 95% of the offered rate and the
// senders were never more than 1% of the window's requests behind at its
// end. When it did not, the latencies miss the requests never sent.
func (s *openLoopStats) KeptUp() bool {
	return s.Achieved() >= 0.95*s.Offered() && float64(s.Unsent()) <= 0.01*float64(s.Scheduled) && s.Errors == 0
}

// runOpenLoop runs the plan, calling send(ctx, sender, i) for request i
// from sender goroutine sender (0 <= sender < conns). Senders stop taking
// requests at the window's end; the ones in flight then finish (send must
// end when its ctx does). It returns ctx's error if ctx ended first.
func runOpenLoop(ctx context.Context, p openLoopPlan, send func(ctx context.Context, sender int, i int64) error) (*openLoopStats, error) {
	if p.rate <= 0 || p.conns < 1 || p.duration <= 0 {
		return nil, fmt.Errorf("open loop: rate, conns and duration must be positive")
	}
	start := time.Now()
	measureFrom := start.Add(p.warmup)
	stopAt := measureFrom.Add(p.duration)
	due := func(i int64) time.Time {
		return start.Add(time.Duration(float64(i) * float64(time.Second) / p.rate))
	}
	measured := func(d time.Time) bool { return !d.Before(measureFrom) && d.Before(stopAt) }

	var (
		next                    atomic.Int64
		sent, ok, errs, inWin   atomic.Int64
		mu                      sync.Mutex
		all                     []time.Duration
		firstErr                atomic.Value
		wg                      sync.WaitGroup
		stopped                 atomic.Bool
		lctx, cancel            = context.WithCancel(ctx)
		stopCh                  = make(chan struct{})
		closeStop               sync.Once
		endSending              = func() { closeStop.Do(func() { stopped.Store(true); close(stopCh) }) }
		progressDone, progressN atomic.Int64
	)
	defer cancel()
	for s := 0; s < p.conns; s++ {
		wg.Go(func() {
			var lat []time.Duration
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for !stopped.Load() {
				i := next.Add(1) - 1
				d := due(i)
				if !d.Before(stopAt) {
					break
				}
				if wait := time.Until(d); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-stopCh:
					case <-lctx.Done():
					}
				}
				if stopped.Load() || !time.Now().Before(stopAt) || lctx.Err() != nil {
					break // behind schedule at the end: the rest stays unsent
				}
				m := measured(d)
				if m {
					sent.Add(1)
				}
				err := send(lctx, s, i)
				done := time.Now()
				progressN.Add(1)
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					if m {
						errs.Add(1)
					}
					continue
				}
				progressDone.Add(1)
				if !done.Before(measureFrom) && done.Before(stopAt) {
					inWin.Add(1)
				}
				if m {
					ok.Add(1)
					lat = append(lat, done.Sub(d))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}

	var err error
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(time.Until(stopAt))
	defer end.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-end.C:
			break wait
		case <-tick.C:
			if p.progress != nil {
				el := time.Since(start)
				phase := "warmup"
				if el >= p.warmup {
					phase = "measure"
				}
				fmt.Fprintf(p.progress, "\r%-16s %-8s %6.1fs %8.0f/s offered %8d done %6d errors   ",
					p.label, phase, el.Seconds(), p.rate, progressDone.Load(), progressN.Load()-progressDone.Load())
			}
		}
	}
	endSending()
	wg.Wait()
	if p.progress != nil {
		fmt.Fprintln(p.progress)
	}
	if err != nil {
		return nil, err
	}
	st := &openLoopStats{Sent: sent.Load(), OK: ok.Load(), Errors: errs.Load(),
		CompletedInWindow: inWin.Load(), Window: p.duration, WindowStart: measureFrom, WindowEnd: stopAt, Latencies: all}
	st.FirstMeasured = -1
	for i := int64(0); due(i).Before(stopAt); i++ {
		if measured(due(i)) {
			if st.FirstMeasured < 0 {
				st.FirstMeasured = i
			}
			st.EndMeasured = i + 1
		}
	}
	st.FirstMeasured = max(st.FirstMeasured, 0)
	st.Scheduled = st.EndMeasured - st.FirstMeasured
	if v, ok := firstErr.Load().(string); ok {
		st.FirstErr = v
	}
	return st, nil
}
