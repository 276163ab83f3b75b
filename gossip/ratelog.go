package gossip

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// logLimiter keeps refused traffic from flooding the log: one line per
// source and kind per interval. The lines in between are left out and
// counted; the next line that gets through says how many were, and so does
// a summary line (flush) once an interval passes with lines left out and no
// new one. Every refusal is also counted in the stats, limited or not.
//
// Its memory is bounded: at most maxLogKeys sources and kinds are tracked;
// beyond that, new ones share the source "other" (an attacker with many
// addresses, or spoofed UDP sources, gets one line per kind per interval).
type logLimiter struct {
	log        *slog.Logger
	interval   time.Duration
	now        func() time.Time
	suppressed *atomic.Uint64 // stats: lines left out

	mu      sync.Mutex
	entries map[logKey]*logEntry
}

// maxLogKeys bounds the sources and kinds the limiter tracks.
const maxLogKeys = 1024

type logKey struct{ source, kind string }

type logEntry struct {
	last    time.Time // when a line last went out
	dropped int       // lines left out since
	level   slog.Level
	msg     string
}

func newLogLimiter(log *slog.Logger, interval time.Duration, suppressed *atomic.Uint64) *logLimiter {
	return &logLimiter{log: log, interval: interval, now: time.Now, suppressed: suppressed, entries: make(map[logKey]*logEntry)}
}

// logf writes msg at level unless a line of this source and kind went out
// less than an interval ago; then it counts it instead. A line that goes
// out after some were left out carries their count as "suppressed".
func (l *logLimiter) logf(level slog.Level, source, kind, msg string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	k := logKey{source, kind}
	e := l.entries[k]
	if e == nil {
		if len(l.entries) >= maxLogKeys {
			l.sweepLocked(now)
		}
		if len(l.entries) >= maxLogKeys {
			k.source = "other"
			e = l.entries[k]
		}
	}
	if e != nil && now.Sub(e.last) < l.interval {
		e.dropped++
		l.mu.Unlock()
		l.suppressed.Add(1)
		return
	}
	dropped := 0
	if e == nil {
		e = &logEntry{}
		l.entries[k] = e
	} else {
		dropped = e.dropped
	}
	e.last, e.dropped, e.level, e.msg = now, 0, level, msg
	l.mu.Unlock()
	if dropped > 0 {
		args = append(args, "suppressed", dropped, "interval", l.interval)
	}
	if k.source == "other" && source != "other" {
		args = append(args, "source_limit", maxLogKeys)
	}
	l.log.Log(context.Background(), level, msg, args...)
}

// flush writes a summary line for each source and kind whose interval is
// over with lines left out, and forgets the quiet ones.
func (l *logLimiter) flush() {
	type summary struct {
		logKey
		logEntry
	}
	var out []summary
	now := l.now()
	l.mu.Lock()
	for k, e := range l.entries {
		if now.Sub(e.last) < l.interval {
			continue
		}
		if e.dropped > 0 {
			out = append(out, summary{k, *e})
			e.last, e.dropped = now, 0
			continue
		}
		delete(l.entries, k)
	}
	l.mu.Unlock()
	for _, s := range out {
		l.log.Log(context.Background(), s.level, s.msg+" (repeated)", "source", s.source, "kind", s.kind,
			"suppressed", s.dropped, "interval", l.interval)
	}
}

// sweepLocked forgets entries whose interval is over and that left nothing
// out; l.mu is held.
func (l *logLimiter) sweepLocked(now time.Time) {
	for k, e := range l.entries {
		if e.dropped == 0 && now.Sub(e.last) >= l.interval {
			delete(l.entries, k)
		}
	}
}

// flushLoop runs flush every LogInterval until Close.
func (g *Gossip) flushLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.LogInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			g.logs.flush()
			return
		case <-t.C:
			g.logs.flush()
		}
	}
}
