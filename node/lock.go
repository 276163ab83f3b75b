package node

import (
	"math/rand/v2"
	"sync"
)

// lockShards is the number of read-lock shards of the state.
const lockShards = 8

// stateLock guards the state: many readers, one writer (the committer).
// A single sync.RWMutex made concurrent Gets slower than one alone: every
// RLock and RUnlock writes the same cache line, which then bounces between
// the cores. Readers here take one of several padded RWMutexes and the
// writer takes them all, so readers rarely share a line.
//
// RLock/RUnlock use shard 0 (for code that needs no speed); rlock returns
// a random shard for the hot read paths. A reader holds one shard only and
// must not take another while holding it.
type stateLock struct {
	shards [lockShards]struct {
		sync.RWMutex
		_ [40]byte // pad to 64 bytes: one cache line per shard
	}
}

func (l *stateLock) RLock()   { l.shards[0].RLock() }
func (l *stateLock) RUnlock() { l.shards[0].RUnlock() }

// rlock read-locks a random shard and returns it for runlock.
func (l *stateLock) rlock() int {
	i := rand.IntN(lockShards)
	l.shards[i].RLock()
	return i
}

func (l *stateLock) runlock(i int) { l.shards[i].RUnlock() }

// Lock takes every shard, in order.
func (l *stateLock) Lock() {
	for i := range l.shards {
		l.shards[i].Lock()
	}
}

func (l *stateLock) Unlock() {
	for i := range l.shards {
		l.shards[i].Unlock()
	}
}
