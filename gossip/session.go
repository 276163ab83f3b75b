package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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

// maxWindow caps the sync window a requester may ask for.
const maxWindow = 64

// maxQueuedEnds bounds the sync end frames waiting for the writer. A peer
// gets one per request it makes, and has few in flight; a peer that queues
// more (requests sent faster than it reads our answers) is cut off.
const maxQueuedEnds = 16

// A stream has one request served at a time; maxWaitingServes more may
// wait their turn, with at most maxWaitingBytes of digests between them.
// More are refused as busy.
const (
	maxWaitingServes = 4
	maxWaitingBytes  = 4 << 20
)

// errFlood reports a peer that queued more control frames than the
// protocol allows.
var errFlood = errors.New("gossip: peer floods the stream with requests")

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
	addrKey    string        // inbound: the source address (addrKey), for the per-address bound
	lastRecv   atomic.Int64  // unix nanoseconds of the last frame received (keepalive)
	in         inbox         // pushed batches waiting for the deliverer

	closeOnce sync.Once

	// Control frames waiting for the writer. Each list is bounded by the
	// protocol: one request/cancel per pull, one end per serve, one credit
	// counter per pull, flags for the rest.
	mu        sync.Mutex
	closed    bool
	err       error
	ackWanted bool
	hint      bool
	pong      bool          // a ping arrived: answer it
	probeNow  bool          // ping the peer now (someone else claims its name)
	bye       chan struct{} // non-nil: write a bye frame, then close it
	credits   map[uint64]uint64
	requests  []syncRequest
	ends      []syncEnd
	cancels   []uint64
	nextID    uint64
	pulls     map[uint64]*pull  // our requests on this stream
	serves    map[uint64]*serve // the peer's requests on this stream: serving and waiting
	serving   *serve            // the one being served (it holds a node-wide slot)
	waiting   []*serve          // the others, in order (maxWaitingServes)
	waitBytes int               // their digests' bytes (maxWaitingBytes)
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
	if g.localIP != nil {
		// Leave from our bound address (peers check the source), unless
		// the peer is of the other address family.
		if host, _, err := net.SplitHostPort(p.DataAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil && (ip.To4() == nil) == (g.localIP.To4() == nil) {
				d.LocalAddr = &net.TCPAddr{IP: g.localIP}
			}
		}
	}
	conn, err := d.DialContext(ctx, "tcp", p.DataAddr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
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
	sess := g.newSession(conn, p, res, true)
	if err := g.register(sess); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return sess, nil
}

// newSession builds a session on an established stream; register adds it
// to the tables, start runs it.
func (g *Gossip) newSession(conn net.Conn, p Peer, res handshakeResult, outbound bool) *session {
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
		in:         inbox{ready: make(chan struct{}, 1), moved: make(chan struct{}, 1), done: make(chan struct{})},
		credits:    make(map[uint64]uint64),
		pulls:      make(map[uint64]*pull),
		serves:     make(map[uint64]*serve),
	}
	s.ctx, s.cancel = context.WithCancel(g.ctx)
	s.fr = frameReader{r: bufio.NewReaderSize(conn, 64<<10), cs: res.recv, max: g.cfg.MaxFrameBytes + sealOverhead}
	s.bw = bufio.NewWriterSize(conn, 64<<10)
	s.fw = frameWriter{w: s.bw, cs: res.send}
	s.lastRecv.Store(time.Now().UnixNano())
	return s
}

// start runs the session's loops; l is the link whose queue it drains (nil
// for inbound sessions).
func (s *session) start(l *link) {
	s.link = l
	s.g.wg.Add(3)
	go s.writeLoop()
	go s.deliverLoop()
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

// probe makes the writer ping the peer now (unless a ping is outstanding):
// a stream whose peer is gone is then closed within PingTimeout.
func (s *session) probe() {
	s.mu.Lock()
	s.probeNow = true
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
	<-s.in.done
	s.g.unregister(s)
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
			s.lastRecv.Store(time.Now().UnixNano())
			s.g.stats.bytesIn[t].Add(uint64(wire))
			var f frame
			if f, err = decodeFrame(t, body); err == nil {
				err = s.handle(f)
			}
		}
		if err != nil {
			if errors.Is(err, ErrBadFrame) || errors.Is(err, errFlood) {
				reason := rejectFrame
				if errors.Is(err, errFlood) {
					reason = rejectFlood
				}
				s.g.stats.reject(reason)
				s.g.logs.logf(slog.LevelWarn, s.peer.Name, rejectNames[reason], "gossip: closing data stream", "peer", s.peer.Name, "err", err)
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
		return s.queueBatch(f.payloads)
	case frameDigest:
		g.h.PeerDigest(s.peer, f.data)
	case frameSyncRequest:
		return s.startServe(f)
	case frameSyncData:
		// Deliver runs for one stream at a time, and sync data follows
		// the pushes that came before it.
		if err := s.waitDelivered(); err != nil {
			return err
		}
		s.onSyncData(f)
	case frameSyncCredit:
		s.mu.Lock()
		if sv := s.serves[f.id]; sv != nil {
			sv.credit = min(sv.credit+f.n, maxWindow)
			sv.signal()
		}
		s.mu.Unlock()
	case frameSyncEnd:
		if err := s.waitDelivered(); err != nil {
			return err
		}
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
			sv.cancel(errors.New("gossip: requester canceled"))
			if i := slices.Index(s.waiting, sv); i >= 0 {
				s.waiting = slices.Delete(s.waiting, i, i+1)
				s.waitBytes -= len(sv.digest)
				delete(s.serves, sv.id)
			}
		}
		s.mu.Unlock()
	case frameHint:
		g.RequestSync(s.peer.Name)
	case frameBye:
		g.markLeaving(s.peer.Name)
	case framePing:
		s.mu.Lock()
		s.pong = true
		s.mu.Unlock()
		s.kick()
	case framePong:
		// Its arrival is what counts (lastRecv).
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
	ka := keepalive{s: s, timer: time.NewTimer(cfg.IdleTimeout)}
	defer ka.timer.Stop()
	for {
		if err := s.writeControl(); err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		probe := s.probeNow
		s.probeNow = false
		s.mu.Unlock()
		if probe {
			if err := ka.ping(); err != nil {
				s.fail(err)
				return
			}
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
		case <-ka.timer.C:
			if err := ka.check(); err != nil {
				s.fail(err)
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// keepalive is the writer's side of idle detection: a stream on which
// nothing arrived for IdleTimeout is sent a ping, and closed if nothing
// arrives within PingTimeout of it. Anything that arrives counts, not only
// the pong. Owned by the writer goroutine.
type keepalive struct {
	s        *session
	timer    *time.Timer
	pingSent time.Time // zero: no ping outstanding
}

// errIdle closes a stream whose peer did not answer a ping.
var errIdle = errors.New("gossip: keepalive ping not answered")

// ping sends a ping now, unless one is outstanding.
func (k *keepalive) ping() error {
	if !k.pingSent.IsZero() {
		return nil
	}
	if err := k.s.write(framePing, nil); err != nil {
		return err
	}
	_ = k.s.conn.SetWriteDeadline(time.Now().Add(k.s.g.cfg.WriteTimeout))
	if err := k.s.bw.Flush(); err != nil {
		return err
	}
	k.pingSent = time.Now()
	k.timer.Reset(min(k.s.g.cfg.PingTimeout, k.s.g.cfg.IdleTimeout))
	return nil
}

// check runs when the timer fires: it closes the stream if a ping went
// unanswered, pings if the stream has been idle, and re-arms the timer.
func (k *keepalive) check() error {
	cfg := k.s.g.cfg
	now := time.Now()
	last := time.Unix(0, k.s.lastRecv.Load())
	if !k.pingSent.IsZero() {
		if !last.After(k.pingSent) {
			if wait := k.pingSent.Add(cfg.PingTimeout).Sub(now); wait > 0 {
				// Look again by then, or sooner (the answer re-arms the
				// idle wait).
				k.timer.Reset(min(wait, cfg.IdleTimeout))
				return nil
			}
			g := k.s.g
			g.stats.idleClosed.Add(1)
			g.log.Info("gossip: closing data stream: keepalive ping not answered", "peer", k.s.peer.Name,
				"idle", now.Sub(last).Round(time.Millisecond), "ping_timeout", cfg.PingTimeout)
			k.s.close(errIdle)
			return errIdle
		}
		k.pingSent = time.Time{}
	}
	if idle := now.Sub(last); idle < cfg.IdleTimeout {
		k.timer.Reset(cfg.IdleTimeout - idle)
		return nil
	}
	return k.ping()
}

// writeChunk writes a sync data chunk for a Serve goroutine; on error the
// session is failed.
func (s *session) writeChunk(c *chunk) error {
	// Control frames queued before the chunk go first: the end of a serve
	// reaches the peer before the data of the next one on this stream.
	err := s.writeControl()
	if err == nil {
		err = s.write(frameSyncData, c.body)
	}
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
	reqs, ends, cancels, hint, bye, pong := s.requests, s.ends, s.cancels, s.hint, s.bye, s.pong
	s.requests, s.ends, s.cancels, s.hint, s.bye, s.pong = nil, nil, nil, false, nil, false
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
	if pong {
		if err := s.write(framePong, nil); err != nil {
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
	digest   []byte // the requester's (aliases its frame)
	ctx      context.Context
	cancel   context.CancelCauseFunc
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
	if n := len(s.ends); n >= maxQueuedEnds {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d sync answers unread", errFlood, n)
	}
	sv := &serve{id: f.id, credit: min(f.n, maxWindow), creditCh: make(chan struct{}, 1), digest: f.data}
	sv.ctx, sv.cancel = context.WithCancelCause(s.ctx)
	// One request per stream is served at a time, so that one peer cannot
	// hold every node-wide slot; a few more wait their turn.
	switch {
	case s.serving != nil && len(s.waiting) < maxWaitingServes && s.waitBytes+len(f.data) <= maxWaitingBytes:
		s.serves[f.id] = sv
		s.waiting = append(s.waiting, sv)
		s.waitBytes += len(f.data)
	case s.serving == nil && s.g.takeServeSlot():
		s.serves[f.id] = sv
		s.serving = sv
		s.g.wg.Add(1)
		go s.runServe(sv)
	default:
		sv.cancel(nil)
		s.ends = append(s.ends, syncEnd{id: f.id, status: syncBusy})
		s.mu.Unlock()
		s.kick()
		return nil
	}
	s.mu.Unlock()
	return nil
}

// takeServeSlot takes one of the node's MaxConcurrentServes slots.
func (g *Gossip) takeServeSlot() bool {
	if int(g.serves.Add(1)) > g.cfg.MaxConcurrentServes {
		g.serves.Add(-1)
		return false
	}
	return true
}

// runServe answers one request, then hands the stream's slot to the next
// request waiting on it, or gives it back.
func (s *session) runServe(sv *serve) {
	g := s.g
	defer g.wg.Done()
	defer sv.cancel(nil)
	g.h.PeerDigest(s.peer, slices.Clone(sv.digest))
	w := &SyncWriter{s: s, sv: sv, limit: min(g.cfg.SyncChunkBytes, s.peerMax-frameOverhead)}
	err := g.h.Serve(sv.ctx, s.peer, sv.digest, w)
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
		switch cause := context.Cause(sv.ctx); {
		case errors.Is(cause, errNoCredit):
			g.logs.logf(slog.LevelWarn, s.peer.Name, "serve_credit_timeout", "gossip: serve canceled", "peer", s.peer.Name, "err", cause)
		case sv.ctx.Err() == nil:
			g.log.Warn("gossip: serving sync request failed", "peer", s.peer.Name, "err", err)
		}
	}
	s.mu.Lock()
	delete(s.serves, sv.id)
	if !s.closed {
		s.ends = append(s.ends, end)
	}
	s.serving = nil
	if !s.closed && len(s.waiting) > 0 {
		s.serving = s.waiting[0]
		s.waiting = slices.Delete(s.waiting, 0, 1)
		s.waitBytes -= len(s.serving.digest)
	}
	next := s.serving
	s.mu.Unlock()
	if next != nil {
		g.wg.Add(1) // while this goroutine still counts: Close cannot have returned
		go s.runServe(next)
	} else {
		g.serves.Add(-1)
	}
	s.kick()
}

// errNoCredit cancels a serve whose requester stopped crediting chunks.
var errNoCredit = errors.New("gossip: requester stopped consuming sync data")

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
	var noCredit *time.Timer
	for {
		s.mu.Lock()
		if sv.credit > 0 {
			sv.credit--
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		if noCredit == nil {
			noCredit = time.NewTimer(s.g.cfg.ServeCreditTimeout)
			defer noCredit.Stop()
		}
		select {
		case <-sv.creditCh:
		case <-noCredit.C:
			// The requester stopped consuming: free the slot.
			s.g.stats.serveTimeouts.Add(1)
			err := fmt.Errorf("%w: no credit for %v", errNoCredit, s.g.cfg.ServeCreditTimeout)
			sv.cancel(err)
			return err
		case <-sv.ctx.Done():
			return context.Cause(sv.ctx)
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
