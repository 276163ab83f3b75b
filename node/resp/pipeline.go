package resp

import (
	"errors"
	"hash/maphash"

	"github.com/shoaldb/shoal/node"
)

func newSeed() maphash.Seed { return maphash.MakeSeed() }

// inflight is a write submitted to the node whose reply waits for it.
type inflight struct {
	p   *node.Pending
	b   *node.Batch
	cmd *command
	a   [][]byte
}

// fast submits the blind writes (plain SET, MSET, the INCR family) without
// reading first and without waiting: the node queues them in order, the
// pipelined writes of a round share group commits, and their replies are
// written once they are durable (drain). It reports whether it took the
// command.
func (c *conn) fast(cmd *command, a [][]byte) bool {
	b := new(node.Batch)
	switch cmd.name {
	case "set":
		if len(a) != 3 {
			return false
		}
		b.Put(string(a[1]), storedString(a[2]))
	case "mset":
		if len(a)%2 != 1 {
			return false
		}
		for i := 1; i < len(a); i += 2 {
			b.Put(string(a[i]), storedString(a[i+1]))
		}
	case "incr", "decr", "incrby", "decrby":
		by, ok := incrAmount(a)
		if !ok {
			return false // the slow path answers the error
		}
		b.Incr(string(a[1]), by)
	default:
		return false
	}
	c.inflight = append(c.inflight, inflight{p: c.s.n.Submit(b), b: b, cmd: cmd, a: a})
	return true
}

// drain waits for the submitted writes, in order, and writes their
// replies.
func (c *conn) drain() {
	for i := range c.inflight {
		f := &c.inflight[i]
		err := f.p.Wait()
		switch {
		case err == nil && f.cmd.run == nil:
		case err == nil && (f.cmd.name == "set" || f.cmd.name == "mset"):
			c.o.ok()
		case err == nil:
			v, _ := f.p.Counter(0)
			c.o.int(v)
		case errors.Is(err, node.ErrWrongType) && (f.cmd.name == "set" || f.cmd.name == "mset"):
			// SET replaces a value of another type: redo it with a read,
			// which deletes the old value in the same record.
			c.runData(f.cmd, f.a)
		default:
			c.o.err(nodeError(err))
		}
		*f = inflight{}
	}
	c.inflight = c.inflight[:0]
}
