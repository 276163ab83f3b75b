package gossip

// Pushed batches are delivered by a goroutine of their own, not by the
// reader. Delivering is the receiver's durable write (on a node: a WAL
// append and an fsync); done by the reader, one frame at a time, the
// receiver paid one fsync per frame and the frames piled up in the
// socket, so a peer fell behind a writer whose own group commit covered
// many writes per fsync. Now the reader keeps reading while a delivery
// runs, and the next delivery takes every batch that arrived meanwhile:
// one Deliver call, so one group commit, for all of them.

// maxInboxBytes bounds the payload bytes waiting for the deliverer per
// stream; beyond it the reader stops reading, which pushes back on the
// sender through TCP as a synchronous Deliver did.
const maxInboxBytes = 8 << 20

type inbox struct {
	// guarded by session.mu
	payloads [][]byte
	bytes    int
	busy     bool // the deliverer holds payloads taken from here

	ready chan struct{} // capacity 1: payloads were queued
	moved chan struct{} // capacity 1: the deliverer took or finished payloads
	done  chan struct{} // closed when the deliverer has exited
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// queueBatch hands a pushed batch to the deliverer, waiting for room.
func (s *session) queueBatch(payloads [][]byte) error {
	size := 0
	for _, p := range payloads {
		size += len(p)
	}
	for {
		s.mu.Lock()
		if s.in.bytes == 0 || s.in.bytes+size <= maxInboxBytes {
			s.in.payloads = append(s.in.payloads, payloads...)
			s.in.bytes += size
			s.mu.Unlock()
			signal(s.in.ready)
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.in.moved:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// waitDelivered waits until every batch queued so far has been delivered.
func (s *session) waitDelivered() error {
	for {
		s.mu.Lock()
		idle := len(s.in.payloads) == 0 && !s.in.busy
		s.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-s.in.moved:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// deliverLoop delivers queued batches, everything queued at once. What is
// still queued when the session closes is dropped, as unread frames are:
// anti-entropy brings it.
func (s *session) deliverLoop() {
	defer s.g.wg.Done()
	defer close(s.in.done)
	g := s.g
	for {
		select {
		case <-s.in.ready:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		payloads := s.in.payloads
		s.in.payloads, s.in.bytes, s.in.busy = nil, 0, len(payloads) > 0
		s.mu.Unlock()
		signal(s.in.moved)
		if len(payloads) == 0 {
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		if err := g.h.Deliver(s.peer, SourcePush, payloads); err != nil {
			g.stats.deliverErrors.Add(1)
			g.log.Warn("gossip: delivering pushed payloads failed", "peer", s.peer.Name, "err", err)
		}
		s.mu.Lock()
		s.in.busy = false
		s.mu.Unlock()
		signal(s.in.moved)
		s.wantAck()
	}
}
