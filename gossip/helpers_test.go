package gossip

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testStore is a tiny replicated log used as the Handler in tests: each
// node appends payloads "origin/seq/body"; the digest is the version vector
// of contiguous sequence numbers held per origin; Serve sends every payload
// above the requester's vector. It is what node does, minus the CRDTs.
type testStore struct {
	name string

	mu         sync.Mutex
	seq        uint64
	data       map[string]map[uint64][]byte // origin -> seq -> payload
	deliveries map[string]int               // payload key -> times delivered
	bySource   map[Source]int
	peerVV     map[string]map[string]uint64 // peer -> its last digest
	joined     []string
	left       []string
	selfSeen   int // payloads of our own origin delivered to us

	// deliverHook, if set, runs at the start of Deliver (tests block it).
	deliverHook atomic.Pointer[func(from Peer, src Source, n int)]
	// serveHook, if set, runs at the start of Serve.
	serveHook atomic.Pointer[func(ctx context.Context) error]
}

func newTestStore(name string) *testStore {
	return &testStore{
		name:       name,
		data:       map[string]map[uint64][]byte{},
		deliveries: map[string]int{},
		bySource:   map[Source]int{},
		peerVV:     map[string]map[string]uint64{},
	}
}

func encodePayload(origin string, seq uint64, body []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(origin)))
	b = append(b, origin...)
	b = binary.AppendUvarint(b, seq)
	return append(b, body...)
}

func decodePayload(p []byte) (origin string, seq uint64, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return "", 0, false
	}
	origin = string(p[k : k+int(n)])
	p = p[k+int(n):]
	seq, k = binary.Uvarint(p)
	return origin, seq, k > 0
}

// write makes a local payload and broadcasts it.
func (s *testStore) write(g *Gossip, body []byte) ([]byte, error) {
	s.mu.Lock()
	s.seq++
	p := encodePayload(s.name, s.seq, body)
	s.put(s.name, s.seq, p)
	s.mu.Unlock()
	return p, g.Broadcast("", p)
}

func (s *testStore) put(origin string, seq uint64, p []byte) bool {
	m := s.data[origin]
	if m == nil {
		m = map[uint64][]byte{}
		s.data[origin] = m
	}
	if _, dup := m[seq]; dup {
		return false
	}
	m[seq] = p
	return true
}

// vv returns the contiguous version vector; call with mu held.
func (s *testStore) vv() map[string]uint64 {
	v := map[string]uint64{}
	for origin, m := range s.data {
		var n uint64
		for m[n+1] != nil {
			n++
		}
		v[origin] = n
	}
	return v
}

func encodeVV(v map[string]uint64) []byte {
	keys := slices.Sorted(maps.Keys(v))
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%d;", k, v[k])
	}
	return []byte(sb.String())
}

func decodeVV(b []byte) map[string]uint64 {
	v := map[string]uint64{}
	for _, part := range strings.Split(string(b), ";") {
		k, n, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		x, _ := strconv.ParseUint(n, 10, 64)
		v[k] = x
	}
	return v
}

func (s *testStore) Deliver(from Peer, src Source, payloads [][]byte) error {
	if h := s.deliverHook.Load(); h != nil {
		(*h)(from, src, len(payloads))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySource[src] += len(payloads)
	for _, p := range payloads {
		origin, seq, ok := decodePayload(p)
		if !ok {
			return fmt.Errorf("bad payload")
		}
		if origin == s.name {
			s.selfSeen++
		}
		s.deliveries[origin+"/"+strconv.FormatUint(seq, 10)]++
		s.put(origin, seq, p)
	}
	return nil
}

func (s *testStore) Digest() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return encodeVV(s.vv())
}

func (s *testStore) PeerDigest(from Peer, digest []byte) {
	v := decodeVV(digest)
	s.mu.Lock()
	s.peerVV[from.Name] = v
	s.mu.Unlock()
}

func (s *testStore) Serve(ctx context.Context, to Peer, digest []byte, w *SyncWriter) error {
	if h := s.serveHook.Load(); h != nil {
		if err := (*h)(ctx); err != nil {
			return err
		}
	}
	theirs := decodeVV(digest)
	s.mu.Lock()
	var out [][]byte
	for _, origin := range slices.Sorted(maps.Keys(s.data)) {
		m := s.data[origin]
		seqs := slices.Sorted(maps.Keys(m))
		for _, q := range seqs {
			if q > theirs[origin] {
				out = append(out, m[q])
			}
		}
	}
	s.mu.Unlock()
	for _, p := range out {
		if err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *testStore) PeerJoined(p Peer) {
	s.mu.Lock()
	s.joined = append(s.joined, p.Name)
	s.mu.Unlock()
}

func (s *testStore) PeerLeft(p Peer) {
	s.mu.Lock()
	s.left = append(s.left, p.Name)
	s.mu.Unlock()
}

// count is the number of distinct payloads held.
func (s *testStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.data {
		n += len(m)
	}
	return n
}

func (s *testStore) has(origin string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[origin][seq] != nil
}

// summary is the store's version vector as a string (equal stores, equal
// summaries).
func (s *testStore) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(encodeVV(s.vv()))
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: "+format, append([]any{timeout}, args...)...)
		}
		<-tick.C
	}
}

// testNode is one member of a test cluster.
type testNode struct {
	g     *Gossip
	store *testStore
	cfg   *Config
}

func testConfig(name string, faults *FaultNet) *Config {
	c := DefaultLocalConfig()
	c.Name = name
	c.Faults = faults
	return c
}

// startNode creates a node; mod may change its config.
func startNode(t testing.TB, name string, faults *FaultNet, mod func(*Config)) *testNode {
	t.Helper()
	c := testConfig(name, faults)
	if mod != nil {
		mod(c)
	}
	st := newTestStore(name)
	g, err := New(c, st)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return &testNode{g: g, store: st, cfg: c}
}

// startCluster starts n nodes n0..n(n-1), joins them to n0 and waits until
// every node sees every other alive with its data stream up.
func startCluster(t testing.TB, n int, faults *FaultNet, mod func(*Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("n%d", i), faults, mod)
	}
	seed := nodes[0].g.LocalPeer().Addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, nd := range nodes[1:] {
		if _, err := nd.g.Join(ctx, seed); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	waitConnected(t, nodes)
	return nodes
}

// waitConnected waits until every node sees every other node alive and
// connected.
func waitConnected(t testing.TB, nodes []*testNode) {
	t.Helper()
	eventually(t, 20*time.Second, func() bool {
		for _, nd := range nodes {
			alive := 0
			for _, m := range nd.g.Members() {
				if !m.Self && m.State == StateAlive && m.Connected {
					alive++
				}
			}
			if alive != len(nodes)-1 {
				return false
			}
		}
		return true
	}, "cluster of %d did not connect: %s", len(nodes), describe(nodes))
}

func describe(nodes []*testNode) string {
	var sb strings.Builder
	for _, nd := range nodes {
		fmt.Fprintf(&sb, "\n  %s:", nd.cfg.Name)
		for _, m := range nd.g.Members() {
			if !m.Self {
				fmt.Fprintf(&sb, " %s=%s/conn=%v", m.Name, m.State, m.Connected)
			}
		}
		fmt.Fprintf(&sb, " store=%s", nd.store.summary())
	}
	return sb.String()
}

// waitConverged waits until every store holds want payloads and all
// summaries are equal.
func waitConverged(t testing.TB, timeout time.Duration, nodes []*testNode, want int) {
	t.Helper()
	eventually(t, timeout, func() bool {
		first := nodes[0].store.summary()
		for _, nd := range nodes {
			if nd.store.count() != want || nd.store.summary() != first {
				return false
			}
		}
		return true
	}, "stores did not converge to %d payloads: %s", want, describe(nodes))
}

func sortedNames(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return out
}

// ghostDelegate advertises data stream metadata for a ghost member.
type ghostDelegate struct{ meta []byte }

func (d ghostDelegate) NodeMeta(limit int) []byte                  { return d.meta }
func (d ghostDelegate) NotifyMsg([]byte)                           {}
func (d ghostDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d ghostDelegate) LocalState(join bool) []byte                { return nil }
func (d ghostDelegate) MergeRemoteState(buf []byte, join bool)     {}

// startGhost joins a bare memberlist member named name, at ip, to the
// cluster of waitFor[0]: a live member that opens no data streams (its data
// port, 1, refuses them), so that a raw client of the test can speak the
// data protocol in its name as a real member would. It waits until every
// node in waitFor sees it alive.
func startGhost(t testing.TB, name, ip string, keys [][]byte, label string, waitFor ...*testNode) {
	t.Helper()
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.BindAddr = ip
	c.BindPort = 0
	c.Label = label
	c.LogOutput = io.Discard
	// memberlist's probe goroutine outlives Shutdown by up to a probe
	// interval: keep it as short as our nodes' (goleak checks at the end).
	c.ProbeInterval, c.ProbeTimeout = 250*time.Millisecond, 200*time.Millisecond
	c.Delegate = ghostDelegate{meta: nodeMeta{proto: protocolVersion, keyed: keys != nil, dataPort: 1}.encode()}
	c.DelegateProtocolVersion, c.DelegateProtocolMin, c.DelegateProtocolMax = protocolVersion, protocolVersion, protocolVersion
	if keys != nil {
		kr, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			t.Fatal(err)
		}
		c.Keyring = kr
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{waitFor[0].g.LocalPeer().Addr}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range waitFor {
		eventually(t, 10*time.Second, func() bool {
			for _, m := range nd.g.Members() {
				if m.Name == name && m.State == StateAlive {
					return true
				}
			}
			return false
		}, "%s does not see ghost %s", nd.cfg.Name, name)
	}
}

// rawClient is a data stream opened by the test itself, frame by frame.
type rawClient struct {
	conn net.Conn
	res  handshakeResult
	fr   frameReader
	fw   frameWriter
}

// dialFrom opens a TCP connection to addr from the local IP from ("" for
// the kernel's choice).
func dialFrom(from, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return d.Dial("tcp", addr)
}

// rawDial opens a data stream to target under name, from the local IP from,
// with keys (nil: none). It returns the handshake's error, if any, with
// the connection closed.
func rawDial(t testing.TB, target *testNode, name, from string, keys [][]byte) (*rawClient, error) {
	t.Helper()
	conn, err := dialFrom(from, target.g.LocalPeer().DataAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	p := handshakeParams{name: name, label: target.cfg.Label, maxFrame: 1 << 20}
	if keys != nil {
		p.keys = keysOf(keys...)
	}
	res, err := clientHandshake(conn, p)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &rawClient{
		conn: conn,
		res:  res,
		fr:   frameReader{r: conn, cs: res.recv, max: 64 << 20},
		fw:   frameWriter{w: conn, cs: res.send},
	}, nil
}

func (c *rawClient) send(t testing.TB, typ frameType, body []byte) error {
	t.Helper()
	_, err := c.fw.finish(append(c.fw.start(typ), body...))
	return err
}

// next reads the next frame other than pings (answered) and pongs, within
// the timeout.
func (c *rawClient) next(timeout time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		typ, body, _, err := c.fr.next()
		if err != nil {
			return frame{}, err
		}
		f, err := decodeFrame(typ, body)
		if err != nil {
			return frame{}, err
		}
		switch typ {
		case framePing:
			_, _ = c.fw.finish(c.fw.start(framePong))
		case framePong:
		default:
			return f, nil
		}
	}
}

// sessionsWith returns n's established sessions with peer (inbound ones
// when inbound).
func sessionsWith(n *testNode, peer string, inbound bool) []*session {
	n.g.mu.RLock()
	defer n.g.mu.RUnlock()
	var out []*session
	for s := range n.g.sessions {
		if s.peer.Name == peer && s.outbound != inbound {
			out = append(out, s)
		}
	}
	return out
}

// logLine is one captured log record, with its attributes as strings.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logCapture is a slog.Handler that keeps every record (from Debug up).
type logCapture struct {
	mu    *sync.Mutex
	lines *[]logLine
	attrs []slog.Attr
}

func newLogCapture() *logCapture {
	return &logCapture{mu: &sync.Mutex{}, lines: new([]logLine)}
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, l)
	h.mu.Unlock()
	return nil
}

func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

// matching returns the captured lines at Info or above for which keep is
// true.
func (h *logCapture) matching(keep func(logLine) bool) []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logLine
	for _, l := range *h.lines {
		if l.level >= slog.LevelInfo && keep(l) {
			out = append(out, l)
		}
	}
	return out
}
