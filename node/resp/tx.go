package resp

import "bytes"

// Transactions. MULTI queues commands; EXEC runs them in order against
// the node's state plus their own writes and commits every write as one
// atomic record (node.Batch): after a crash all of them are there or
// none. A queued command that fails when run (WRONGTYPE...) answers its
// error in EXEC's reply and adds nothing, as in Redis; if the record
// itself cannot be committed, EXEC answers that error and nothing is
// applied.
//
// No WATCH: a replica has no global version of a key to compare. Another
// replica may accept a conflicting write at the same moment and both
// commit; the CRDTs merge them (see the package doc), so a compare-and-
// swap would promise what leaderless replication cannot keep.

func (c *conn) multiCmd(a [][]byte) {
	if c.multi {
		c.o.err(errNestedMulti)
		return
	}
	c.multi, c.dirty, c.queued = true, false, c.queued[:0]
	c.o.ok()
}

// queue adds a command to the transaction, or refuses it (EXEC will then
// abort).
func (c *conn) queue(cmd *command, a [][]byte) {
	switch {
	case cmd == nil:
		c.o.err(unknownCommand(a))
	case !cmd.arityOK(len(a)):
		c.o.err(errArity(cmd.name))
	case !cmd.tx:
		c.o.err("ERR Command not allowed inside a transaction")
	case len(c.queued) >= c.s.opts.MaxQueued:
		c.o.err("ERR too many commands in the transaction")
	default:
		// A copy: the arguments live in the read buffer, reused once the
		// commands read so far are answered.
		q := make([][]byte, len(a))
		for i, arg := range a {
			q[i] = bytes.Clone(arg)
		}
		c.queued = append(c.queued, q)
		c.o.status("QUEUED")
		return
	}
	c.dirty = true
}

func (c *conn) discard(a [][]byte) {
	if !c.multi {
		c.o.err("ERR DISCARD without MULTI")
		return
	}
	c.endMulti()
	c.o.ok()
}

func (c *conn) endMulti() {
	clear(c.queued)
	c.multi, c.dirty, c.queued = false, false, c.queued[:0]
}

func (c *conn) execCmd(a [][]byte) {
	if !c.multi {
		c.o.err("ERR EXEC without MULTI")
		return
	}
	defer c.endMulti()
	if c.dirty {
		c.o.err(errExecAbort)
		return
	}
	var keys []string
	for _, q := range c.queued {
		keys = append(keys, lookup(q[0]).keys(q)...)
	}
	unlock := c.s.locks.lock(keys)
	defer unlock()
	c.temp.reset()
	x := exec{c: c, o: &c.temp, n: c.s.n, keep: true}
	c.temp.array(len(c.queued))
	for _, q := range c.queued {
		cmd := lookup(q[0])
		if cmd.conn != nil { // PING, ECHO: they answer on c.o
			saved := c.o
			c.o = c.temp
			cmd.conn(c, q)
			c.temp, c.o = c.o, saved
			continue
		}
		cmd.run(&x, q)
	}
	if x.b.Len() > 0 || x.b.Err() != nil {
		if err := c.s.n.Commit(&x.b); err != nil {
			c.o.err(nodeError(err))
			return
		}
	}
	c.o.raw(c.temp.buffer())
}

func (c *conn) watch(a [][]byte) {
	if c.multi {
		c.o.err("ERR WATCH inside MULTI is not allowed")
		return
	}
	c.o.err("ERR WATCH is not supported: shoal is leaderless, a replica has no global version of a key to compare (MULTI/EXEC still commits as one atomic record)")
}

func (c *conn) unwatch(a [][]byte) { c.o.ok() }
