package node

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/shoaldb/shoal/crdt"
)

// Store is the key-value API that an embedded Node and a client of a
// node's HTTP API (package node/client) both offer, with the same
// signatures, values and sentinel errors, so that code written against it
// runs in process or over the network unchanged. Implementations are safe
// for concurrent use. A Node may block on its disk; a client blocks on the
// network. Subscriptions are not part of it: each implementation has its
// own Subscription type (with the same methods).
type Store interface {
	Get(key string) (Value, error)
	Put(key string, value any) error
	Delete(key string) error
	Incr(key string, by int64) (int64, error)
	SetAdd(key string, members ...string) error
	SetRemove(key string, members ...string) error
	Update(key string, p Patch) error
	PutWith(key string, value any, o WriteOptions) error
	UpdateWith(key string, p Patch, o WriteOptions) error
	Expire(key string, ttl time.Duration) error
	Persist(key string) error
	Commit(b *Batch) error
	Keys(prefix string, limit int) ([]KeyInfo, error)
	Siblings(key string) ([]Sibling, error)
	WaitSynced(ctx context.Context, peers ...string) error
}

var _ Store = (*Node)(nil)

// BatchOp is one operation of a Batch as Ops lists it: what a Store other
// than Node needs to send the batch elsewhere (the HTTP client sends it as
// POST /v1/batch).
type BatchOp struct {
	// Kind is "put", "delete", "incr", "set_add", "set_remove", "update",
	// "expire" or "persist".
	Kind    string
	Key     string
	Value   json.RawMessage // put: the value's canonical JSON
	By      int64           // incr
	Members []string        // set_add, set_remove
	// Patch is the update's patch, its Set values as canonical JSON
	// (json.RawMessage).
	Patch *Patch
	// TTL is, for expire, the time to live; for put and update, the
	// TTL of WriteOptions (0: none).
	TTL time.Duration
}

// Ops returns the operations of the batch, in order, validated and
// encoded as Commit would apply them (see Err for the first invalid one,
// which is not listed). The result is a copy the caller owns.
func (b *Batch) Ops() []BatchOp {
	out := make([]BatchOp, len(b.ops))
	for i, r := range b.ops {
		op := BatchOp{Kind: r.kind.String(), Key: r.key, By: r.by, Members: slices.Clone(r.members), TTL: r.ttl}
		if r.value != nil {
			op.Value = slices.Clone(r.value)
		}
		if r.patch != nil {
			op.Patch = patchOf(r.patch)
		}
		out[i] = op
	}
	return out
}

// patchOf turns a validated crdt patch back into a Patch.
func patchOf(cp *crdt.Patch) *Patch {
	p := &Patch{
		Delete: slices.Clone(cp.Delete), Incr: maps.Clone(cp.Incr),
		Enable: slices.Clone(cp.Enable), Disable: slices.Clone(cp.Disable),
	}
	if cp.Set != nil {
		p.Set = make(map[string]any, len(cp.Set))
		for f, v := range cp.Set {
			p.Set[f] = json.RawMessage(slices.Clone(v))
		}
	}
	cloneMembers := func(m map[string][]string) map[string][]string {
		if m == nil {
			return nil
		}
		out := make(map[string][]string, len(m))
		for f, ms := range m {
			out[f] = slices.Clone(ms)
		}
		return out
	}
	p.Add, p.Remove = cloneMembers(cp.Add), cloneMembers(cp.Remove)
	if cp.Nested != nil {
		p.Nested = make(map[string]Patch, len(cp.Nested))
		for f, np := range cp.Nested {
			p.Nested[f] = *patchOf(np)
		}
	}
	return p
}

// DecodeValue decodes JSON into the Go values Value.Data holds for a
// register: nil, bool, int64 (integral numbers within range), float64
// (other numbers), string, []any and map[string]any. A Store reading
// values from elsewhere uses it to return what a Node would. Malformed JSON
// is an error wrapping ErrCorrupt.
func DecodeValue(b []byte) (any, error) { return decodeValue(b) }
