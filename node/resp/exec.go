package resp

import (
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/shoaldb/shoal/node"
)

// exec runs the commands of one call (or one transaction): reads see the
// node's state plus the writes made so far, which collect in one batch
// committed afterwards as one atomic record.
type exec struct {
	c    *conn
	o    *out
	n    *node.Node
	b    node.Batch
	keep bool // keep loaded values in vals: the command or transaction writes
	vals map[string]*val
}

// load returns the current value of key, or writes an error reply and
// returns nil.
func (x *exec) load(key []byte) *val {
	if v, ok := x.vals[string(key)]; ok {
		return v
	}
	v, err := load(x.n, string(key))
	if err != nil {
		x.o.err(nodeError(err))
		return nil
	}
	if !x.keep {
		return v // a read-only command reads each key once
	}
	if x.vals == nil {
		x.vals = make(map[string]*val)
	}
	x.vals[string(key)] = v
	return v
}

// loadType is load that answers WRONGTYPE when the key exists with a type
// other than those given.
func (x *exec) loadType(key []byte, types ...node.Type) *val {
	v := x.load(key)
	if v == nil {
		return nil
	}
	if v.exists() && !slices.Contains(types, v.typ) {
		x.o.err(errWrongType)
		return nil
	}
	return v
}

// setString writes a Redis string to key. Like Redis SET, it replaces a
// value of another type: the old value is deleted in the same record (an
// observed remove, so a concurrent write of the old type elsewhere
// survives, and the type of higher precedence shows; see crdt).
// With ttl > 0 the key expires ttl after the write; 0 keeps the key's
// expiry (see expiry.go).
func (x *exec) setString(key, value []byte, v *val, ttl time.Duration) {
	k := string(key)
	if v.exists() && v.typ != node.TypeRegister {
		x.b.Delete(k)
	}
	x.b.PutWith(k, storedString(value), node.WriteOptions{TTL: ttl})
	keep := *v
	*v = val{typ: node.TypeRegister, str: value}
	switch {
	case ttl > 0:
		v.expires, v.expLoaded = time.Now().Add(ttl).Truncate(time.Millisecond), true
	case keep.typ == node.TypeRegister:
		v.expires, v.expLoaded = keep.expires, keep.expLoaded
	}
}

func (x *exec) del(key []byte, v *val) {
	x.b.Delete(string(key))
	*v = val{}
}

// incr adds by to the counter v; false (after an error reply) on
// overflow.
func (x *exec) incr(key []byte, v *val, by int64) bool {
	if (by > 0 && v.n > math.MaxInt64-by) || (by < 0 && v.n < math.MinInt64-by) {
		x.o.err(errOverflow)
		return false
	}
	x.b.Incr(string(key), by)
	v.typ, v.n = node.TypeCounter, v.n+by
	return true
}

func (x *exec) setAdd(key []byte, v *val, members []string) {
	x.b.SetAdd(string(key), members...)
	if v.set == nil {
		v.set = make(map[string]struct{})
	}
	v.typ = node.TypeSet
	for _, m := range members {
		v.set[m] = struct{}{}
	}
}

func (x *exec) setRemove(key []byte, v *val, members []string) {
	x.b.SetRemove(string(key), members...)
	for _, m := range members {
		delete(v.set, m)
	}
	if len(v.set) == 0 {
		*v = val{}
	}
}

// stripes serialise the read-modify-write commands (SET NX, SADD's count,
// GETDEL, transactions...) of this node's RESP clients per key, so that
// two of them on one key do not both read the old value. Writes from the
// HTTP API and from peers are not covered: see the package doc.
type stripes struct {
	seed maphash.Seed
	mu   [256]sync.Mutex
}

func (s *stripes) lock(keys []string) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.String(s.seed, k)%uint64(len(s.mu))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx) // in order, each once: no deadlock
	for _, i := range idx {
		s.mu[i].Lock()
	}
	return func() {
		for _, i := range idx {
			s.mu[i].Unlock()
		}
	}
}
