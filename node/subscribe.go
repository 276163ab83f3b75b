package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// EventKind says what an Event reports.
type EventKind string

const (
	// EventChange: a record changed the key (Deleted: it no longer
	// exists). Offset is the record's.
	EventChange EventKind = ""
	// EventReset starts a full resend by a catch-up (SubscribeFrom from an
	// offset so far back that reporting each changed key would take more
	// than the subscription's buffer): forget what you hold under the
	// prefix (Key); EventState events with every key that exists under it
	// follow, then EventSynced.
	EventReset EventKind = "reset"
	// EventState is a key's current value, sent by a full resend.
	EventState EventKind = "state"
	// EventSynced ends a catch-up: everything up to Offset (exclusive) has
	// been reported; live changes follow. Resume with SubscribeFrom(Offset).
	EventSynced EventKind = "synced"
	// EventExpired: the key expired (Deleted is set). It is reported by
	// the node's sweep, shortly after reads stopped finding the key, on
	// every replica by itself. No record made it: Offset is the last
	// record applied before it, so resuming at Offset+1 misses nothing
	// (the watch stream sends it without an id). A catch-up reports an
	// expired key as a deleted EventChange.
	EventExpired EventKind = "expired"
)

// Event is one change of one key, made by a local or a remote write, or a
// step of a catch-up (see EventKind).
type Event struct {
	Kind    EventKind
	Key     string
	Type    Type // the key's type; "" when Deleted
	Deleted bool // the key no longer exists
	Data    any  // the key's value after the change, as in Value.Data; nil when Deleted
	Origin  string
	// Offset is the WAL offset of the record that made the change. Events of
	// one record (an atomic batch) share it. Resuming with SubscribeFrom at
	// Offset repeats that record's events; at Offset+1 skips them. Events
	// of a full resend carry no record's offset: they share the offset of
	// the EventSynced that ends them (a resume point only once it arrived).
	Offset uint64
}

// Subscription delivers the changes of the keys under a prefix, in WAL
// order (so in order per key). It is bounded: a reader that falls more than
// Options.SubscriberBuffer events behind is dropped with ErrSlowSubscriber,
// and writers never wait for it. Next may be called from one goroutine at a
// time; Close from any.
type Subscription struct {
	n         *Node
	prefix    string
	limit     int
	minOffset uint64 // live events below this were delivered by the catch-up backlog
	stopAfter func() bool

	mu      sync.Mutex
	backlog []Event // catch-up events, delivered first
	pass    *fullPass
	synced  *Event  // the EventSynced ending a catch-up, delivered after it
	queue   []Event // live events; queue[head:] are undelivered
	head    int
	err     error         // why it ended
	done    chan struct{} // closed when it ends
	notify  chan struct{} // cap 1: an event arrived
}

// Next returns the next event, waiting for one. It returns the error that
// ended the subscription (ErrSlowSubscriber, ErrClosed when the node or the
// subscription was closed, or the error of the context given to Subscribe),
// or ctx's error when ctx ends first; the latter does not end the
// subscription.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return Event{}, err
		}
		if len(s.backlog) > 0 {
			ev := s.backlog[0]
			s.backlog[0] = Event{}
			s.backlog = s.backlog[1:]
			s.mu.Unlock()
			return ev, nil
		}
		if p := s.pass; p != nil && !p.done {
			s.mu.Unlock()
			// Read the next chunk of the full resend (outside s.mu: the
			// publisher holds the state lock before s.mu).
			evs := s.n.readPass(p, s.limit)
			s.mu.Lock()
			if s.err == nil && len(s.backlog) == 0 {
				s.backlog = evs
			}
			s.mu.Unlock()
			continue
		}
		if s.synced != nil {
			ev := *s.synced
			s.synced = nil
			s.mu.Unlock()
			return ev, nil
		}
		if s.head < len(s.queue) {
			ev := s.queue[s.head]
			s.queue[s.head] = Event{}
			s.head++
			if s.head == len(s.queue) {
				s.queue, s.head = s.queue[:0], 0
			}
			if s.pass != nil && s.pass.stale(ev) {
				s.mu.Unlock()
				continue
			}
			s.mu.Unlock()
			return ev, nil
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-s.done:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// fullPass is a full resend of a prefix, read lazily in key order, a chunk
// per call, so that it costs a chunk of memory whatever the store's size.
// Owned by the subscription's reader (Next).
type fullPass struct {
	prefix string
	cut    uint64 // live events start here
	reset  bool   // EventReset sent
	cursor string // the last key sent
	done   bool
	// chunks record, per chunk read, its last key and the WAL offset the
	// state was at: a live event for a key a chunk covered, made by a
	// record below that offset, is older than what the chunk sent.
	chunks []passChunk
}

type passChunk struct {
	last    string
	applied uint64
}

// passChunkKeys is how many keys one read of a full resend takes.
const passChunkKeys = 256

// stale reports whether a live event is older than what the pass sent for
// its key.
func (p *fullPass) stale(ev Event) bool {
	if ev.Kind != EventChange {
		return false
	}
	i, _ := slices.BinarySearchFunc(p.chunks, ev.Key, func(c passChunk, k string) int { return strings.Compare(c.last, k) })
	return i < len(p.chunks) && ev.Offset < p.chunks[i].applied
}

// readPass reads the next chunk of a full resend.
func (n *Node) readPass(p *fullPass, limit int) []Event {
	if !p.reset {
		p.reset = true
		return []Event{{Kind: EventReset, Key: p.prefix, Offset: p.cut}}
	}
	chunk := min(passChunkKeys, max(limit, 1))
	evs := make([]Event, 0, chunk)
	sh := n.mu.rlock()
	now := n.readTime()
	infos := n.ks.KeysAfter(p.prefix, p.cursor, chunk, 0) // the cursor moves over expired keys too
	for _, ki := range infos {
		v, ok := n.ks.Get(ki.Key, now)
		if !ok {
			continue
		}
		data, err := convertView(&v)
		if err != nil {
			n.log.Warn("subscription resend: undecodable value", "key", truncateKey(ki.Key), "err", err)
			continue
		}
		evs = append(evs, Event{Kind: EventState, Key: ki.Key, Type: typeOf(v.Type), Data: data, Offset: p.cut})
	}
	applied := n.applied
	n.mu.runlock(sh)
	if len(infos) == 0 {
		p.done = true
		return nil
	}
	p.cursor = infos[len(infos)-1].Key
	p.chunks = append(p.chunks, passChunk{last: p.cursor, applied: applied})
	return evs
}

// Err returns why the subscription ended, or nil while it is open.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close ends the subscription; Next then returns ErrClosed. Safe to call
// more than once.
func (s *Subscription) Close() error {
	if s.finish(fmt.Errorf("%w: subscription closed", ErrClosed)) {
		s.n.hub.remove(s)
	}
	return nil
}

// finish ends the subscription with err; it reports whether this call did.
func (s *Subscription) finish(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.err = err
	s.backlog, s.queue, s.pass, s.synced = nil, nil, nil, nil
	close(s.done)
	if s.stopAfter != nil {
		s.stopAfter()
	}
	return true
}

// push queues live events together (a reader sees all of a record's
// events or none of them yet: the watch stream tells a record's last
// event by what follows it); false means the reader is too far behind.
func (s *Subscription) push(evs []Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return true
	}
	// Behind is what the reader had not taken before this group: a group
	// (one record can hold MaxBatchOperations changes, a remote delivery
	// many records) is never itself a reason to drop a reader that kept up.
	if len(s.queue)-s.head >= s.limit {
		return false
	}
	if s.head > 0 && len(s.queue)+len(evs) > cap(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, evs...)
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return true
}

// hub fans events out to subscriptions. The commit loop publishes; it never
// blocks on a reader.
type hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	// prefixes is a copy-on-write list of the subscribed prefixes, so the
	// loop can tell without a lock whether anyone wants a key's event.
	prefixes atomic.Pointer[[]string]
	m        *metrics
}

func (h *hub) init(m *metrics) {
	h.subs = make(map[*Subscription]struct{})
	h.m = m
	h.prefixes.Store(&[]string{})
}

// interested reports whether some subscription covers key.
func (h *hub) interested(key string) bool {
	for _, p := range *h.prefixes.Load() {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (h *hub) active() bool { return len(*h.prefixes.Load()) > 0 }

// addLocked registers s; h.mu must be held.
func (h *hub) addLocked(s *Subscription) {
	h.subs[s] = struct{}{}
	h.refreshLocked()
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.refreshLocked()
	}
}

func (h *hub) refreshLocked() {
	ps := make([]string, 0, len(h.subs))
	for s := range h.subs {
		ps = append(ps, s.prefix)
	}
	slices.Sort(ps)
	ps = slices.Compact(ps)
	h.prefixes.Store(&ps)
	h.m.subscribers.Set(float64(len(h.subs)))
}

// publish hands events (in WAL order) to every matching subscription.
func (h *hub) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var slow []*Subscription
	var mine []Event
	for s := range h.subs {
		mine = mine[:0]
		for i := range evs {
			ev := &evs[i]
			// An expiry comes from no record: the catch-up never
			// delivered it (and reports the key deleted if it looked).
			if (ev.Offset >= s.minOffset || ev.Kind == EventExpired) && strings.HasPrefix(ev.Key, s.prefix) {
				mine = append(mine, *ev)
			}
		}
		if len(mine) > 0 && !s.push(mine) {
			slow = append(slow, s)
		}
	}
	for _, s := range slow {
		if s.finish(fmt.Errorf("%w: more than %d events behind", ErrSlowSubscriber, s.limit)) {
			h.m.subDropped.Inc()
		}
		delete(h.subs, s)
	}
	if len(slow) > 0 {
		h.refreshLocked()
	}
}

// closeAll ends every subscription with err (the node is closing).
func (h *hub) closeAll(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.finish(err)
		delete(h.subs, s)
	}
	h.refreshLocked()
}

// Subscribe delivers the changes of the keys starting with prefix ("" =
// all keys) made from now on, by local and remote writes, until ctx ends,
// the subscription is closed, or the node closes.
func (n *Node) Subscribe(ctx context.Context, prefix string) (*Subscription, error) {
	return n.subscribe(ctx, prefix, 0, false)
}

// SubscribeFrom is Subscribe that first catches up from the WAL offset from
// (as carried by Event.Offset): it delivers one event for each key under
// prefix that a record at offset >= from changed, carrying the key's
// current value (history is not kept, the state is: several changes of one
// key during the catch-up arrive as one), then continues live with no gap
// and no repeat. from must still be in the WAL (snapshots let older records
// be truncated) and not beyond its end, else ErrOffsetUnavailable.
func (n *Node) SubscribeFrom(ctx context.Context, prefix string, from uint64) (*Subscription, error) {
	return n.subscribe(ctx, prefix, from, true)
}

func (n *Node) subscribe(ctx context.Context, prefix string, from uint64, resume bool) (*Subscription, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Subscription{
		n:      n,
		prefix: prefix,
		limit:  n.opts.SubscriberBuffer,
		done:   make(chan struct{}),
		notify: make(chan struct{}, 1),
	}
	if !resume {
		n.hub.mu.Lock()
		n.hub.addLocked(s)
		n.hub.mu.Unlock()
	} else if err := n.catchUp(s, from); err != nil {
		return nil, err
	}
	// The node may have closed while we registered: Close ends the
	// subscriptions it finds after it stopped the loop.
	if n.closed.Load() {
		s.finish(ErrClosed)
		n.hub.remove(s)
		return nil, ErrClosed
	}
	stop := context.AfterFunc(ctx, func() {
		if s.finish(ctx.Err()) {
			n.hub.remove(s)
		}
	})
	s.mu.Lock()
	if s.err != nil {
		stop()
	} else {
		s.stopAfter = stop
	}
	s.mu.Unlock()
	return s, nil
}

// catchUp scans the WAL from `from` for the keys under s.prefix, then, at a
// cut where nothing is applied but unpublished, reads their values and
// registers s for the live events after the cut. When more keys changed
// than the subscription's buffer holds, it reports them all by a full
// resend instead, read lazily: memory stays bounded by the buffer whatever
// the store's size and however far back from is.
func (n *Node) catchUp(s *Subscription, from uint64) error {
	first, next := n.wal.FirstOffset(), n.wal.NextOffset()
	if from < first || from > next {
		return fmt.Errorf("%w: offset %d not in [%d, %d]", ErrOffsetUnavailable, from, first, next)
	}
	touched := make(map[string]catchUpKey)
	maxKeys := max(s.limit, 1)
	// Most of the scan runs without locks; the tail is finished at the cut.
	pos, err := n.scanKeys(from, ^uint64(0), s.prefix, touched, maxKeys)
	full := errors.Is(err, errTooManyKeys)
	if err != nil && !full {
		return err
	}
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	n.mu.RLock()
	defer n.mu.RUnlock()
	cut := n.applied
	if pos < cut && !full {
		if _, err := n.scanKeys(pos, cut, s.prefix, touched, maxKeys); errors.Is(err, errTooManyKeys) {
			full = true
		} else if err != nil {
			return err
		}
	}
	s.minOffset = cut
	s.synced = &Event{Kind: EventSynced, Key: s.prefix, Offset: cut}
	if full {
		s.pass = &fullPass{prefix: s.prefix, cut: cut}
		n.hub.addLocked(s)
		return nil
	}
	evs := make([]Event, 0, len(touched))
	now := n.readTime()
	for key, t := range touched {
		if t.offset >= cut {
			continue // applied after the cut: a live event follows
		}
		ev := Event{Key: key, Origin: t.origin.String(), Offset: t.offset}
		if v, ok := n.ks.Get(key, now); ok {
			data, err := convertView(&v)
			if err != nil {
				n.log.Warn("subscription catch-up: undecodable value", "key", truncateKey(key), "err", err)
				continue
			}
			ev.Type, ev.Data = typeOf(v.Type), data
		} else {
			ev.Deleted = true
		}
		evs = append(evs, ev)
	}
	slices.SortFunc(evs, func(a, b Event) int {
		if a.Offset != b.Offset {
			if a.Offset < b.Offset {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	s.backlog = evs
	n.hub.addLocked(s)
	return nil
}

// errTooManyKeys stops a catch-up scan that found more keys than it may
// hold.
var errTooManyKeys = errors.New("node: catch-up: too many keys")

type catchUpKey struct {
	offset uint64
	origin crdt.ReplicaID
}

// scanKeys records, for each key under prefix changed by a record in
// [from, to), the last such record. It returns where it stopped (the WAL's
// end or to), or errTooManyKeys once into holds more than maxKeys keys.
func (n *Node) scanKeys(from, to uint64, prefix string, into map[string]catchUpKey, maxKeys int) (uint64, error) {
	r, err := n.wal.NewReader(from)
	if err != nil {
		if errors.Is(err, wal.ErrTruncated) || errors.Is(err, wal.ErrOutOfRange) {
			return from, fmt.Errorf("%w: offset %d: %w", ErrOffsetUnavailable, from, err)
		}
		return from, fmt.Errorf("node: subscription catch-up: %w", err)
	}
	defer r.Close()
	pos := from
	for pos < to {
		off, rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, wal.ErrTruncated) {
				return pos, fmt.Errorf("%w: offset %d: %w", ErrOffsetUnavailable, pos, err)
			}
			return pos, fmt.Errorf("node: subscription catch-up: %w", err)
		}
		pos = off + 1
		op, err := DecodeOp(rec)
		if err != nil {
			return pos, fmt.Errorf("node: subscription catch-up: offset %d: %w", off, err)
		}
		for _, key := range opKeys(op) {
			if strings.HasPrefix(key, prefix) {
				into[key] = catchUpKey{offset: off, origin: op.Origin}
			}
		}
		if len(into) > maxKeys {
			return pos, errTooManyKeys
		}
	}
	return pos, nil
}

// opKeys lists the keys a record may change.
func opKeys(op *Op) []string {
	if op.Delta == nil {
		return nil
	}
	keys := make([]string, 0, len(op.Delta.Keys))
	for k := range op.Delta.Keys {
		keys = append(keys, k)
	}
	return keys
}
