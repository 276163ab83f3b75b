package resp

import (
	"errors"
	"hash/maphash"
	"slices"

	"github.com/shoaldb/shoal/node"
)

func newSeed() maphash.Seed { return maphash.MakeSeed() }

// maxRoundOps and maxRoundBytes bound the blind writes one round collects
// before it is submitted (a record is at most 16 MiB).
const (
	maxRoundOps   = 1024
	maxRoundBytes = 1 << 20
)

// blind is one blind write of the current round.
type blind struct {
	cmd *command
	a   [][]byte
	by  int64 // INCR family: the increment
}

func (b *blind) isSet() bool { return b.cmd.name == "set" || b.cmd.name == "mset" }

// keyWrite is what a round does to one key: its last value (SET, MSET)
// or the sum of its increments (the INCR family).
type keyWrite struct {
	key   string
	incr  bool
	value []byte
	by    int64
	after int64 // replyRound: the increments of the key after the write being answered

	// A round in a shared batch (combine.go): the key's position there, and
	// the increments of the key that other rounds made before this one.
	at     int
	before int64
}

// linearKeys is how many keys a round finds by a scan before it builds a
// map: most rounds hold one or a few keys.
const linearKeys = 8

// keyWrites are a round's keys in the order of their first write, which
// is also the order of their operations in the round's batch.
type keyWrites struct {
	order []keyWrite
	index map[string]int // position in order, once there are more than linearKeys
}

// find returns key's position in order, -1 if the round has no write of it.
func (ks *keyWrites) find(key []byte) int { return findKey(ks, key) }

// findKey is find for a key of either kind (the conversions below do not
// allocate).
func findKey[K string | []byte](ks *keyWrites, key K) int {
	if ks.index != nil {
		if i, ok := ks.index[string(key)]; ok {
			return i
		}
		return -1
	}
	for i := range ks.order {
		if ks.order[i].key == string(key) {
			return i
		}
	}
	return -1
}

// add appends a key's write and returns its position.
func (ks *keyWrites) add(w keyWrite) int {
	ks.order = append(ks.order, w)
	switch {
	case ks.index != nil:
		ks.index[w.key] = len(ks.order) - 1
	case len(ks.order) > linearKeys:
		ks.index = make(map[string]int, 2*len(ks.order))
		for i := range ks.order {
			ks.index[ks.order[i].key] = i
		}
	}
	return len(ks.order) - 1
}

// round collects the blind writes (plain SET, MSET, the INCR family) of a
// connection's pipelined commands into one batch: one record for the
// lot, instead of one each (the per-record cost is most of a durable
// write's CPU). In the batch each key is written once: its last value, or
// the sum of its increments. Nothing can observe the difference, as the
// record applies atomically, and the replies are the same (an INCR's
// value is derived, see replyRound). The round joins the shared batch of
// all connections (combine.go) when it is full, when a command that must
// read arrives, or at the end of what the connection sent, and the
// replies are written once that is durable (drain).
type round struct {
	blinds []blind
	keys   keyWrites
	mixed  bool // a key both SET and incremented: the batch would fail
	bytes  int
	subs   []submitted // batches submitted, replies not yet written

	// The slices of a round answered, for the next round to fill: a
	// pipelined connection fills one every read.
	spare     []blind
	spareKeys []keyWrite
	values    []int64 // replyRound's
}

// submitted is a round submitted: on its own (p), or in a shared batch
// (sh; see combine.go) that this connection leads or joined.
type submitted struct {
	b      *node.Batch
	p      *node.Pending
	sh     *shared
	leader bool
	blinds []blind
	keys   keyWrites
}

// counter returns, once the round committed, the value of the counter its
// write op (a position in keys) incremented, right after the round's
// writes. In a shared batch that is the value after the batch less the
// increments the rounds after this one made.
func (s *submitted) counter(op int) int64 {
	if s.sh == nil {
		v, _ := s.p.Counter(op)
		return v
	}
	w := &s.keys.order[op]
	return s.sh.counter(w.at) - s.sh.keys.order[w.at].by + w.before + w.by
}

// fast takes a blind write into the round; it reports whether it did.
func (c *conn) fast(cmd *command, a [][]byte) bool {
	var by int64
	switch cmd.name {
	case "set":
		if len(a) != 3 {
			return false
		}
	case "mset":
		if len(a)%2 != 1 {
			return false
		}
	case "incr", "decr", "incrby", "decrby":
		var ok bool
		if by, ok = incrAmount(a); !ok {
			return false // the slow path answers the error
		}
	default:
		return false
	}
	r := &c.round
	if r.blinds == nil && r.spare != nil {
		r.blinds, r.keys.order, r.spare, r.spareKeys = r.spare, r.spareKeys, nil, nil
	}
	write := func(key []byte, incr bool, value []byte, by int64) {
		i := r.keys.find(key)
		if i < 0 {
			i = r.keys.add(keyWrite{key: string(key), incr: incr})
		}
		w := &r.keys.order[i]
		if w.incr != incr {
			r.mixed = true
		}
		w.value, w.by = value, w.by+by
		r.bytes += len(key) + len(value)
	}
	switch cmd.name {
	case "set":
		write(a[1], false, a[2], 0)
	case "mset":
		for i := 1; i < len(a); i += 2 {
			write(a[i], false, a[i+1], 0)
		}
	default:
		write(a[1], true, nil, by)
	}
	r.blinds = append(r.blinds, blind{cmd: cmd, a: a, by: by})
	if len(r.blinds) >= maxRoundOps || len(r.keys.order) >= c.s.maxOps || r.bytes >= maxRoundBytes {
		c.submit()
	}
	return true
}

// soloRounds is how many rounds a connection submits on its own after a
// round of its own failed in a shared batch: a client whose writes keep
// failing (INCR of a string) does not make every batch it joins fail for
// the others.
const soloRounds = 64

// submit queues the round's batch without waiting: in the open shared
// batch (combine.go), or on its own when its writes failed there lately.
func (c *conn) submit() {
	r := &c.round
	if len(r.blinds) == 0 {
		return
	}
	blinds, keys, mixed, bytes := r.blinds, r.keys, r.mixed, r.bytes
	r.blinds, r.keys, r.mixed, r.bytes = nil, keyWrites{}, false, 0
	if mixed {
		// The batch would fail on the wrong type: answer each write on its
		// own, after the batches before it (order matters here).
		c.waitSubmitted()
		c.oneByOne(blinds)
		return
	}
	if c.solo > 0 {
		c.solo--
		if n := len(r.subs); n > 0 && r.subs[n-1].sh != nil {
			c.waitSubmitted() // a shared batch is not ordered with this one
		}
		b := batchOf(&keys)
		r.subs = append(r.subs, submitted{b: b, p: c.s.n.Submit(b), blinds: blinds, keys: keys})
		return
	}
	// One shared batch at a time: two rounds of one connection in two
	// batches could commit out of order.
	c.waitSubmitted()
	sh, leader := c.s.comb.join(c.s.n, &keys, bytes, c.s.maxOps)
	r.subs = append(r.subs, submitted{sh: sh, leader: leader, blinds: blinds, keys: keys})
}

// batchOf is the batch of a round's writes, each key once.
func batchOf(keys *keyWrites) *node.Batch {
	b := new(node.Batch)
	for i := range keys.order {
		w := &keys.order[i]
		if w.incr {
			b.Incr(w.key, w.by)
		} else {
			b.Put(w.key, storedString(w.value))
		}
	}
	return b
}

// drain submits what the round holds, waits for every submitted batch,
// in order, and writes their replies.
func (c *conn) drain() {
	c.submit()
	c.waitSubmitted()
}

// waitSubmitted waits for the submitted batches, in order, and writes
// their replies.
func (c *conn) waitSubmitted() {
	for i := range c.round.subs {
		s := &c.round.subs[i]
		if err := c.wait(s); err != nil {
			// Nothing of the batch applied: redo its writes one by one,
			// so that each answers for itself.
			c.oneByOne(s.blinds)
		} else {
			c.replyRound(s)
		}
		if r := &c.round; r.spare == nil {
			clear(s.blinds) // they point into the reader's buffers
			clear(s.keys.order)
			r.spare, r.spareKeys = s.blinds[:0], s.keys.order[:0]
		}
		*s = submitted{}
	}
	c.round.subs = c.round.subs[:0]
}

// wait waits for a submitted round's outcome. A round whose shared batch
// failed (another round's write may be what failed) is submitted again on
// its own.
func (c *conn) wait(s *submitted) error {
	if s.sh == nil {
		return s.p.Wait()
	}
	if s.leader {
		c.s.comb.lead(c.s.n, s.sh)
	} else {
		<-s.sh.done
	}
	if s.sh.err == nil {
		return nil
	}
	s.sh, s.b = nil, batchOf(&s.keys)
	s.p = c.s.n.Submit(s.b)
	err := s.p.Wait()
	if err != nil {
		c.solo = soloRounds
	}
	return err
}

// replyRound answers the writes of a committed round. An INCR's value is
// the counter right after the batch less the increments of that key the
// round made after it: exact, since the batch applied as one record.
func (c *conn) replyRound(s *submitted) {
	var values []int64 // the INCRs' replies, computed from the last
	for i := len(s.blinds) - 1; i >= 0; i-- {
		bl := &s.blinds[i]
		if bl.isSet() {
			continue
		}
		if values == nil {
			values = slices.Grow(c.round.values[:0], len(s.blinds))[:len(s.blinds)]
			c.round.values = values
		}
		op := s.keys.find(bl.a[1])
		w := &s.keys.order[op]
		values[i] = s.counter(op) - w.after
		w.after += bl.by
	}
	for i := range s.blinds {
		if s.blinds[i].isSet() {
			c.o.ok()
		} else {
			c.o.int(values[i])
		}
	}
}

// oneByOne commits each write of a refused round on its own, in order,
// and answers each: the error path, so one at a time (a SET redone over
// another type must land before the writes after it).
func (c *conn) oneByOne(blinds []blind) {
	for _, bl := range blinds {
		b := new(node.Batch)
		if bl.isSet() {
			for j := 1; j < len(bl.a); j += 2 {
				b.Put(string(bl.a[j]), storedString(bl.a[j+1]))
			}
		} else {
			b.Incr(string(bl.a[1]), bl.by)
		}
		p := c.s.n.Submit(b)
		err := p.Wait()
		switch {
		case err == nil && bl.isSet():
			c.o.ok()
		case err == nil:
			v, _ := p.Counter(0)
			c.o.int(v)
		case errors.Is(err, node.ErrWrongType) && bl.isSet():
			// SET replaces a value of another type: redo it with a read,
			// which deletes the old value in the same record.
			c.runData(bl.cmd, bl.a)
		default:
			c.o.err(nodeError(err))
		}
	}
}
