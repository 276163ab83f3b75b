package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// The accepting side of data streams: who may open one, and how much an
// address that is not a member can make us hold (doc.go, "Limits").
//
// An accepted connection is pending until its handshake is over: it holds
// a slot in the admission table (per source address and in all) for at
// most HandshakeTimeout, and nothing larger than a hello is read or
// allocated for it. The handshake refuses, in this order: another protocol
// version, a source address where no live member is, a key we do not hold,
// another label, a name that is no live member at that address, a name
// that already has a live stream, and streams beyond the session bounds.

// addrKey is the unit of per-address limits: an IPv4 address, or the /64
// of an IPv6 address (one host usually holds a whole /64).
func addrKey(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	if ip == nil {
		return "unknown"
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func remoteIP(c net.Conn) net.IP {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return nil
}

// pendingConn is an accepted connection in its handshake.
type pendingConn struct {
	conn net.Conn
	key  string
}

// admission tracks pending handshakes by source address.
type admission struct {
	mu     sync.Mutex
	byAddr map[string][]*pendingConn // oldest first
	total  int
}

// enter admits conn from the address key, or returns nil when that address
// has maxPer handshakes pending. At maxTotal, the oldest pending handshake
// of the address with the most is evicted to make room: the caller closes
// it.
func (a *admission) enter(conn net.Conn, key string, maxTotal, maxPer int) (pc, evicted *pendingConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byAddr == nil {
		a.byAddr = make(map[string][]*pendingConn)
	}
	if len(a.byAddr[key]) >= maxPer {
		return nil, nil
	}
	if a.total >= maxTotal {
		busiest := ""
		for k, l := range a.byAddr {
			if busiest == "" || len(l) > len(a.byAddr[busiest]) {
				busiest = k
			}
		}
		evicted = a.byAddr[busiest][0]
		a.removeLocked(evicted)
	}
	pc = &pendingConn{conn: conn, key: key}
	a.byAddr[key] = append(a.byAddr[key], pc)
	a.total++
	return pc, evicted
}

// leave removes pc; it reports false if pc was evicted.
func (a *admission) leave(pc *pendingConn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.removeLocked(pc)
}

func (a *admission) removeLocked(pc *pendingConn) bool {
	l := a.byAddr[pc.key]
	for i, o := range l {
		if o == pc {
			l = append(l[:i], l[i+1:]...)
			a.total--
			if len(l) == 0 {
				delete(a.byAddr, pc.key)
			} else {
				a.byAddr[pc.key] = l
			}
			return true
		}
	}
	return false
}

// acceptLoop accepts data streams until the listener is closed.
func (g *Gossip) acceptLoop() {
	defer g.wg.Done()
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
		ip := remoteIP(conn)
		key := addrKey(ip)
		pc, evicted := g.adm.enter(conn, key, g.cfg.MaxPendingHandshakes, g.cfg.MaxPendingPerAddr)
		if pc == nil {
			_ = conn.Close()
			g.refused(ip, rejectOverload, fmt.Errorf("%w: %d handshakes pending from %s", ErrHandshake, g.cfg.MaxPendingPerAddr, key))
			continue
		}
		if evicted != nil {
			_ = evicted.conn.Close() // its goroutine counts it
		} else {
			g.stats.pending.Add(1)
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.accept(conn, ip, pc)
		}()
	}
}

// accept runs the server handshake on an accepted connection, and starts
// the session when it succeeds.
func (g *Gossip) accept(conn net.Conn, ip net.IP, pc *pendingConn) {
	_ = conn.SetDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
	stop := context.AfterFunc(g.ctx, func() { _ = conn.Close() })
	p := g.handshakeParams()
	p.precheck = func() error { return g.checkSource(ip) }
	var reserved string
	p.admit = func(name string) error {
		err := g.admit(name, ip, pc)
		if err == nil {
			reserved = name
		}
		return err
	}
	res, err := serverHandshake(conn, p)
	// The name stays reserved until the stream is registered (or not).
	defer g.unreserve(reserved, pc)
	if err != nil {
		closeRefused(conn, err) // Close still cuts its wait short
	}
	stop()
	if !g.adm.leave(pc) {
		// Evicted: the slot went to a newer connection (the pending count
		// with it), and this one is closed.
		_ = conn.Close()
		g.refused(ip, rejectOverload, fmt.Errorf("%w: closed to make room (%d handshakes pending)", ErrHandshake, g.cfg.MaxPendingHandshakes))
		return
	}
	g.stats.pending.Add(-1)
	if err != nil {
		if !g.closing.Load() {
			g.refused(ip, classifyHandshakeError(err), err)
		}
		return
	}
	if f := g.cfg.Faults; f != nil && f.blocked(res.peer, g.cfg.Name) {
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s := g.newSession(conn, g.peer(res.peer), res, false)
	s.addrKey = pc.key
	if err := g.register(s); err != nil {
		_ = conn.Close()
		if !errors.Is(err, ErrClosed) {
			var rj *rejectError
			if errors.As(err, &rj) {
				g.refused(ip, rj.reason, err)
			}
		}
		return
	}
	s.start(nil)
}

// closeRefused closes a connection whose handshake failed. After a
// refusal it first lets the client read it: closing with unread input
// (the rest of a hello we did not read) would send a reset, which may
// destroy the refusal before the client reads it. So it closes our side
// for writing and discards a little input (at most a hello's worth, until
// the handshake deadline) before closing.
func closeRefused(conn net.Conn, err error) {
	var rj *rejectError
	if tc, ok := conn.(*net.TCPConn); ok && errors.As(err, &rj) {
		_ = tc.CloseWrite()
		_, _ = io.CopyN(io.Discard, tc, clientHeaderLen+keyIDLen+2+maxHelloBody)
	}
	_ = conn.Close()
}

// classifyHandshakeError names the reason a handshake failed.
func classifyHandshakeError(err error) int {
	var rj *rejectError
	var ne net.Error
	switch {
	case errors.As(err, &rj):
		return rj.reason
	case errors.As(err, &ne) && ne.Timeout():
		return rejectTimeout
	case errors.Is(err, ErrAuth):
		return rejectAuth
	}
	return rejectHandshake
}

// refused counts a refused data stream and logs it, at most once per
// LogInterval per source address and reason.
func (g *Gossip) refused(ip net.IP, reason int, err error) {
	if reason == rejectClosing {
		return
	}
	g.stats.reject(reason)
	level := slog.LevelWarn
	switch {
	case reason == rejectDuplicate:
		// Also what a peer that reconnects sees until its old stream is
		// found dead.
		level = slog.LevelInfo
	case reason == rejectNotMember && g.isMemberIP(ip):
		// Also a new member whose arrival has not reached us yet.
		level = slog.LevelInfo
	}
	g.logs.logf(level, addrKey(ip), rejectNames[reason], "gossip: data stream refused",
		"remote", ip.String(), "reason", rejectNames[reason], "err", err)
}

// peerAt reports whether ip is one of the member's addresses (memberlist's
// or its data stream's).
func peerAt(p Peer, ip net.IP) bool {
	for _, a := range []string{p.Addr, p.DataAddr} {
		if host, _, err := net.SplitHostPort(a); err == nil {
			if hip := net.ParseIP(host); hip != nil && hip.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// isMemberIP reports whether a live member is at ip.
func (g *Gossip) isMemberIP(ip net.IP) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, e := range g.peers {
		if e.state == StateAlive && peerAt(e.Peer, ip) {
			return true
		}
	}
	return false
}

// checkSource refuses a connection from an address where no live member is,
// before anything beyond the protocol version is read.
func (g *Gossip) checkSource(ip net.IP) error {
	if !g.isMemberIP(ip) {
		return reject(hsNotMember, rejectNotMember, ErrHandshake, "no live member at %s", ip)
	}
	return nil
}

// admit decides whether an authenticated client may open a stream under
// name from ip: name must be a live member at that address with no live
// stream to us, and the session bounds must allow one more. A second
// stream under a name never tears down the first: it is refused, and the
// first is probed (pinged) at once, so a stream whose peer is gone (a
// restarted node's old connection) is closed within PingTimeout and the
// peer's next dial gets in. An admitted name is reserved for pc until its
// handshake ends (unreserve): the server answers before it registers the
// stream, and a simultaneous dial under the name must not be told it is
// in and then be dropped at registration.
func (g *Gossip) admit(name string, ip net.IP, pc *pendingConn) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.peers[name]
	switch {
	case e == nil || e.state != StateAlive:
		return reject(hsNotMember, rejectNotMember, ErrHandshake, "%q is not a live member", name)
	case !peerAt(e.Peer, ip):
		return reject(hsNotMember, rejectNotMember, ErrHandshake, "%q is a member at %s, not at %s", name, e.Addr, ip)
	}
	if err := g.checkInboundLocked(name, pc.key, true); err != nil {
		return err
	}
	if g.admitting[name] != nil {
		return reject(hsDuplicate, rejectDuplicate, ErrHandshake, "a stream from %q is being opened", name)
	}
	g.admitting[name] = pc
	return nil
}

// unreserve ends pc's reservation of name ("": none), if it still holds it.
func (g *Gossip) unreserve(name string, pc *pendingConn) {
	if name == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.admitting[name] == pc {
		delete(g.admitting, name)
	}
}

// checkInboundLocked applies the one-stream-per-name rule and the session
// bounds; g.mu is held (read or write). probe pings the existing stream.
func (g *Gossip) checkInboundLocked(name, key string, probe bool) error {
	if old := g.inbound[name]; old != nil {
		if probe {
			old.probe()
		}
		return reject(hsDuplicate, rejectDuplicate, ErrHandshake, "a stream from %q is open", name)
	}
	if len(g.inbound) >= g.cfg.MaxInboundSessions {
		return reject(hsBusy, rejectSessionLimit, ErrHandshake, "%d inbound streams open", len(g.inbound))
	}
	if g.inboundByAddr[key] >= g.cfg.MaxSessionsPerAddr {
		return reject(hsBusy, rejectSessionLimit, ErrHandshake, "%d inbound streams open from %s", g.inboundByAddr[key], key)
	}
	return nil
}

// register adds a session to the tables. An inbound session is checked
// again against the rules admit applied (another stream may have been
// established meanwhile).
func (g *Gossip) register(s *session) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing.Load() {
		s.cancel()
		return ErrClosed
	}
	if !s.outbound {
		if err := g.checkInboundLocked(s.peer.Name, s.addrKey, false); err != nil {
			s.cancel()
			return err
		}
		g.inbound[s.peer.Name] = s
		g.inboundByAddr[s.addrKey]++
	}
	g.sessions[s] = struct{}{}
	g.stats.sessions.Add(1)
	return nil
}

// unregister removes a finished session from the tables.
func (g *Gossip) unregister(s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.sessions[s]; !ok {
		return
	}
	delete(g.sessions, s)
	g.stats.sessions.Add(-1)
	if !s.outbound && g.inbound[s.peer.Name] == s {
		delete(g.inbound, s.peer.Name)
		if g.inboundByAddr[s.addrKey]--; g.inboundByAddr[s.addrKey] <= 0 {
			delete(g.inboundByAddr, s.addrKey)
		}
	}
}
