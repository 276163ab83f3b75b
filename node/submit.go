package node

import "fmt"

// Pending is a batch queued by Submit; Wait returns its outcome.
type Pending struct {
	n    *Node
	r    *request   // nil when the batch failed before it was queued
	ops  []*request // the batch's operations, for Counter
	err  error
	done bool
}

// Submit queues b for commit, as Commit would, and returns without waiting:
// Wait on the result. Batches submitted one after another (from one
// goroutine) commit in that order, each as its own atomic record, and
// those queued before the WAL is free share one append and one fsync: a
// client that pipelines N writes waits for about one fsync, not N. A
// failing batch does not stop the ones after it. b must not be changed,
// reset or submitted again until Wait returned; the Pending is not safe
// for concurrent use.
func (n *Node) Submit(b *Batch) *Pending {
	p := &Pending{n: n, ops: b.ops}
	r, err := n.batchRequest(b)
	if err != nil || r == nil {
		p.err, p.done = err, true
		return p
	}
	if err := n.enqueue(r); err != nil {
		putRequest(r)
		p.err, p.done = err, true
		return p
	}
	p.r = r
	return p
}

// Wait waits until the batch is committed (durable under SyncAlways) or
// refused, and returns what Commit would have. Later calls return the
// same.
func (p *Pending) Wait() error {
	if p.done {
		return p.err
	}
	p.done = true
	p.err = p.n.await(p.r)
	if p.err != ErrClosed {
		putRequest(p.r)
	}
	p.r = nil
	return p.err
}

// Counter returns, once Wait returned nil, the value on this replica of
// the counter that the batch's operation i incremented, as it was right
// after the batch applied (the batch's later operations on that counter
// included). ok is false when operation i is not an Incr or the counter
// no longer exists after the batch.
func (p *Pending) Counter(i int) (v int64, ok bool) {
	if !p.done || p.err != nil || i < 0 || i >= len(p.ops) || p.ops[i].kind != reqIncr {
		return 0, false
	}
	op := p.ops[i]
	return op.n, op.counted
}

// batchRequest checks b as Commit does and wraps it in a request; nil,
// nil for an empty batch.
func (n *Node) batchRequest(b *Batch) (*request, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if b.err != nil {
		return nil, b.err
	}
	if len(b.ops) == 0 {
		return nil, nil
	}
	if len(b.ops) > n.opts.MaxBatchOperations {
		return nil, fmt.Errorf("%w: batch of %d operations (max %d)", ErrTooLarge, len(b.ops), n.opts.MaxBatchOperations)
	}
	for i, op := range b.ops {
		if op.size > n.opts.MaxValueBytes {
			return nil, fmt.Errorf("%w: batch operation %d: %s %q: %d bytes (max %d)",
				ErrTooLarge, i, op.kind, op.key, op.size, n.opts.MaxValueBytes)
		}
		op.n, op.counted = 0, false
	}
	r := getRequest(reqBatch)
	r.batch = b.ops
	return r, nil
}
