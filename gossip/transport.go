package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport wraps memberlist's NetTransport. It counts memberlist's bytes,
// lets Close cancel dials in progress (a rejoin round must not hold Close
// for TCPTimeout), bounds the inbound TCP streams memberlist handles at
// once (memberlist starts a goroutine per connection and holds it for
// TCPTimeout, with no bound of its own), and, when Config.Faults is set,
// drops or partitions memberlist traffic between named nodes for tests.
type transport struct {
	g       *Gossip
	inner   *memberlist.NetTransport
	packets chan *memberlist.Packet
	streams chan net.Conn

	dialCtx    context.Context // canceled when shutdown begins
	dialCancel context.CancelFunc
	stopping   chan struct{} // shutdown began: forwarders drop what nobody takes
	done       chan struct{} // stops the forwarding goroutines
	wg         sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // streams we dialed, closed on shutdown
	shut    bool
	inOpen  map[string]int // inbound streams open, by source address (addrKey)
	inTotal int
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

func newTransport(g *Gossip, inner *memberlist.NetTransport) *transport {
	t := &transport{
		g:        g,
		inner:    inner,
		packets:  make(chan *memberlist.Packet),
		streams:  make(chan net.Conn),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		conns:    make(map[net.Conn]struct{}),
		inOpen:   make(map[string]int),
	}
	t.dialCtx, t.dialCancel = context.WithCancel(context.Background())
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if f := t.g.cfg.Faults; f != nil && f.dropPacket(t.g.cfg.Name, a.Addr) {
		return time.Now(), nil // lost on the way, as UDP does
	}
	t.g.stats.mlPacketOut.Add(uint64(len(b)))
	return t.inner.WriteToAddress(b, a)
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *transport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if f := t.g.cfg.Faults; f != nil && f.blockedAddr(t.g.cfg.Name, a.Addr) {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errFaultBlocked)
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(t.dialCtx, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	c := &countingConn{Conn: conn, in: &t.g.stats.mlStreamIn, out: &t.g.stats.mlStreamOut}
	c.release = func() { t.untrack(c) }
	t.mu.Lock()
	if t.shut {
		t.mu.Unlock()
		_ = conn.Close()
		return nil, net.ErrClosed
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

func (t *transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// Shutdown closes the listeners and waits for the forwarding goroutines.
// The inner transport goes first: its listener goroutines block handing
// over packets until our forwarders take them, so the forwarders keep
// reading (dropping what memberlist, or nobody when New failed, does not
// take) until it is down.
func (t *transport) Shutdown() error {
	close(t.stopping)
	t.dialCancel()
	t.mu.Lock()
	t.shut = true
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	err := t.inner.Shutdown()
	close(t.done)
	t.wg.Wait()
	return err
}

func (t *transport) forwardPackets() {
	defer t.wg.Done()
	for {
		select {
		case p := <-t.inner.PacketCh():
			if f := t.g.cfg.Faults; f != nil && f.dropPacketFrom(p.From.String(), t.g.cfg.Name) {
				continue
			}
			t.g.stats.mlPacketIn.Add(uint64(len(p.Buf)))
			select {
			case t.packets <- p:
			case <-t.stopping:
			}
		case <-t.done:
			return
		}
	}
}

func (t *transport) forwardStreams() {
	defer t.wg.Done()
	for {
		select {
		case c := <-t.inner.StreamCh():
			ip := remoteIP(c)
			key := addrKey(ip)
			if !t.enterStream(key) {
				_ = c.Close()
				t.g.stats.reject(rejectGossipOverload)
				t.g.logs.logf(slog.LevelWarn, key, rejectNames[rejectGossipOverload], "gossip: memberlist stream refused: too many open",
					"remote", ip.String(), "reason", rejectNames[rejectGossipOverload])
				continue
			}
			cc := &countingConn{Conn: c, in: &t.g.stats.mlStreamIn, out: &t.g.stats.mlStreamOut}
			cc.release = func() { t.leaveStream(key) }
			select {
			case t.streams <- cc:
			case <-t.stopping:
				_ = cc.Close()
			}
		case <-t.done:
			return
		}
	}
}

// enterStream admits an inbound memberlist stream from the address key:
// at most MaxPendingPerAddr from one address and MaxPendingHandshakes in all
// are open at once (legitimate ones are short push/pull exchanges).
func (t *transport) enterStream(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inOpen[key] >= t.g.cfg.MaxPendingPerAddr || t.inTotal >= t.g.cfg.MaxPendingHandshakes {
		return false
	}
	t.inOpen[key]++
	t.inTotal++
	return true
}

func (t *transport) leaveStream(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inOpen[key]--; t.inOpen[key] <= 0 {
		delete(t.inOpen, key)
	}
	t.inTotal--
}

// countingConn counts the bytes of a memberlist stream.
type countingConn struct {
	net.Conn
	in, out *atomic.Uint64
	release func()
	once    sync.Once
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(uint64(n))
	return n, err
}

func (c *countingConn) Close() error {
	if c.release != nil {
		c.once.Do(c.release)
	}
	return c.Conn.Close()
}
