package gossip

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// link is our side of one live peer: the bounded queue of payloads waiting
// to be pushed to it, and the goroutine that keeps a data stream to it
// open (dialing with backoff). The queue has one consumer: the writer of
// the current outbound session.
type link struct {
	g      *Gossip
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: drop the stream and redial now
	signal chan struct{} // capacity 1: the queue has news for the writer

	mu    sync.Mutex
	q     [][]byte
	head  int  // q[head:] is queued
	bytes int  // payload bytes queued
	lost  bool // payloads for this peer were dropped since the last hint
	sess  *session
}

const (
	minRedial = 20 * time.Millisecond
	maxRedial = 5 * time.Second
)

func newLink(g *Gossip, name string) *link {
	l := &link{g: g, name: name, kick: make(chan struct{}, 1), signal: make(chan struct{}, 1)}
	l.ctx, l.cancel = context.WithCancel(g.ctx)
	return l
}

// enqueue adds payloads for the peer, or drops them all if they do not fit.
// Payloads are queued only while a stream is up: every new stream starts
// with a pull in both directions, which brings the peer whatever it missed
// meanwhile, read from the node's log (queuing them as well would send them
// twice). Called by Broadcast with g.mu read-locked; never blocks.
func (l *link) enqueue(ps [][]byte, size int) {
	l.mu.Lock()
	if l.sess == nil {
		l.mu.Unlock()
		l.g.stats.unconnected.Add(uint64(len(ps)))
		return
	}
	if l.ctx.Err() != nil || l.bytes+size > l.g.cfg.QueueBytes {
		l.lost = true
		l.mu.Unlock()
		l.g.stats.queueDropped.Add(uint64(len(ps)))
		l.notify()
		return
	}
	l.q = append(l.q, ps...)
	l.bytes += size
	l.mu.Unlock()
	l.g.stats.queuePayloads.Add(int64(len(ps)))
	l.g.stats.queueBytes.Add(int64(size))
	l.notify()
}

func (l *link) notify() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// pending reports the queue's length and bytes, and whether a hint is owed.
func (l *link) pending() (n, bytes int, lost bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q) - l.head, l.bytes, l.lost
}

// take removes payloads from the front, up to max bytes (at least one).
func (l *link) take(max int) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	size := 0
	for l.head < len(l.q) {
		p := l.q[l.head]
		if len(out) > 0 && size+len(p) > max {
			break
		}
		out = append(out, p)
		size += len(p)
		l.q[l.head] = nil
		l.head++
	}
	l.bytes -= size
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
	} else if l.head > 1024 && l.head*2 > len(l.q) {
		l.q = append(l.q[:0], l.q[l.head:]...)
		l.head = 0
	}
	l.g.stats.queuePayloads.Add(-int64(len(out)))
	l.g.stats.queueBytes.Add(-int64(size))
	return out
}

// markLost records that payloads may not have reached the peer; the next
// hint makes it pull.
func (l *link) markLost() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
}

// takeLost clears and returns the lost flag.
func (l *link) takeLost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := l.lost
	l.lost = false
	return lost
}

// drop empties the queue, counting what was dropped.
func (l *link) drop() {
	l.mu.Lock()
	n, size := len(l.q)-l.head, l.bytes
	l.q, l.head, l.bytes = nil, 0, 0
	l.mu.Unlock()
	l.g.stats.queuePayloads.Add(-int64(n))
	l.g.stats.queueBytes.Add(-int64(size))
	l.g.stats.queueDropped.Add(uint64(n))
}

func (l *link) session() *session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sess
}

// redial closes the current stream so that run dials again (the peer's
// data address may have changed).
func (l *link) redial() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// stop ends the link: the stream is closed and queued payloads dropped.
// Anti-entropy repairs what the peer missed when it comes back.
func (l *link) stop() {
	l.cancel()
	if s := l.session(); s != nil {
		s.close(errPeerGone)
	}
	l.drop()
}

// run keeps a data stream to the peer open until the link stops.
func (l *link) run() {
	defer l.g.wg.Done()
	defer l.drop()
	backoff := minRedial
	for l.ctx.Err() == nil {
		peer := l.g.peer(l.name)
		s, err := l.g.dial(l.ctx, peer)
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			l.g.log.Debug("gossip: data stream dial failed", "peer", l.name, "addr", peer.DataAddr, "err", err, "retry", backoff)
			t := time.NewTimer(jitter(backoff))
			select {
			case <-t.C:
			case <-l.kick:
				t.Stop()
			case <-l.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, maxRedial)
			continue
		}
		began := time.Now()
		l.mu.Lock()
		l.sess = s
		l.mu.Unlock()
		s.start(l)
		// Anything in flight on an earlier stream may be lost, and the peer
		// may have missed writes while we were apart: the hint makes it pull
		// from us. We pull from it too.
		s.queueHint()
		l.g.sched.want(l.name)
		select {
		case <-s.done:
		case <-l.kick:
			s.close(fmt.Errorf("gossip: redialing %q", l.name))
			<-s.done
		case <-l.ctx.Done():
			s.close(errPeerGone)
			<-s.done
		}
		l.mu.Lock()
		l.sess = nil
		l.mu.Unlock()
		// What is still queued goes with the stream: the next stream's
		// pull repairs it.
		l.drop()
		// A stream that broke at once (the peer refuses us after the
		// handshake, or the network flaps) must not make us spin.
		if time.Since(began) > time.Second {
			backoff = minRedial
		} else {
			if !waitCtx(l.ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, maxRedial)
		}
	}
}
