package resp

import (
	"sync"

	"github.com/shoaldb/shoal/node"
)

// combiner merges the rounds of blind writes of all connections into
// shared batches: while one batch commits, the rounds that arrive meanwhile
// gather into the next, which is submitted as one record when the first
// is answered. Per record the node builds, encodes, logs, applies and
// answers once, and a key written by many clients is written once: 256
// clients each sending one SET cost the node about what one pipelined
// client sending 256 does. The node's group commit shares an fsync
// between records, but not that per-record work, most of a lone durable
// write's CPU after the system calls.
//
// Merging writes of different connections keeps what each was promised:
// nothing of a batch is answered before it is durable, the batch applies
// atomically, and writes that no client has seen answered are concurrent,
// so committing them as one record, the last value of a key winning, is an
// order they could have run in. A connection's own writes keep their
// order because a connection has at most one shared batch unanswered (it
// waits for it before it joins another or submits on its own).
//
// A batch has no goroutine of its own: the connection that opened it (its
// leader) waits for its outcome and then submits the next open batch, if
// one is waiting for its turn, before it wakes the others. A batch is
// submitted at once when nothing is in flight, and when it is full (so a
// heavy load keeps the node's pipeline busy); else it waits for the batch
// in flight to be answered.
type combiner struct {
	mu       sync.Mutex
	open     *shared // gathering rounds, not yet submitted
	inflight int     // batches submitted and not yet answered by their leader

	// For INFO stats: batches answered, the rounds they held, and those
	// refused (each round then retried alone).
	batches, rounds, failed int64
}

// shared is one batch of several connections' rounds.
type shared struct {
	keys  keyWrites // each key once: its last value, or its increments summed
	bytes int

	p     *node.Pending // set before ready closes; only the leader waits on it
	ready chan struct{} // closed once submitted
	done  chan struct{} // closed once answered: err is set
	err   error
}

func newShared() *shared {
	return &shared{ready: make(chan struct{}), done: make(chan struct{})}
}

// fits reports whether a round's writes can join sh: within a round's
// bounds (maxOps keys), and no key both set and incremented (the batch
// would fail).
func (sh *shared) fits(keys *keyWrites, bytes, maxOps int) bool {
	if sh.bytes+bytes > maxRoundBytes || len(sh.keys.order)+len(keys.order) > maxOps {
		return false
	}
	for i := range keys.order {
		if j := findKey(&sh.keys, keys.order[i].key); j >= 0 && sh.keys.order[j].incr != keys.order[i].incr {
			return false
		}
	}
	return true
}

// add merges a round's writes into sh, and notes in each of them where its
// key is in sh and the increments of that key before it (for the round's
// INCR replies, see submitted.counter).
func (sh *shared) add(keys *keyWrites, bytes int) {
	for i := range keys.order {
		w := &keys.order[i]
		j := findKey(&sh.keys, w.key)
		if j < 0 {
			j = sh.keys.add(keyWrite{key: w.key, incr: w.incr})
		}
		s := &sh.keys.order[j]
		w.at, w.before = j, s.by
		if w.incr {
			s.by += w.by
		} else {
			s.value = w.value
		}
	}
	sh.bytes += bytes
}

// stats returns the counts INFO shows.
func (cb *combiner) stats() (batches, rounds, failed int64) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.batches, cb.rounds, cb.failed
}

// join adds a round's writes (not mixed: see round.mixed) to the open
// batch, opening one when there is none or the round does not fit, and
// submits what is due. leader is true for the round that opened sh: its
// connection must wait for sh with lead.
func (cb *combiner) join(n *node.Node, keys *keyWrites, bytes, maxOps int) (sh *shared, leader bool) {
	var due [2]*shared
	cb.mu.Lock()
	if cb.open != nil && !cb.open.fits(keys, bytes, maxOps) {
		// Full, or at odds with this round: submitted now, in flight
		// beside the others.
		due[0], cb.open = cb.open, nil
		cb.inflight++
	}
	if cb.open == nil {
		cb.open, leader = newShared(), true
	}
	sh = cb.open
	sh.add(keys, bytes)
	cb.rounds++
	if cb.inflight == 0 {
		due[1], cb.open = sh, nil
		cb.inflight++
	}
	cb.mu.Unlock()
	for _, d := range due {
		if d != nil {
			d.submit(n)
		}
	}
	return sh, leader
}

// submit hands a sealed batch to the node, without waiting. Its values
// are slices of its connections' read buffers, which stay put until they
// are answered.
func (sh *shared) submit(n *node.Node) {
	sh.p = n.Submit(batchOf(&sh.keys))
	close(sh.ready)
}

// lead is the leader's wait: for sh's outcome, then it submits the next
// open batch if none is in flight, and answers sh's other connections.
func (cb *combiner) lead(n *node.Node, sh *shared) {
	<-sh.ready
	sh.err = sh.p.Wait()
	var next *shared
	cb.mu.Lock()
	cb.inflight--
	cb.batches++
	if sh.err != nil {
		cb.failed++
	}
	if cb.inflight == 0 && cb.open != nil {
		next, cb.open = cb.open, nil
		cb.inflight++
	}
	cb.mu.Unlock()
	if next != nil {
		next.submit(n) // first: the node builds it while the answered run
	}
	close(sh.done)
}

// counter returns, once sh is answered, the value of the counter at
// position at in sh right after the batch.
func (sh *shared) counter(at int) int64 {
	v, _ := sh.p.Counter(at)
	return v
}
