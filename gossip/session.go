package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var errPeerGone = errors.New("gossip: peer left the cluster")

func errProto(v uint8) error {
	return fmt.Errorf("%w: protocol version %d, want %d", ErrHandshake, v, protocolVersion)
}

// maxPendingHandshakes bounds accepted connections that have not finished
// their handshake; more are closed at once (counted).
const maxPendingHandshakes = 64

// maxWindow caps the sync window a requester may ask for.
const maxWindow = 64

// session is one established data stream. Each has a reader goroutine and a
// writer goroutine. Replies go back on the stream their request came on:
// acknowledgements of batches, sync data for a sync request, credits for
// sync data. The reader never writes to the connection (a reader blocked on
// a write while the peer's reader is blocked too would deadlock); it queues
// control frames for the writer instead.
type session struct {
	g        *Gossip
	peer     Peer
	conn     net.Conn
	outbound bool // we dialed it (it carries our pushes and our pulls)
	res      handshakeResult
	fr       frameReader
	fw       frameWriter
	bw       *bufio.Writer // frames written together go out in one write
	peerMax  int           // largest frame the peer accepts

	ctx        context.Context // canceled when the session closes
	cancel     context.CancelFunc
	done       chan struct{} // closed when both loops have exited and state is cleaned up
	writerDone chan struct{}
	wake       chan struct{} // capacity 1: control frames are queued
	data       chan *chunk   // sync data from Serve goroutines to the writer (unbuffered: back-pressure)
	link       *link         // outbound: the queue the writer drains

	closeOnce sync.Once

	// Control frames waiting for the writer. Each list is bounded by the
	// protocol: one request/cancel per pull, one end per serve, one credit
	// counter per pull, flags for the rest.
	mu        sync.Mutex
	closed    bool
	err       error
	ackWanted bool
	hint      bool
	bye       chan struct{} // non-nil: write a bye frame, then close it
	credits   map[uint64]uint64
	requests  []syncRequest
	ends      []syncEnd
	cancels   []uint64
	nextID    uint64
	pulls     map[uint64]*pull  // our requests on this stream
	serves    map[uint64]*serve // the peer's requests on this stream
}

type syncRequest struct {
	id, window uint64
	digest     []byte
}

type syncEnd struct {
	id     uint64
	status uint8
	msg    string
}

type chunk struct {
	body []byte
	done chan error // capacity 1
}

// dial opens a data stream to peer and runs the client handshake.
func (g *Gossip) dial(ctx context.Context, p Peer) (*session, error) {
	if p.DataAddr == "" {
		return nil, fmt.Errorf("gossip: no data address for %q yet", p.Name)
	}
	if f := g.cfg.Faults; f != nil && f.blocked(g.cfg.Name, p.Name) {
		return nil, fmt.Errorf("gossip: dial %q: %w", p.Name, errFaultBlocked)
	}
	d := net.Dialer{Timeout: g.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", p.DataAddr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(g.cfg.DialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	res, err := clientHandshake(conn, g.handshakeParams())
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil && res.peer != p.Name {
		err = fmt.Errorf("%w: dialed %q at %s, reached %q", ErrHandshake, p.Name, p.DataAddr, res.peer)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return g.newSession(conn, p, res, true)
}

// acceptLoop accepts data streams until the listener is closed.
func (g *Gossip) acceptLoop() {
	defer g.wg.Done()
	var pending atomic.Int32
	delay := time.Duration(0)
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			if g.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("gossip: accept failed", "err", err, "retry", delay)
			if !waitCtx(g.ctx, delay) {
				return
			}
			continue
		}
		delay = 0
		if pending.Add(1) > maxPendingHandshakes {
			pending.Add(-1)
			_ = conn.Close()
			g.stats.reject(rejectOverload)
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.accept(conn, &pending)
		}()
	}
}

// accept runs the server handshake on an accepted connection.
func (g *Gossip) accept(conn net.Conn, pending *atomic.Int32) {
	_ = conn.SetDeadline(time.Now().Add(g.cfg.DialTimeout))
	stop := context.AfterFunc(g.ctx, func() { _ = conn.Close() })
	res, err := serverHandshake(conn, g.handshakeParams())
	stop()
	pending.Add(-1)
	if err != nil {
		_ = conn.Close()
		reason := rejectHandshake
		var rj *rejectError
		switch {
		case errors.As(err, &rj) && rj.status == hsClosing:
			return
		case errors.As(err, &rj) && rj.status == hsVersion:
			reason = rejectVersion
		case errors.As(err, &rj) && rj.status == hsLabel:
			reason = rejectLabel
		case errors.As(err, &rj) && rj.status == hsName:
			reason = rejectName
		case errors.Is(err, ErrAuth):
			reason = rejectAuth
		}
		g.stats.reject(reason)
		g.log.Warn("gossip: data stream refused", "remote", conn.RemoteAddr().String(), "reason", rejectNames[reason], "err", err)
		return
	}
	if f := g.cfg.Faults; f != nil && f.blocked(res.peer, g.cfg.Name) {
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s, err := g.newSession(conn, g.peer(res.peer), res, false)
	if err != nil {
		_ = conn.Close()
		return
	}
	// A peer keeps one stream to us: older ones from it are half-open leftovers.
	g.mu.RLock()
	var stale []*session
	for o := range g.sessions {
		if o != s && !o.outbound && o.peer.Name == s.peer.Name {
			stale = append(stale, o)
		}
	}
	g.mu.RUnlock()
	for _, o := range stale {
		o.close(errors.New("gossip: replaced by a newer stream"))
	}
	s.start(nil)
}

func (g *Gossip) newSession(conn net.Conn, p Peer, res handshakeResult, outbound bool) (*session, error) {
	s := &session{
		g:          g,
		peer:       p,
		conn:       conn,
		outbound:   outbound,
		res:        res,
		peerMax:    int(min(uint64(res.maxFrame), uint64(g.cfg.MaxFrameBytes))),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		wake:       make(chan struct{}, 1),
		data:       make(chan *chunk),
		credits:    make(map[uint64]uint64),
		pulls:      make(map[uint64]*pull),
		serves:     make(map[uint64]*serve),
	}
	s.ctx, s.cancel = context.WithCancel(g.ctx)
	s.fr = frameReader{r: bufio.NewReaderSize(conn, 64<<10), aead: res.recv, max: g.cfg.MaxFrameBytes + sealOverhead}
	s.bw = bufio.NewWriterSize(conn, 64<<10)
	s.fw = frameWriter{w: s.bw, aead: res.send}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing.Load() {
		s.cancel()
		return nil, ErrClosed
	}
	g.sessions[s] = struct{}{}
	g.stats.sessions.Add(1)
	return s, nil
}

// start runs the session's loops; l is the link whose queue it drains (nil
// for inbound sessions).
func (s *session) start(l *link) {
	s.link = l
	s.g.wg.Add(2)
	go s.writeLoop()
	go s.readLoop()
}

// close ends the session (idempotent): the context is canceled and the
// connection closed, which stops both loops.
func (s *session) close(err error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed, s.err = true, err
		s.mu.Unlock()
		s.cancel()
		_ = s.conn.Close()
	})
}

func (s *session) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *session) queueHint() {
	s.mu.Lock()
	s.hint = true
	s.mu.Unlock()
	s.kick()
}

func (s *session) wantAck() {
	s.mu.Lock()
	s.ackWanted = true
	s.mu.Unlock()
	s.kick()
}

// finish runs when the reader exits: it waits for the writer, then fails
// what was waiting on this stream.
func (s *session) finish() {
	s.close(errPeerGone)
	<-s.writerDone
	s.g.mu.Lock()
	delete(s.g.sessions, s)
	s.g.mu.Unlock()
	s.g.stats.sessions.Add(-1)
	s.mu.Lock()
	pulls := s.pulls
	s.pulls = map[uint64]*pull{}
	if s.bye != nil {
		close(s.bye)
		s.bye = nil
	}
	s.mu.Unlock()
	for _, p := range pulls {
		p.finish(fmt.Errorf("%w: stream closed", ErrNotConnected))
	}
	close(s.done)
}

func (s *session) readLoop() {
	defer s.g.wg.Done()
	defer s.finish()
	for {
		t, body, wire, err := s.fr.next()
		if err == nil {
			s.g.stats.bytesIn[t].Add(uint64(wire))
			var f frame
			if f, err = decodeFrame(t, body); err == nil {
				err = s.handle(f)
			}
		}
		if err != nil {
			if errors.Is(err, ErrBadFrame) {
				s.g.stats.reject(rejectFrame)
				s.g.log.Warn("gossip: bad frame, closing data stream", "peer", s.peer.Name, "err", err)
			} else if s.ctx.Err() == nil && !isClosedConn(err) {
				s.g.log.Debug("gossip: data stream read failed", "peer", s.peer.Name, "err", err)
			}
			s.close(err)
			return
		}
	}
}

// handle acts on one frame from the peer. An error closes the stream.
func (s *session) handle(f frame) error {
	g := s.g
	switch f.typ {
	case frameBatch:
		g.stats.payloadsIn[SourcePush].Add(uint64(len(f.payloads)))
		if err := g.h.Deliver(s.peer, SourcePush, f.payloads); err != nil {
			g.stats.deliverErrors.Add(1)
			g.log.Warn("gossip: delivering pushed payloads failed", "peer", s.peer.Name, "err", err)
		}
		s.wantAck()
	case frameDigest:
		g.h.PeerDigest(s.peer, f.data)
	case frameSyncRequest:
		return s.startServe(f)
	case frameSyncData:
		s.onSyncData(f)
	case frameSyncCredit:
		s.mu.Lock()
		if sv := s.serves[f.id]; sv != nil {
			sv.credit = min(sv.credit+f.n, maxWindow)
			sv.signal()
		}
		s.mu.Unlock()
	case frameSyncEnd:
		s.mu.Lock()
		p := s.pulls[f.id]
		delete(s.pulls, f.id)
		s.mu.Unlock()
		if p != nil {
			var err error
			switch f.status {
			case syncBusy:
				err = fmt.Errorf("%w: peer busy", ErrSyncRefused)
			case syncFailed:
				err = fmt.Errorf("%w: %s", ErrSyncRefused, f.data)
			case syncClosing:
				err = fmt.Errorf("%w: peer shutting down", ErrSyncRefused)
			}
			p.finish(err)
		}
	case frameSyncCancel:
		s.mu.Lock()
		if sv := s.serves[f.id]; sv != nil {
			sv.cancel()
		}
		s.mu.Unlock()
	case frameHint:
		g.RequestSync(s.peer.Name)
	case frameBye:
		g.markLeaving(s.peer.Name)
	}
	return nil
}

// writeLoop writes every frame of the session: control frames first, then
// sync data chunks and pushed batches.
func (s *session) writeLoop() {
	defer s.g.wg.Done()
	defer close(s.writerDone)
	cfg := s.g.cfg
	var linkSignal <-chan struct{}
	if s.link != nil {
		linkSignal = s.link.signal
	}
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	flushArmed, draining := false, false
	ack := time.NewTimer(time.Hour)
	ack.Stop()
	ackArmed := false
	var lastAck time.Time
	for {
		if err := s.writeControl(); err != nil {
			s.fail(err)
			return
		}
		// Acknowledge delivered batches, at most once per AckInterval.
		s.mu.Lock()
		wantAck := s.ackWanted
		s.mu.Unlock()
		if wantAck && !ackArmed {
			if wait := cfg.AckInterval - time.Since(lastAck); wait > 0 {
				ack.Reset(wait)
				ackArmed = true
			} else {
				s.mu.Lock()
				s.ackWanted = false
				s.mu.Unlock()
				lastAck = time.Now()
				if err := s.write(frameDigest, s.g.h.Digest()); err != nil {
					s.fail(err)
					return
				}
				continue
			}
		}
		if s.link != nil {
			n, bytes, lost := s.link.pending()
			switch {
			case n > 0 && (draining || bytes >= cfg.MaxBatchBytes || cfg.FlushInterval == 0):
				// Batch: collect for FlushInterval after the queue wakes
				// up, then write back to back until it is empty.
				draining = true
				if flushArmed {
					flush.Stop()
					flushArmed = false
				}
				if err := s.writeBatch(); err != nil {
					s.link.markLost()
					s.fail(err)
					return
				}
				// A steady stream of pushes must not starve sync data.
				select {
				case c := <-s.data:
					if err := s.writeChunk(c); err != nil {
						return
					}
				default:
				}
				continue
			case n > 0 && !flushArmed:
				flush.Reset(cfg.FlushInterval)
				flushArmed = true
			case n == 0:
				draining = false
				if lost && s.link.takeLost() {
					if err := s.write(frameHint, nil); err != nil {
						s.fail(err)
						return
					}
					continue
				}
			}
		}
		// Nothing more to write right now: what was written since the
		// last wait goes out in one write.
		if s.bw.Buffered() > 0 {
			_ = s.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if err := s.bw.Flush(); err != nil {
				s.fail(err)
				return
			}
		}
		select {
		case <-s.wake:
		case <-linkSignal:
		case <-flush.C:
			flushArmed, draining = false, true
		case <-ack.C:
			ackArmed = false
			lastAck = time.Time{}
		case c := <-s.data:
			if err := s.writeChunk(c); err != nil {
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// writeChunk writes a sync data chunk for a Serve goroutine; on error the
// session is failed.
func (s *session) writeChunk(c *chunk) error {
	err := s.write(frameSyncData, c.body)
	c.done <- err
	if err != nil {
		s.fail(err)
	}
	return err
}

func (s *session) fail(err error) {
	if s.ctx.Err() == nil && !isClosedConn(err) {
		s.g.log.Debug("gossip: data stream write failed", "peer", s.peer.Name, "err", err)
	}
	s.close(err)
}

// write writes one frame with the given body.
func (s *session) write(t frameType, body []byte) error {
	b := s.fw.start(t)
	b = append(b, body...)
	return s.send(t, b)
}

func (s *session) send(t frameType, b []byte) error {
	if len(b)-frameLenSize > s.peerMax-sealOverhead {
		return fmt.Errorf("%w: %s frame of %d bytes, peer accepts %d", ErrTooLarge, t, len(b), s.peerMax)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.g.cfg.WriteTimeout))
	n, err := s.fw.finish(b)
	s.g.stats.bytesOut[t].Add(uint64(n))
	return err
}

// writeControl writes the queued control frames.
func (s *session) writeControl() error {
	s.mu.Lock()
	reqs, ends, cancels, hint, bye := s.requests, s.ends, s.cancels, s.hint, s.bye
	s.requests, s.ends, s.cancels, s.hint, s.bye = nil, nil, nil, false, nil
	var credits map[uint64]uint64
	if len(s.credits) > 0 {
		credits = s.credits
		s.credits = make(map[uint64]uint64)
	}
	s.mu.Unlock()
	for _, r := range reqs {
		if err := s.send(frameSyncRequest, appendSyncRequest(s.fw.start(frameSyncRequest), r.id, r.window, r.digest)); err != nil {
			return err
		}
	}
	for id, n := range credits {
		if err := s.send(frameSyncCredit, appendSyncCredit(s.fw.start(frameSyncCredit), id, n)); err != nil {
			return err
		}
	}
	for _, id := range cancels {
		if err := s.send(frameSyncCancel, appendSyncCancel(s.fw.start(frameSyncCancel), id)); err != nil {
			return err
		}
	}
	for _, e := range ends {
		if err := s.send(frameSyncEnd, appendSyncEnd(s.fw.start(frameSyncEnd), e.id, e.status, e.msg)); err != nil {
			return err
		}
	}
	if hint {
		if err := s.write(frameHint, nil); err != nil {
			return err
		}
	}
	if bye != nil {
		err := s.write(frameBye, nil)
		close(bye)
		return err
	}
	return nil
}

// sayBye queues a bye frame and returns a channel closed once it is written
// (or the session is gone).
func (s *session) sayBye() <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	if s.closed || s.bye != nil {
		s.mu.Unlock()
		close(ch)
		return ch
	}
	s.bye = ch
	s.mu.Unlock()
	s.kick()
	return ch
}

// writeBatch writes one batch from the link's queue.
func (s *session) writeBatch() error {
	limit := min(s.g.cfg.MaxBatchBytes, s.peerMax-frameOverhead)
	ps := s.link.take(limit)
	// A payload the peer's frame limit cannot carry is dropped for it;
	// anti-entropy cannot carry it either, so this is logged loudly.
	kept := ps[:0]
	for _, p := range ps {
		if len(p) > s.peerMax-frameOverhead {
			s.g.stats.queueDropped.Add(1)
			s.g.log.Error("gossip: payload larger than the peer's frame limit", "peer", s.peer.Name, "bytes", len(p), "limit", s.peerMax)
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return nil
	}
	if err := s.send(frameBatch, appendPayloads(s.fw.start(frameBatch), kept)); err != nil {
		return err
	}
	s.g.stats.payloadsOut[SourcePush].Add(uint64(len(kept)))
	s.g.stats.batchSize.Observe(float64(len(kept)))
	return nil
}

// pull is one of our anti-entropy requests on this stream.
type pull struct {
	id       uint64
	done     chan struct{}
	progress chan struct{} // capacity 1: a chunk arrived
	once     sync.Once
	err      error
}

func (p *pull) finish(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
	})
}

// pull asks the peer for what we lack and waits until it has all been
// delivered.
func (s *session) pull(ctx context.Context) error {
	var digest []byte
	if pd, ok := s.g.h.(PullDigester); ok {
		digest = pd.PullDigest(s.peer)
	} else {
		digest = s.g.h.Digest()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrNotConnected
	}
	s.nextID++
	p := &pull{id: s.nextID, done: make(chan struct{}), progress: make(chan struct{}, 1)}
	s.pulls[p.id] = p
	s.requests = append(s.requests, syncRequest{id: p.id, window: uint64(s.g.cfg.SyncWindow), digest: digest})
	s.mu.Unlock()
	s.kick()
	idle := time.NewTimer(s.g.cfg.SyncIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-p.done:
			return p.err
		case <-p.progress:
			idle.Reset(s.g.cfg.SyncIdleTimeout)
		case <-idle.C:
			err := fmt.Errorf("%w: no data for %v", ErrSyncRefused, s.g.cfg.SyncIdleTimeout)
			s.abort(p, err)
			return err
		case <-ctx.Done():
			s.abort(p, ctx.Err())
			return ctx.Err()
		}
	}
}

// abort gives up on a pull and tells the peer to stop serving it.
func (s *session) abort(p *pull, err error) {
	s.mu.Lock()
	if s.pulls[p.id] == p {
		delete(s.pulls, p.id)
		delete(s.credits, p.id)
		s.cancels = append(s.cancels, p.id)
	}
	s.mu.Unlock()
	p.finish(err)
	s.kick()
}

func (s *session) onSyncData(f frame) {
	s.mu.Lock()
	p := s.pulls[f.id]
	s.mu.Unlock()
	if p == nil {
		return // canceled: the peer stops on our cancel frame
	}
	s.g.stats.payloadsIn[SourceSync].Add(uint64(len(f.payloads)))
	if err := s.g.h.Deliver(s.peer, SourceSync, f.payloads); err != nil {
		s.g.stats.deliverErrors.Add(1)
		s.abort(p, fmt.Errorf("gossip: delivering sync data: %w", err))
		return
	}
	s.mu.Lock()
	if s.pulls[f.id] == p {
		s.credits[f.id]++
	}
	s.mu.Unlock()
	s.kick()
	select {
	case p.progress <- struct{}{}:
	default:
	}
}

// serve is one of the peer's anti-entropy requests being answered.
type serve struct {
	id       uint64
	ctx      context.Context
	cancel   context.CancelFunc
	credit   uint64        // chunks we may still send; guarded by session.mu
	creditCh chan struct{} // capacity 1
}

func (sv *serve) signal() {
	select {
	case sv.creditCh <- struct{}{}:
	default:
	}
}

func (s *session) startServe(f frame) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.serves[f.id] != nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: duplicate sync request %d", ErrBadFrame, f.id)
	}
	if int(s.g.serves.Add(1)) > s.g.cfg.MaxConcurrentServes {
		s.g.serves.Add(-1)
		s.ends = append(s.ends, syncEnd{id: f.id, status: syncBusy})
		s.mu.Unlock()
		s.kick()
		return nil
	}
	sv := &serve{id: f.id, credit: min(f.n, maxWindow), creditCh: make(chan struct{}, 1)}
	sv.ctx, sv.cancel = context.WithCancel(s.ctx)
	s.serves[f.id] = sv
	s.mu.Unlock()
	s.g.wg.Add(1)
	go s.runServe(sv, f.data)
	return nil
}

func (s *session) runServe(sv *serve, digest []byte) {
	g := s.g
	defer g.wg.Done()
	defer g.serves.Add(-1)
	defer sv.cancel()
	g.h.PeerDigest(s.peer, slices.Clone(digest))
	w := &SyncWriter{s: s, sv: sv, limit: min(g.cfg.SyncChunkBytes, s.peerMax-frameOverhead)}
	err := g.h.Serve(sv.ctx, s.peer, digest, w)
	if err == nil {
		err = w.Flush()
	}
	end := syncEnd{id: sv.id, status: syncOK}
	switch {
	case err == nil:
		g.stats.serves[0].Add(1)
	case g.closing.Load():
		end.status, end.msg = syncClosing, "closing"
		g.stats.serves[1].Add(1)
	default:
		end.status, end.msg = syncFailed, err.Error()
		g.stats.serves[1].Add(1)
		if sv.ctx.Err() == nil {
			g.log.Warn("gossip: serving sync request failed", "peer", s.peer.Name, "err", err)
		}
	}
	s.mu.Lock()
	delete(s.serves, sv.id)
	if !s.closed {
		s.ends = append(s.ends, end)
	}
	s.mu.Unlock()
	s.kick()
}

// SyncWriter carries a Handler.Serve answer to the requesting peer, in
// chunks of about Config.SyncChunkBytes, at most SyncWindow of them in flight:
// Write blocks while the peer has not consumed earlier chunks. It is not
// safe for concurrent use.
type SyncWriter struct {
	s       *session
	sv      *serve
	limit   int
	pending [][]byte
	size    int
}

// Write queues p for the peer and sends a chunk when one is full. It takes
// ownership of p: the caller must not modify it afterwards. It returns
// ErrTooLarge for a payload above Gossip.MaxPayload or the peer's limit, and
// the context's error once the request is canceled.
func (w *SyncWriter) Write(p []byte) error {
	if len(p) > w.s.peerMax-frameOverhead {
		return fmt.Errorf("%w: %d bytes, peer accepts %d", ErrTooLarge, len(p), w.s.peerMax-frameOverhead)
	}
	need := uvarintLen(uint64(len(p))) + len(p)
	if len(w.pending) > 0 && w.size+need > w.limit {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.pending = append(w.pending, p)
	w.size += need
	return nil
}

// Flush sends what Write has queued as one chunk, waiting for the window.
func (w *SyncWriter) Flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	s, sv := w.s, w.sv
	for {
		s.mu.Lock()
		if sv.credit > 0 {
			sv.credit--
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		select {
		case <-sv.creditCh:
		case <-sv.ctx.Done():
			return sv.ctx.Err()
		}
	}
	body := appendPayloads(binary.AppendUvarint(make([]byte, 0, w.size+2*binary.MaxVarintLen64), sv.id), w.pending)
	c := &chunk{body: body, done: make(chan error, 1)}
	select {
	case s.data <- c:
	case <-sv.ctx.Done():
		return sv.ctx.Err()
	}
	select {
	case err := <-c.done:
		if err != nil {
			return err
		}
	case <-sv.ctx.Done():
		return sv.ctx.Err()
	}
	s.g.stats.payloadsOut[SourceSync].Add(uint64(len(w.pending)))
	w.pending, w.size = nil, 0
	return nil
}
