package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip is one node's membership and replication transport. Create it with
// New; it is safe for concurrent use.
type Gossip struct {
	cfg     *Config
	h       Handler
	log     *slog.Logger
	stats   *stats
	keyring *memberlist.Keyring // nil without SecretKeys
	self    Peer
	meta    []byte // our node metadata

	ctx     context.Context // canceled when Close begins
	cancel  context.CancelFunc
	closing atomic.Bool
	left    atomic.Bool
	wg      sync.WaitGroup // every goroutine we start

	closeOnce sync.Once
	closeErr  error
	lifeMu    sync.Mutex // orders Leave and Close: memberlist panics on Leave after Shutdown
	collector *collector
	mlm       *mlMetrics // memberlist's own measurements

	ml *memberlist.Memberlist
	tr *transport
	ln net.Listener

	mu            sync.RWMutex
	peers         map[string]*peerEntry // every member we know of, but ourselves
	links         map[string]*link      // alive peers: outbound queue and stream
	sessions      map[*session]struct{}
	inbound       map[string]*session     // established inbound streams by peer name (one each)
	inboundByAddr map[string]int          // established inbound streams by source address (addrKey)
	admitting     map[string]*pendingConn // names admitted whose handshake has not ended (accept.go)
	seeds         []string

	adm     admission   // pending inbound handshakes
	logs    *logLimiter // rate limit of log lines about refused traffic
	localIP net.IP      // the address data streams are dialed from (nil: the kernel's choice)

	events events
	sched  scheduler
	serves atomic.Int32 // anti-entropy requests being served
}

// New starts a node: it binds the memberlist and data listeners and starts
// the background goroutines. It does not contact anyone: call Join.
// cfg is copied (nil means DefaultLANConfig); h must not be nil.
func New(cfg *Config, h Handler) (*Gossip, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil Handler", ErrInvalidConfig)
	}
	if cfg == nil {
		cfg = DefaultLANConfig()
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:           c,
		h:             h,
		log:           c.Logger,
		peers:         make(map[string]*peerEntry),
		links:         make(map[string]*link),
		sessions:      make(map[*session]struct{}),
		inbound:       make(map[string]*session),
		inboundByAddr: make(map[string]int),
		admitting:     make(map[string]*pendingConn),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("node", c.Name)
	// Data streams leave from the bound address when there is one: peers
	// check that a stream comes from its member's address.
	if ip := net.ParseIP(c.BindAddr); ip != nil && !ip.IsUnspecified() {
		g.localIP = ip
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.events.signal = make(chan struct{}, 1)
	g.sched.init(g)
	g.stats = newStats()
	g.logs = newLogLimiter(g.log, c.LogInterval, &g.stats.logSuppressed)

	if len(c.SecretKeys) > 0 {
		if g.keyring, err = memberlist.NewKeyring(c.SecretKeys[1:], c.SecretKeys[0]); err != nil {
			return nil, fmt.Errorf("%w: keyring: %v", ErrInvalidConfig, err)
		}
	}
	g.collector = newCollector(g)
	g.mlm = newMLMetrics()
	if c.Registerer != nil {
		if err := c.Registerer.Register(g.collector); err != nil {
			return nil, fmt.Errorf("gossip: register metrics: %w", err)
		}
		g.mlm.attach()
	}
	ok := false
	defer func() {
		if !ok {
			g.cancel()
			if g.ln != nil {
				_ = g.ln.Close()
			}
			if g.tr != nil {
				_ = g.tr.Shutdown()
			}
			if c.Faults != nil {
				c.Faults.detach(g)
			}
			if c.Registerer != nil {
				c.Registerer.Unregister(g.collector)
				g.mlm.detach()
			}
			g.wg.Wait()
		}
	}()

	// Both listeners are bound before Create: the data port goes into the
	// node metadata memberlist asks for while it runs. A fixed port is
	// bound first: a listener on port 0 takes any free port, which may be
	// the other's fixed one while that is still free (CI once saw the data
	// listener take the memberlist port a test had picked as free).
	mlLog := log.New(&memberlistLog{g: g}, "", 0)
	var inner *memberlist.NetTransport
	listenData := func() (err error) {
		g.ln, err = listenRetry(c.DataPort, func() (net.Listener, error) {
			return net.Listen("tcp", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.DataPort)))
		})
		if err != nil {
			return fmt.Errorf("gossip: data listener: %w", err)
		}
		return nil
	}
	listenMemberlist := func() (err error) {
		if inner, err = newNetTransport(c.BindAddr, c.BindPort, mlLog); err != nil {
			return fmt.Errorf("gossip: memberlist transport: %w", err)
		}
		g.tr = newTransport(g, inner)
		return nil
	}
	first, second := listenData, listenMemberlist
	if c.DataPort == 0 && c.BindPort != 0 {
		first, second = listenMemberlist, listenData
	}
	if err := first(); err != nil {
		return nil, err
	}
	if err := second(); err != nil {
		return nil, err
	}
	mlc := c.memberlistConfig()
	mlc.Transport = g.tr
	mlc.Logger = mlLog
	if mlc.BindPort == 0 {
		mlc.BindPort = inner.GetAutoBindPort()
	}
	if mlc.AdvertisePort == 0 {
		mlc.AdvertisePort = mlc.BindPort
	}
	mlc.Keyring = g.keyring
	mlc.MetricLabels = g.mlm.labels()
	mlc.Delegate = (*delegate)(g)
	mlc.Events = (*eventDelegate)(g)
	mlc.Alive = (*aliveDelegate)(g)

	advIP, advPort, err := g.tr.FinalAdvertiseAddr(mlc.AdvertiseAddr, mlc.AdvertisePort)
	if err != nil {
		return nil, fmt.Errorf("gossip: advertise address: %w", err)
	}
	dataTCP := g.ln.Addr().(*net.TCPAddr)
	m := nodeMeta{proto: protocolVersion, keyed: g.keyring != nil, dataPort: uint16(dataTCP.Port)}
	switch {
	case c.AdvertiseAddr != "":
		m.dataHost = advIP.String()
	case !dataTCP.IP.IsUnspecified():
		m.dataHost = dataTCP.IP.String()
	}
	g.meta = m.encode()
	g.self = Peer{
		Name:     c.Name,
		Addr:     net.JoinHostPort(advIP.String(), strconv.Itoa(advPort)),
		DataAddr: m.dataAddr(advIP),
	}
	if c.Faults != nil {
		if err := c.Faults.attach(g); err != nil {
			return nil, err
		}
	}

	g.wg.Add(1)
	go g.acceptLoop()
	if g.ml, err = memberlist.Create(mlc); err != nil {
		return nil, fmt.Errorf("gossip: memberlist: %w", err)
	}
	g.wg.Add(4)
	go g.manageLoop()
	go g.sched.loop()
	go g.rejoinLoop()
	go g.flushLoop()
	ok = true
	return g, nil
}

// newNetTransport binds memberlist's UDP and TCP listeners (see
// listenRetry).
func newNetTransport(addr string, port int, l *log.Logger) (*memberlist.NetTransport, error) {
	return listenRetry(port, func() (*memberlist.NetTransport, error) {
		return memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{addr}, BindPort: port, Logger: l})
	})
}

// bindRetry is how long binding a fixed port is retried while it is in
// use: a node restarted at once can find it held for a moment by its
// previous process's connections (sockets the kernel keeps closing after
// the process exited, which SO_REUSEADDR does not cover).
const bindRetry = 5 * time.Second

// listenRetry calls listen until it binds, while the port is in use: with
// a fixed port for up to bindRetry; with port 0 up to 10 times, for
// memberlist's UDP listener must get the TCP port the kernel picked,
// which can race with other processes (as memberlist itself retries).
func listenRetry[T any](port int, listen func() (T, error)) (T, error) {
	deadline := time.Now().Add(bindRetry)
	for try := 1; ; try++ {
		v, err := listen()
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return v, err
		}
		if port == 0 && try == 10 || port != 0 && time.Now().After(deadline) {
			return v, err
		}
		if port != 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// Close shuts the node down without leaving (call Leave first to depart
// gracefully; otherwise peers detect the failure). It is safe to call more
// than once and from any goroutine. Order:
//
//  1. every later call fails with ErrClosed, and the context of every
//     goroutine and of running Handler.Serve calls is canceled;
//  2. memberlist shuts down (listeners closed, no more membership events);
//  3. the data listener and every data stream are closed;
//  4. Close waits for all goroutines, including running Handler calls.
//
// No Handler method is called after Close returns.
func (g *Gossip) Close() error {
	g.closeOnce.Do(func() {
		g.closing.Store(true)
		g.cancel()
		g.lifeMu.Lock()
		if err := g.ml.Shutdown(); err != nil {
			g.closeErr = fmt.Errorf("gossip: memberlist shutdown: %w", err)
		}
		g.lifeMu.Unlock()
		_ = g.ln.Close()
		g.mu.Lock()
		sessions := make([]*session, 0, len(g.sessions))
		for s := range g.sessions {
			sessions = append(sessions, s)
		}
		g.mu.Unlock()
		for _, s := range sessions {
			s.close(ErrClosed)
		}
		g.wg.Wait()
		if g.cfg.Faults != nil {
			g.cfg.Faults.detach(g)
		}
		if g.cfg.Registerer != nil {
			g.cfg.Registerer.Unregister(g.collector)
			g.mlm.detach()
		}
	})
	return g.closeErr
}

// Join contacts the given memberlist addresses (host:port) and merges
// their cluster with ours. The addresses are remembered as seeds: while
// none of them is a live member, the node keeps re-joining them in the
// background, so a node that starts alone finds its peers once they appear.
// It returns the number of addresses contacted; an error only when none
// answered (the seeds are kept anyway).
func (g *Gossip) Join(ctx context.Context, addrs ...string) (int, error) {
	if g.closing.Load() {
		return 0, ErrClosed
	}
	if g.left.Load() {
		return 0, ErrLeft
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	g.mu.Lock()
	for _, a := range addrs {
		if !slices.Contains(g.seeds, a) {
			g.seeds = append(g.seeds, a)
		}
	}
	g.mu.Unlock()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		n, err := g.ml.Join(slices.Clone(addrs))
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && r.n == 0 {
			return 0, fmt.Errorf("gossip: join %v: %w", addrs, r.err)
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-g.ctx.Done():
		return 0, ErrClosed
	}
}

// Leave announces our departure and waits (until ctx is done, at most
// TCPTimeout when ctx has no deadline) for the announcement to go out. The
// node then stops re-joining and drops its data streams; peers forget it
// without waiting for failure detection. Close it afterwards.
func (g *Gossip) Leave(ctx context.Context) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.closing.Load() {
		return ErrClosed
	}
	if g.left.Swap(true) {
		return nil
	}
	timeout := g.cfg.TCPTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return ctx.Err()
		}
	}
	// Say bye on every data stream first, so that peers record a departure
	// rather than a failure (and do not try to rejoin us).
	g.mu.RLock()
	var byes []<-chan struct{}
	for s := range g.sessions {
		if s.outbound {
			byes = append(byes, s.sayBye())
		}
	}
	g.mu.RUnlock()
	byeCtx, cancel := context.WithTimeout(ctx, timeout/2)
	for _, ch := range byes {
		select {
		case <-ch:
		case <-byeCtx.Done():
		}
	}
	cancel()
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	err := g.ml.Leave(timeout)
	g.mu.Lock()
	links := make([]*link, 0, len(g.links))
	for name, l := range g.links {
		links = append(links, l)
		delete(g.links, name)
	}
	g.mu.Unlock()
	for _, l := range links {
		l.stop()
	}
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Member describes a cluster member.
type Member struct {
	Peer
	State     State
	Self      bool // this node
	Connected bool // our data stream to it is established
}

// State is a member's state as this node sees it.
type State uint8

// Member states. Explicit values: they show up in metrics and APIs.
// (memberlist does not expose its "suspect" state: a suspect member is
// reported alive until it is declared dead.)
const (
	StateAlive State = 1
	StateDead  State = 3 // failed; kept for re-joining until DeadPeerTimeout
	StateLeft  State = 4 // left on purpose
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Members returns every member this node knows of, itself first, then by
// name. Failed and departed members are listed with their state until they
// are forgotten.
func (g *Gossip) Members() []Member {
	selfState := StateAlive
	if g.left.Load() {
		selfState = StateLeft
	}
	g.mu.RLock()
	out := make([]Member, 0, len(g.peers)+1)
	out = append(out, Member{Peer: g.self, State: selfState, Self: true})
	for _, p := range g.peers {
		m := Member{Peer: p.Peer, State: p.state}
		if l := g.links[p.Name]; l != nil {
			m.Connected = l.session() != nil
		}
		out = append(out, m)
	}
	g.mu.RUnlock()
	slices.SortFunc(out[1:], func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LocalPeer returns this node's own name and addresses.
func (g *Gossip) LocalPeer() Peer { return g.self }

// MaxPayload is the largest payload Broadcast and SyncWriter.Write accept.
func (g *Gossip) MaxPayload() int { return g.cfg.MaxFrameBytes - frameOverhead }

// Broadcast queues payloads for every live peer except the one named except
// ("" for none; pass the peer a payload came from so it is never sent back).
// It never blocks: payloads for a peer whose queue is full are dropped for
// that peer (counted), and the peer is then told to pull, so anti-entropy
// repairs the gap. Payloads go out in order, batched per peer.
//
// Broadcast takes ownership of the payload slices: the caller must not
// modify them afterwards. It returns ErrTooLarge (and queues nothing) if a
// payload exceeds MaxPayload.
func (g *Gossip) Broadcast(except string, payloads ...[]byte) error {
	if g.closing.Load() {
		return ErrClosed
	}
	size := 0
	for _, p := range payloads {
		if len(p) > g.MaxPayload() {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(p), g.MaxPayload())
		}
		size += len(p)
	}
	if len(payloads) == 0 {
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for name, l := range g.links {
		if name != except {
			l.enqueue(payloads, size)
		}
	}
	return nil
}

// Sync pulls from peer what this node lacks: it sends our Handler's digest,
// the peer's Handler.Serve answers, and its chunks are handed to our
// Handler.Deliver (SourceSync) in order. It returns once the peer has sent
// everything, or on error (ErrNotConnected when no data stream to the peer is
// up, ErrSyncRefused when the peer refused or failed). Concurrent Syncs with
// one peer are independent requests; the peer serves them one after the
// other (with the background anti-entropy pulls), and refuses as busy
// those beyond a few waiting.
func (g *Gossip) Sync(ctx context.Context, peer string) error {
	if g.closing.Load() {
		return ErrClosed
	}
	g.mu.RLock()
	l := g.links[peer]
	g.mu.RUnlock()
	var s *session
	if l != nil {
		s = l.session()
	}
	if s == nil {
		return fmt.Errorf("gossip: sync with %q: %w", peer, ErrNotConnected)
	}
	if err := s.pull(ctx); err != nil {
		return fmt.Errorf("gossip: sync with %q: %w", peer, err)
	}
	return nil
}

// RequestSync schedules an anti-entropy pull from peer in the background (as
// soon as a data stream to it is up, at most MaxConcurrentPulls at once). It
// never blocks; requests for a peer already scheduled are merged.
func (g *Gossip) RequestSync(peer string) {
	if g.closing.Load() || peer == g.cfg.Name {
		return
	}
	g.sched.want(peer)
}

// Nudge asks peer to pull from us soon: it sends the peer a hint on our
// stream to it (nothing happens while no stream is up; the pull made when
// one comes up serves the same purpose). Use it when the peer is known to
// lack something, or to get a fresh digest from it (its pull request
// carries one). It never blocks.
func (g *Gossip) Nudge(peer string) {
	g.mu.RLock()
	l := g.links[peer]
	g.mu.RUnlock()
	if l == nil {
		return
	}
	if s := l.session(); s != nil {
		s.queueHint()
	}
}

// InstallKey adds a key to the keyring: it is accepted from now on (for
// memberlist and data streams) but not used to encrypt until UseKey. Rotate
// a cluster's key by installing the new key everywhere, then UseKey
// everywhere, then RemoveKey of the old one everywhere.
func (g *Gossip) InstallKey(key []byte) error {
	if g.keyring == nil {
		return ErrNoKeyring
	}
	if err := g.keyring.AddKey(slices.Clone(key)); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// UseKey makes an installed key the primary: memberlist encrypts with it and
// new data streams are opened with it.
func (g *Gossip) UseKey(key []byte) error {
	if g.keyring == nil {
		return ErrNoKeyring
	}
	if err := g.keyring.UseKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// RemoveKey removes a key that is not the primary, and closes the data
// streams that were authenticated with it (they reconnect with the primary).
func (g *Gossip) RemoveKey(key []byte) error {
	if g.keyring == nil {
		return ErrNoKeyring
	}
	if err := g.keyring.RemoveKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	id := keyIDOf(key)
	g.mu.RLock()
	var doomed []*session
	for s := range g.sessions {
		if s.res.keyed && s.res.keyID == id {
			doomed = append(doomed, s)
		}
	}
	g.mu.RUnlock()
	for _, s := range doomed {
		s.close(errors.New("gossip: session key removed"))
	}
	return nil
}

// keys returns a copy of the keyring, primary first (for handshakes).
func (g *Gossip) keys() [][]byte {
	ks := g.keyring.GetKeys()
	out := make([][]byte, len(ks))
	for i, k := range ks {
		out[i] = slices.Clone(k)
	}
	return out
}

func (g *Gossip) handshakeParams() handshakeParams {
	p := handshakeParams{
		name:     g.cfg.Name,
		label:    g.cfg.Label,
		maxFrame: uint32(g.cfg.MaxFrameBytes),
		closing:  g.closing.Load,
	}
	if g.keyring != nil {
		p.keys = g.keys
	}
	return p
}

// jitter returns d ±25%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + rand.N(d/2+1)
}

// waitCtx waits for d or until ctx is done; it reports whether d elapsed.
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isClosedConn reports errors that just mean "the stream went away".
func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
