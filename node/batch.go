package node

import (
	"fmt"
)

// Batch is a group of writes, possibly on several keys, that Commit makes
// durable and visible atomically: they share one WAL record, so after a
// crash either all of them are there or none. Operations apply in the
// order they were added and see the earlier ones (a Put then an Incr of
// the same key fails with ErrWrongType). A Batch is not safe for concurrent
// use; the zero value is an empty batch.
type Batch struct {
	ops []*request
	err error // the first invalid operation
}

func (b *Batch) add(r *request, err error) {
	if err != nil {
		if b.err == nil {
			b.err = fmt.Errorf("node: batch operation %d: %w", len(b.ops), err)
		}
		return
	}
	b.ops = append(b.ops, r) // answered with the batch: never sent, so no channel
}

// Put adds a register write (see Node.Put).
func (b *Batch) Put(key string, value any) { b.add(newPut(key, value)) }

// Delete adds a key delete (see Node.Delete).
func (b *Batch) Delete(key string) { b.add(newDelete(key)) }

// Incr adds a counter increment (see Node.Incr).
func (b *Batch) Incr(key string, by int64) { b.add(newIncr(key, by)) }

// SetAdd adds a set add (see Node.SetAdd).
func (b *Batch) SetAdd(key string, members ...string) { b.add(newSetOp(reqSetAdd, key, members)) }

// SetRemove adds a set remove (see Node.SetRemove).
func (b *Batch) SetRemove(key string, members ...string) {
	b.add(newSetOp(reqSetRemove, key, members))
}

// Update adds a document update (see Node.Update).
func (b *Batch) Update(key string, p Patch) { b.add(newUpdate(key, p)) }

// Len is the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Err returns the first invalid operation added (Commit returns it too).
func (b *Batch) Err() error { return b.err }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { *b = Batch{} }

// Commit applies the batch atomically: every operation or none (the first
// failing one's error is returned, wrapped with its position). An empty
// batch is a no-op. The batch may be committed again or reset afterwards.
func (n *Node) Commit(b *Batch) error {
	r, err := n.batchRequest(b)
	if err != nil || r == nil {
		return err
	}
	_, err = n.do(r)
	return err
}
