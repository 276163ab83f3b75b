package resp

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shoaldb/shoal/node"
)

// Limits and defaults.
const (
	// DefaultMaxConnections bounds the open connections, as the agent's
	// --max-connections does for HTTP.
	DefaultMaxConnections = 1024
	// DefaultMaxBulkBytes bounds one argument: the HTTP API's largest body
	// (a 1 MiB value has room to spare).
	DefaultMaxBulkBytes = 4 << 20
	// DefaultMaxArgs bounds the arguments of one command (MSET of the
	// node's largest batch fits).
	DefaultMaxArgs = 2*node.DefaultMaxBatchOperations + 1
	// DefaultMaxCommandBytes bounds one whole command: the HTTP API's
	// largest batch body.
	DefaultMaxCommandBytes = 16 << 20
	// DefaultMaxQueued bounds the commands queued in MULTI: a transaction
	// is one batch, and the node bounds those.
	DefaultMaxQueued = node.DefaultMaxBatchOperations
	// DefaultMaxSubscriptions bounds the SUBSCRIBE prefixes of all
	// connections, as the HTTP API bounds its watch streams.
	DefaultMaxSubscriptions = 1024
	// DefaultWriteTimeout bounds how long a client may take to read its
	// replies before it is disconnected.
	DefaultWriteTimeout = 30 * time.Second
)

// Options configure New. The zero value (and nil) means defaults; New
// copies the struct.
type Options struct {
	// Password, when not empty, is what AUTH (or HELLO ... AUTH) must give
	// before any other command; the user name is not checked. The agent
	// uses the HTTP API's token.
	Password string
	// Version is shoal's version, shown by INFO and HELLO.
	Version string
	// MaxConnections bounds the open connections; one more is answered
	// "ERR max number of clients reached" and closed. 0 = default.
	MaxConnections int
	// MaxBulkBytes, MaxArgs and MaxCommandBytes bound one request; a
	// request beyond them is answered with a protocol error and its
	// connection closed (its framing can no longer be trusted). 0 =
	// defaults.
	MaxBulkBytes    int
	MaxArgs         int
	MaxCommandBytes int
	// MaxQueued bounds the commands queued by MULTI; 0 = default.
	MaxQueued int
	// MaxSubscriptions bounds the prefixes followed by SUBSCRIBE on all
	// connections (each holds a node subscription and its buffer); 0 =
	// DefaultMaxSubscriptions.
	MaxSubscriptions int
	// WriteTimeout bounds the writing of one round of replies (a client
	// that does not read is disconnected after between half of it and
	// all of it); 0 = default.
	WriteTimeout time.Duration
	// Logger receives accept errors and connection failures; nil = off.
	Logger *slog.Logger
}

// Server serves the Redis protocol (RESP2 and RESP3) for one node. All
// methods are safe for concurrent use.
//
// Goroutines: Serve runs the accept loop in the caller's goroutine and
// one goroutine per connection; Close stops accepting, closes every
// connection and waits for their goroutines.
type Server struct {
	n       *node.Node
	opts    Options
	locks   stripes
	cursors cursors // SCAN's
	comb    combiner
	maxOps  int // the keys of a round or shared batch: maxRoundOps, or the node's bound if lower

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
	ids    atomic.Int64
	open   atomic.Int64
	subs   atomic.Int64 // SUBSCRIBE prefixes followed
}

// New returns a server for n; Serve makes it listen.
func New(n *node.Node, opts *Options) *Server {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxBulkBytes <= 0 {
		o.MaxBulkBytes = DefaultMaxBulkBytes
	}
	if o.MaxArgs <= 0 {
		o.MaxArgs = DefaultMaxArgs
	}
	if o.MaxCommandBytes <= 0 {
		o.MaxCommandBytes = DefaultMaxCommandBytes
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	s := &Server{n: n, opts: o, lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{},
		maxOps: min(maxRoundOps, n.MaxBatchOperations())}
	s.locks.seed = newSeed()
	return s
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("resp: server closed")

// Serve accepts connections on ln until Close (then it returns
// ErrServerClosed) or ln fails. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.opts.Logger.Warn("resp: accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay) // back off like net/http on EMFILE
				continue
			}
			return err
		}
		delay = 0
		s.start(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// start begins serving nc, or refuses it when the server is full.
func (s *Server) start(nc net.Conn) {
	if s.open.Load() >= int64(s.opts.MaxConnections) {
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(nc, "-ERR max number of clients reached\r\n")
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.open.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.open.Add(-1)
	}()
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return int(s.open.Load()) }

// Close stops accepting, closes every connection (a command being run
// finishes first: a write the node accepted is committed) and waits for
// the connections' goroutines. Safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// conn is one client connection. Its goroutine owns it; the goroutines
// of its subscriptions only write to o, under wmu.
type conn struct {
	s      *Server
	nc     net.Conn
	rd     *reader
	o      out // replies, flushed after each round of commands
	temp   out // replies held until a write commits
	id     int64
	authed bool
	name   string
	quit   bool

	multi  bool
	dirty  bool       // a command queued in MULTI was refused: EXEC aborts
	queued [][][]byte // the commands queued in MULTI

	round  round  // blind writes submitted or to submit, replies not yet written
	solo   int    // rounds left to submit on their own (see soloRounds)
	getBuf []byte // getDirect's, reused while small

	// wmu guards o (the reply buffer and the socket's writes) against the
	// subscription goroutines; the connection's goroutine holds it while
	// it runs a round of commands.
	wmu      sync.Mutex
	deadline time.Time // the write deadline set (under wmu)
	subs     []*subscription
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, id: s.ids.Add(1), authed: s.opts.Password == ""}
	c.rd = newReader(&limitReader{r: nc, maxArgs: s.opts.MaxArgs, maxBulk: s.opts.MaxBulkBytes,
		maxTotal: s.opts.MaxCommandBytes})
	c.o = out{w: redcon.NewWriter(nc), proto: 2}
	c.temp = out{w: redcon.NewWriter(nil), proto: 2}
	return c
}

// serve reads rounds of pipelined commands, runs them, and writes their
// replies in one flush per round.
func (c *conn) serve() {
	defer func() {
		c.nc.Close() // first: a subscription blocked writing gives up
		c.stopAllSubs()
		// Every path out has drained; this keeps it so. A shared batch's
		// leader must wait for it: the next batch's turn depends on it.
		c.waitSubmitted()
	}()
	for !c.quit {
		err := c.rd.fill()
		c.wmu.Lock()
		ran := false
		for err == nil && !c.quit {
			var a [][]byte
			if a, err = c.rd.next(); err != nil || a == nil {
				break
			}
			c.run(a)
			ran = true
		}
		if err != nil {
			if isProtocol(err) {
				// What came before the bad request is answered first.
				c.drain()
				c.o.err("ERR " + err.Error())
				c.flushLocked()
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.s.opts.Logger.Debug("resp: connection read failed", "remote", c.nc.RemoteAddr(), "err", err)
			}
			c.wmu.Unlock()
			return
		}
		if !ran { // a partial command: read on
			c.wmu.Unlock()
			continue
		}
		c.drain() // every command read has its answer: the buffer may be reused
		ok := c.flushLocked()
		c.wmu.Unlock()
		if !ok {
			return
		}
	}
}

// run runs one command.
func (c *conn) run(a [][]byte) {
	cmd := lookup(a[0])
	if !c.authed && (cmd == nil || (cmd.name != "auth" && cmd.name != "hello" && cmd.name != "quit")) {
		c.drain()
		c.o.err(errNoAuth)
		return
	}
	if len(c.subs) > 0 && (cmd == nil || !subscribedOK(cmd.name)) {
		c.o.err(errSubscribed(strings.ToLower(printable(a[0]))))
		return
	}
	if c.multi && (cmd == nil || (cmd.name != "exec" && cmd.name != "discard" && cmd.name != "multi" &&
		cmd.name != "quit" && cmd.name != "watch")) {
		c.queue(cmd, a)
		return
	}
	if cmd == nil {
		c.drain()
		c.o.err(unknownCommand(a))
		return
	}
	if !cmd.arityOK(len(a)) {
		c.drain()
		c.o.err(errArity(cmd.name))
		return
	}
	if c.fast(cmd, a) {
		return
	}
	c.drain() // a read sees this connection's earlier writes
	if cmd.conn != nil {
		cmd.conn(c, a)
		return
	}
	c.runData(cmd, a)
}

// runData runs a data command on its own: a write runs under its keys'
// locks and its reply is held until the write committed.
func (c *conn) runData(cmd *command, a [][]byte) {
	if !cmd.write {
		x := exec{c: c, o: &c.o, n: c.s.n}
		cmd.run(&x, a)
		return
	}
	unlock := c.s.locks.lock(cmd.keys(a))
	defer unlock()
	c.temp.reset()
	x := exec{c: c, o: &c.temp, n: c.s.n, keep: true}
	cmd.run(&x, a)
	if x.b.Len() > 0 || x.b.Err() != nil {
		if err := c.s.n.Commit(&x.b); err != nil {
			c.o.err(nodeError(err))
			return
		}
	}
	c.o.raw(c.temp.buffer())
}

func unknownCommand(a [][]byte) string {
	msg := "ERR unknown command '" + printable(a[0]) + "', with args beginning with: "
	for i, arg := range a[1:] {
		if i == 10 {
			break
		}
		msg += "'" + printable(arg) + "' "
	}
	return msg
}

// printable quotes an argument in an error: bounded, with no line break.
func printable(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return oneLine(string(b))
}

// checkPassword compares in constant time.
func (s *Server) checkPassword(p []byte) bool {
	return subtle.ConstantTimeCompare(p, []byte(s.opts.Password)) == 1
}
