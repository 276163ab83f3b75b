package resp

import (
	"errors"
	"hash/maphash"

	"github.com/shoaldb/shoal/node"
)

func newSeed() maphash.Seed { return maphash.MakeSeed() }

// maxRoundOps and maxRoundBytes bound the batch one round of pipelined
// blind writes builds before it is submitted (a record is at most 16 MiB).
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

// round collects the blind writes (plain SET, MSET, the INCR family) of a
// connection's pipelined commands into one batch: one record for the
// lot, instead of one each (the per-record cost is most of a durable
// write's CPU). The batch is submitted without waiting when the round is
// full or a command that must read arrives (the node queues it in order,
// so batches of all connections share group commits), and the replies
// are written once it is durable (drain).
type round struct {
	b      *node.Batch
	bytes  int // the values' bytes in b
	blinds []blind
	p      *node.Pending // the submitted batch, until drained
	subs   []submitted   // earlier submitted batches of this round of reads
}

type submitted struct {
	b      *node.Batch
	p      *node.Pending
	blinds []blind
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
	if r.b == nil {
		r.b = new(node.Batch)
	}
	switch cmd.name {
	case "set":
		r.b.Put(string(a[1]), storedString(a[2]))
		r.bytes += len(a[1]) + len(a[2])
	case "mset":
		for i := 1; i < len(a); i += 2 {
			r.b.Put(string(a[i]), storedString(a[i+1]))
			r.bytes += len(a[i]) + len(a[i+1])
		}
	default:
		r.b.Incr(string(a[1]), by)
	}
	r.blinds = append(r.blinds, blind{cmd: cmd, a: a, by: by})
	if r.b.Len() >= maxRoundOps || r.bytes >= maxRoundBytes {
		c.submit()
	}
	return true
}

// submit queues the round's batch with the node, without waiting.
func (c *conn) submit() {
	r := &c.round
	if r.b == nil {
		return
	}
	r.subs = append(r.subs, submitted{b: r.b, p: c.s.n.Submit(r.b), blinds: r.blinds})
	r.b, r.blinds, r.bytes = nil, nil, 0
}

// drain submits what the round holds, waits for every submitted batch,
// in order, and writes their replies.
func (c *conn) drain() {
	c.submit()
	for i := range c.round.subs {
		s := &c.round.subs[i]
		if err := s.p.Wait(); err != nil {
			// Nothing of the batch applied: redo its writes one by one,
			// so that each answers for itself.
			c.oneByOne(s.blinds)
		} else {
			c.replyRound(s)
		}
		*s = submitted{}
	}
	c.round.subs = c.round.subs[:0]
}

// replyRound answers the writes of a committed round's batch. An INCR's
// value is the counter right after the batch less the increments of that
// key the batch made after it: exact, since the batch applied as one
// record.
func (c *conn) replyRound(s *submitted) {
	var after map[string]int64 // key -> increments after the current op
	op := s.b.Len()
	values := make([]int64, len(s.blinds))
	for i := len(s.blinds) - 1; i >= 0; i-- {
		bl := s.blinds[i]
		if bl.cmd.name == "set" || bl.cmd.name == "mset" {
			op -= (len(bl.a) - 1) / 2
			continue
		}
		op--
		v, _ := s.p.Counter(op)
		if after == nil {
			after = make(map[string]int64)
		}
		key := string(bl.a[1])
		values[i] = v - after[key]
		after[key] += bl.by
	}
	for i, bl := range s.blinds {
		if bl.cmd.name == "set" || bl.cmd.name == "mset" {
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
		if bl.cmd.name == "set" || bl.cmd.name == "mset" {
			for j := 1; j < len(bl.a); j += 2 {
				b.Put(string(bl.a[j]), storedString(bl.a[j+1]))
			}
		} else {
			b.Incr(string(bl.a[1]), bl.by)
		}
		p := c.s.n.Submit(b)
		err := p.Wait()
		switch {
		case err == nil && (bl.cmd.name == "set" || bl.cmd.name == "mset"):
			c.o.ok()
		case err == nil:
			v, _ := p.Counter(0)
			c.o.int(v)
		case errors.Is(err, node.ErrWrongType) && (bl.cmd.name == "set" || bl.cmd.name == "mset"):
			// SET replaces a value of another type: redo it with a read,
			// which deletes the old value in the same record.
			c.runData(bl.cmd, bl.a)
		default:
			c.o.err(nodeError(err))
		}
	}
}
