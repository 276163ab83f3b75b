package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoaldb/shoal/node"
)

// maxPendingEvents bounds the events of one WAL record a subscription
// holds back until the record's last event (the one with its id) arrives;
// a larger record is delivered in parts (then a resume within it repeats
// the part already delivered).
const maxPendingEvents = 1 << 16

// errBadEvent: a watch event that does not decode. It ends the
// subscription (reconnecting would read it again).
var errBadEvent = errors.New("client: watch: malformed event")

// Subscription delivers the changes of the keys under a prefix, in the
// server's WAL order, like node.Subscription, across dropped connections:
// it reconnects (with a bounded, jittered backoff; see Options) and resumes
// after the last WAL record it received whole (Last-Event-ID), so nothing
// is missed and nothing repeated: the events of a record are delivered
// only once all of them arrived. It ends on an error event from the server
// (a slow reader dropped, the server shutting down), an error answer
// (4xx, such as an unavailable resume offset), its context or the
// client's ending, or Close. Next may be called from one goroutine at a
// time; Close from any.
//
// Goroutines: Subscribe starts one reader, which reads the stream into a
// bounded queue (when it is full the reader waits, and the server drops
// the subscription if it falls too far behind); Close stops it and waits.
type Subscription struct {
	c      *Client
	prefix string
	ctx    context.Context // the stream's: ends with Subscribe's ctx, the client's, or Close
	cancel context.CancelFunc
	groups chan []node.Event // complete records, from the reader
	done   chan struct{}     // closed when the reader has ended
	closed atomic.Bool
	cur    []node.Event // the rest of the record Next is handing out

	mu  sync.Mutex
	err error

	// The reader's own.
	from   uint64 // where the first connection started (resume)
	resume bool
	lastID string // SSE id of the last record received whole
	// syncedSeen: the EventSynced of the catch-up SubscribeFrom asked for
	// was delivered (Subscribe asks for none).
	syncedSeen bool
	delay      time.Duration // the first reconnection delay
}

// Subscribe delivers the changes of the keys starting with prefix ("" =
// all keys) made from now on, until ctx ends, the subscription is closed,
// or it ends for one of the reasons in Subscription's documentation. The
// first connection is made before it returns: its failure is Subscribe's
// error. Unless Options.MaxReconnects is negative it first asks for the
// node's WAL end, so as to resume from there after a drop that comes
// before any event.
func (c *Client) Subscribe(ctx context.Context, prefix string) (*Subscription, error) {
	return c.subscribe(ctx, prefix, 0, false)
}

// SubscribeFrom is Subscribe that first catches up from the WAL offset
// from (as carried by node.Event.Offset), as node.Node.SubscribeFrom does:
// one event per key under prefix that a record at offset >= from changed,
// with the key's current value, then live. An offset the WAL no longer
// holds is an error wrapping node.ErrOffsetUnavailable.
func (c *Client) SubscribeFrom(ctx context.Context, prefix string, from uint64) (*Subscription, error) {
	return c.subscribe(ctx, prefix, from, true)
}

func (c *Client) subscribe(ctx context.Context, prefix string, from uint64, resume bool) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The stream's context ends with ctx or the client's, its cause the
	// error the subscription then ends with.
	sctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.context(), func() { cancel(c.context().Err()) })
	s := &Subscription{c: c, prefix: prefix, ctx: sctx, cancel: func() { stop(); cancel(nil) },
		groups: make(chan []node.Event, 16), done: make(chan struct{}),
		from: from, resume: resume, delay: c.retry.delay, syncedSeen: !resume}
	if !resume && c.retry.max >= 0 {
		st, err := c.WithContext(sctx).status()
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.from, s.resume = st.NextOffset, true
	}
	conn, err := s.connect()
	if err != nil {
		s.cancel()
		return nil, err
	}
	if !c.addSub(s) {
		conn.close()
		s.cancel()
		return nil, errClientClosed
	}
	go s.run(conn)
	return s, nil
}

func (c *Client) addSub(s *Subscription) bool {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	if c.state.closed {
		return false
	}
	c.state.subs[s] = struct{}{}
	return true
}

func (c *Client) removeSub(s *Subscription) {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	delete(c.state.subs, s)
}

// Next returns the next event, waiting for one. Once the subscription
// ended it returns the events already received, then the error that ended
// it (after Close: at once, an error wrapping node.ErrClosed). It returns
// ctx's error when ctx ends first; that does not end the subscription.
func (s *Subscription) Next(ctx context.Context) (node.Event, error) {
	for {
		if s.closed.Load() {
			return node.Event{}, s.Err()
		}
		if len(s.cur) > 0 {
			ev := s.cur[0]
			s.cur[0] = node.Event{}
			s.cur = s.cur[1:]
			return ev, nil
		}
		select {
		case g, ok := <-s.groups:
			if !ok {
				return node.Event{}, s.Err()
			}
			s.cur = g
		case <-ctx.Done():
			return node.Event{}, ctx.Err()
		}
	}
}

// Err returns why the subscription ended, or nil while it is open.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done is closed when the subscription has ended (events it received
// before may still be waiting for Next).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close ends the subscription and waits for its reader; Next then returns
// an error wrapping node.ErrClosed. Safe to call more than once.
func (s *Subscription) Close() error {
	s.closed.Store(true)
	s.setErr(fmt.Errorf("%w: subscription closed", node.ErrClosed))
	s.cancel()
	<-s.done
	return nil
}

func (s *Subscription) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// watchConn is one open watch stream.
type watchConn struct {
	body   io.ReadCloser
	cancel context.CancelFunc
}

func (w *watchConn) close() {
	w.cancel()
	w.body.Close()
}

// connect opens a stream: after the last record received whole, or at the
// start. Options.Timeout bounds the wait for the answer's headers.
func (s *Subscription) connect() (*watchConn, error) {
	q := url.Values{}
	if s.prefix != "" {
		q.Set("prefix", s.prefix)
	}
	if s.lastID == "" && s.resume {
		q.Set("from", strconv.FormatUint(s.from, 10))
	}
	ctx, cancel := context.WithCancel(s.ctx)
	req, err := s.c.newRequest(ctx, http.MethodGet, "/v1/watch", q, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	var timer *time.Timer
	if s.c.timeout > 0 {
		timer = time.AfterFunc(s.c.timeout, cancel)
	}
	resp, err := s.c.hc.Do(req)
	if timer != nil && !timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("client: watch: no answer within %s: %w", s.c.timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		err := readAPIError(resp)
		resp.Body.Close()
		cancel()
		return nil, err
	}
	return &watchConn{body: resp.Body, cancel: cancel}, nil
}

// run is the reader: it reads streams, reconnecting after drops, until
// the subscription ends.
func (s *Subscription) run(conn *watchConn) {
	// Done first: once Next sees the end (groups closed), Done is closed.
	defer func() {
		close(s.done)
		close(s.groups)
	}()
	delay, attempts := s.delay, 0
	for {
		base := s.delay
		delivered, err := s.read(conn)
		conn.close()
		if delivered {
			attempts = 0
		}
		if delivered || s.delay != base { // or the server sent "retry:"
			delay = s.delay
		}
		for {
			if s.final(err) {
				s.end(err)
				return
			}
			retries := s.c.retry.max
			if retries < 0 || (retries > 0 && attempts >= retries) {
				s.end(err)
				return
			}
			attempts++
			if !s.sleep(delay) {
				s.end(s.ctx.Err())
				return
			}
			delay = min(2*delay, s.c.retry.maxDelay)
			if conn, err = s.connect(); err == nil {
				break
			}
		}
	}
}

// final reports whether err ends the subscription rather than calling
// for a reconnection.
func (s *Subscription) final(err error) bool {
	if s.ctx.Err() != nil || errors.Is(err, errBadEvent) || errors.Is(err, errEventTooLarge) || errors.Is(err, errClientClosed) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == 0 || ae.Status >= 400 && ae.Status < 500)
}

// end records why the subscription ended; Next sees it once run returns.
func (s *Subscription) end(err error) {
	if s.ctx.Err() != nil {
		// Ended from outside: by Close (whose error is already set) or by
		// a context.
		err = context.Cause(s.ctx)
	}
	s.setErr(err)
	s.cancel()
	s.c.removeSub(s)
}

// sleep waits about d (jittered), or until the subscription ends.
func (s *Subscription) sleep(d time.Duration) bool {
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// read delivers the events of one stream until it ends; delivered reports
// whether at least one record was.
func (s *Subscription) read(conn *watchConn) (delivered bool, err error) {
	r := newSSEReader(conn.body)
	var pending []node.Event // the record being received
	for {
		sse, err := r.next()
		if r.retry > 0 {
			s.delay = min(r.retry, s.c.retry.maxDelay)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the server ended the stream
			}
			return delivered, err
		}
		switch sse.Type {
		case "error":
			return delivered, eventError(sse.Data)
		case "message":
		default:
			continue
		}
		ev, err := decodeEvent(sse.Data)
		if err != nil {
			return delivered, err
		}
		if ev.Kind == node.EventSynced {
			// Only the end of the catch-up the caller asked for
			// (SubscribeFrom) is news; the ones ending the catch-ups of
			// reconnections are not.
			if s.syncedSeen {
				if sse.IDSet {
					s.lastID = sse.ID
				}
				continue
			}
			s.syncedSeen = true
		}
		pending = append(pending, ev)
		// The server sends an id on the last event of each record; the
		// events of a catch-up's resend (no record, no id) go out at once.
		if !sse.IDSet && len(pending) < maxPendingEvents && ev.Kind == node.EventChange {
			continue
		}
		select {
		case s.groups <- pending:
		case <-s.ctx.Done():
			return delivered, s.ctx.Err()
		}
		if sse.IDSet {
			s.lastID = sse.ID
		}
		pending, delivered = nil, true
	}
}

// decodeEvent decodes the data of a change event into a node.Event. The
// data is one JSON object (httpapi.AppendEvent): kind, key, type, value,
// sets, deleted, origin, offset, or error when the server could not encode
// the value. It is parsed by node.DecodeValue, not encoding/json: a watcher
// decodes every change, and this takes half the time. A field that is null
// or absent is its zero value, as encoding/json would leave it.
func decodeEvent(data string) (node.Event, error) {
	v, err := node.DecodeValue([]byte(data))
	m, ok := v.(map[string]any)
	if err == nil && !ok {
		err = errors.New("not a JSON object")
	}
	if err != nil {
		return node.Event{}, fmt.Errorf("%w: %.200q: %v", errBadEvent, data, err)
	}
	f := eventFields{m: m}
	ev := node.Event{Kind: node.EventKind(f.str("kind")), Key: f.str("key"), Type: node.Type(f.str("type")),
		Deleted: f.bool("deleted"), Origin: f.str("origin"), Offset: f.offset("offset")}
	sets, failure := f.paths("sets"), f.str("error")
	if f.err != nil {
		return node.Event{}, fmt.Errorf("%w: %.200q: %v", errBadEvent, data, f.err)
	}
	if failure != "" {
		return node.Event{}, fmt.Errorf("%w: key %q at offset %d: the server could not send it: %s", errBadEvent, ev.Key, ev.Offset, failure)
	}
	switch ev.Kind {
	case node.EventChange, node.EventState:
	case node.EventReset, node.EventSynced, node.EventExpired:
		return ev, nil // no value
	default:
		return node.Event{}, fmt.Errorf("%w: unknown event kind %q", errBadEvent, ev.Kind)
	}
	if value, present := m["value"]; present && !ev.Deleted {
		v, err := dataAs(ev.Type, value, sets)
		if err != nil {
			return node.Event{}, fmt.Errorf("%w: key %q at offset %d: %v", errBadEvent, ev.Key, ev.Offset, err)
		}
		ev.Data = v
	}
	return ev, nil
}

// eventFields reads the fields of a decoded event, keeping the first that
// has the wrong type.
type eventFields struct {
	m   map[string]any
	err error
}

func (f *eventFields) get(name string, want string, ok func(any) bool) any {
	v := f.m[name]
	if v != nil && !ok(v) && f.err == nil {
		f.err = fmt.Errorf("field %q: %.40v is not %s", name, v, want)
		return nil
	}
	return v
}

func (f *eventFields) str(name string) string {
	s, _ := f.get(name, "a string", func(v any) bool { _, ok := v.(string); return ok }).(string)
	return s
}

func (f *eventFields) bool(name string) bool {
	b, _ := f.get(name, "a boolean", func(v any) bool { _, ok := v.(bool); return ok }).(bool)
	return b
}

// offset reads a WAL offset: an integer from 0 to 2^63-1.
func (f *eventFields) offset(name string) uint64 {
	n, _ := f.get(name, "an offset", func(v any) bool { n, ok := v.(int64); return ok && n >= 0 }).(int64)
	return uint64(n)
}

// paths reads the set fields' paths: an array of arrays of strings.
func (f *eventFields) paths(name string) [][]string {
	arr, _ := f.get(name, "an array", func(v any) bool { _, ok := v.([]any); return ok }).([]any)
	var out [][]string
	for _, p := range arr {
		if p == nil {
			out = append(out, nil)
			continue
		}
		path, err := stringList(p)
		if err != nil {
			if f.err == nil {
				f.err = fmt.Errorf("field %q: %v", name, err)
			}
			return nil
		}
		out = append(out, path)
	}
	return out
}
