package crdt

import (
	"container/heap"
	"math"
	"time"
)

// A keyspace keeps the keys that have an expiry in two queues, so that
// finding the keys that expired costs O(log n) per key found, never a
// pass over the keyspace:
//
//   - waiting: every key with an expiry that Sweep has not reported yet,
//     a min-heap by (expiry, order of queueing); each entry knows its position (hx), so
//     a join that changes a key's expiry moves it in O(log n);
//   - expired: the keys Sweep reported, by expiry, until they are
//     reclaimed. Entries are not updated there when the key changes
//     again; Reclaim checks that the key still has the expiry it was
//     queued with (ix) before dropping it.
//
// Neither queue is part of the state: a snapshot does not carry them and
// FromSnapshot rebuilds the waiting queue.

type queued struct {
	at  Timestamp
	seq uint64 // order of queueing: ties of at go first in, first out
	key string
	e   *Entry
}

// expiryQueue is the waiting queue: a container/heap that keeps each
// entry's position in Entry.hx (1-based; 0 = not queued).
type expiryQueue []queued

func (q expiryQueue) Len() int { return len(q) }
func (q expiryQueue) Less(i, j int) bool {
	// Ties are broken by an integer, not by key: a mass expiry is all
	// ties, and comparing keys (reading each key's bytes) made popping
	// the heap most of a sweep step's time.
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q expiryQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].e.hx = int32(i + 1)
	q[j].e.hx = int32(j + 1)
}
func (q *expiryQueue) Push(x any) {
	it := x.(queued)
	it.e.hx = int32(len(*q) + 1)
	*q = append(*q, it)
}
func (q *expiryQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = queued{}
	*q = old[:len(old)-1]
	it.e.hx = 0
	return it
}

type reclaimItem struct {
	at  Timestamp
	key string
}

// reclaimQueue is the expired queue: a min-heap by expiry.
type reclaimQueue []reclaimItem

func (q reclaimQueue) Len() int           { return len(q) }
func (q reclaimQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q reclaimQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *reclaimQueue) Push(x any)        { *q = append(*q, x.(reclaimItem)) }
func (q *reclaimQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = reclaimItem{}
	*q = old[:len(old)-1]
	return it
}

// requeue brings the waiting queue up to date with the expiry of key's
// entry e after a change; O(log n) when the expiry changed, O(1) when not.
func (k *Keyspace) requeue(key string, e *Entry) {
	at := Expiry(e.Exp)
	if at == e.ix {
		return
	}
	e.ix = at
	switch {
	case at == 0:
		if e.hx != 0 {
			heap.Remove(&k.waiting, int(e.hx-1))
		}
	case e.hx != 0:
		k.waiting[e.hx-1].at = at
		heap.Fix(&k.waiting, int(e.hx-1))
	case len(k.waiting) >= maxQueued:
		// Not queued: the sweep never reclaims it, but reads hide it
		// once expired all the same (Entry.live). Past two billion keys
		// with an expiry at once.
	default:
		k.queuedSeq++
		heap.Push(&k.waiting, queued{at: at, seq: k.queuedSeq, key: key, e: e})
	}
}

// maxQueued bounds the waiting queue: an entry keeps its position in an
// int32 (Entry.hx).
const maxQueued = math.MaxInt32 - 1

// unqueue takes a removed entry out of the waiting queue.
func (k *Keyspace) unqueue(e *Entry) {
	if e.hx != 0 {
		heap.Remove(&k.waiting, int(e.hx-1))
	}
	e.ix = 0
}

// Sweep is one bounded step of expiry, for the caller to run repeatedly
// (the node runs it between commits and on a timer); it costs O(limit log
// n), whatever the keyspace's size.
//
// It reports, in expired, the keys whose expiry is at or before now that
// it has not reported before (at most limit, in order of expiry), for the
// caller to tell subscribers: only keys that held a value (a key holding
// nothing but expiry items was already absent). A key whose expiry
// changes afterwards (an extension that arrived late) is reported again
// when the new one passes.
//
// It removes from the state, in reclaimed, keys reported earlier whose
// expiry is at or before horizon (at most limit). horizon must be at most
// now; the node passes its clock minus MaxClockDrift, so that a key is
// reclaimed only once every replica whose clock is within the drift finds
// it expired too (see the package doc, "Expiry"). Reclaiming drops the
// key's values and expiry items but not their dots from the context: a
// delta that carries them again later changes nothing (the context has
// seen them), and a join with a replica that still holds them removes
// them there, as a delete would. It needs no tombstone and no operation:
// every replica reclaims by itself, from the same expiry.
//
// Sweep changes neither the context nor the applied set. It changes the
// digest (reclaimed keys are gone), so two replicas agree on the digest
// once both have reclaimed the same keys.
func (k *Keyspace) Sweep(now, horizon Timestamp, limit int) (expired, reclaimed []string) {
	horizon = min(horizon, now)
	for n := 0; n < limit && len(k.waiting) > 0 && k.waiting[0].at <= now; n++ {
		q := heap.Pop(&k.waiting).(queued)
		if q.e.visibleType() != 0 {
			expired = append(expired, q.key)
		}
		heap.Push(&k.expired, reclaimItem{at: q.at, key: q.key})
	}
	for n := 0; n < limit && len(k.expired) > 0 && k.expired[0].at <= horizon; n++ {
		it := heap.Pop(&k.expired).(reclaimItem)
		e := k.keys[it.key]
		if e == nil || e.hx != 0 || e.ix != it.at {
			continue // gone, or its expiry changed since it was reported
		}
		h := e.kh
		k.sum = k.sum.sub(h)
		delete(k.keys, it.key)
		k.index.remove(it.key)
		k.rehashed(it.key, h, sum128{})
		e.ix = 0
		reclaimed = append(reclaimed, it.key)
	}
	return expired, reclaimed
}

// SweepLag returns how far behind Sweep is: how long before now the
// oldest expiry it has not reported passed, or before horizon the oldest
// reported one it has not reclaimed (0 when it is up to date). The node
// paces its sweep by it.
func (k *Keyspace) SweepLag(now, horizon Timestamp) time.Duration {
	var lag int64
	if len(k.waiting) > 0 && k.waiting[0].at <= now {
		lag = now.Physical() - k.waiting[0].at.Physical()
	}
	if horizon = min(horizon, now); len(k.expired) > 0 && k.expired[0].at <= horizon {
		lag = max(lag, horizon.Physical()-k.expired[0].at.Physical())
	}
	return time.Duration(lag) * time.Millisecond
}

// Expiring returns how many keys with an expiry wait to be reported by
// Sweep, and how many were reported and wait to be reclaimed.
func (k *Keyspace) Expiring() (waiting, expired int) { return len(k.waiting), len(k.expired) }
