package crdt

// Keyspace maps keys to typed CRDT values under one causal context.
// It is not safe for concurrent use.
type Keyspace struct {
	keys map[string]*Entry
	ctx  Context
	sum  sum128
}

// NewKeyspace returns an empty keyspace.
func NewKeyspace() *Keyspace { return &Keyspace{keys: make(map[string]*Entry)} }

// Get returns the visible value of key.
func (k *Keyspace) Get(key string) (View, bool) { return View{}, false }

// Siblings returns the concurrent values of a register, winner first.
func (k *Keyspace) Siblings(key string) ([]Sibling, error) { return nil, ErrNotFound }

// Keys returns the keys with prefix, sorted; limit <= 0 means all.
func (k *Keyspace) Keys(prefix string, limit int) []KeyInfo { return nil }

// Len returns the number of keys.
func (k *Keyspace) Len() int { return len(k.keys) }

// Context returns a copy of the causal context.
func (k *Keyspace) Context() *Context { return k.ctx.Clone() }

// Digest returns the canonical digest of the state.
func (k *Keyspace) Digest() [32]byte { return [32]byte{} }

// Apply joins a delta into the keyspace.
func (k *Keyspace) Apply(d *Delta) []Change { return nil }

// Covers reports whether the delta is already included.
func (k *Keyspace) Covers(d *Delta) bool { return false }

// Snapshot returns a deep copy of the whole state.
func (k *Keyspace) Snapshot() *Delta { return &Delta{} }

// KeyState returns the state of some keys.
func (k *Keyspace) KeyState(keys ...string) *Delta { return &Delta{} }

// FromSnapshot builds a keyspace from a snapshot.
func FromSnapshot(d *Delta) (*Keyspace, error) { return NewKeyspace(), nil }

// JoinRange joins the sender's keys in [lo, hi).
func (k *Keyspace) JoinRange(lo, hi string, part *Delta, senderCtx *Context) []Change { return nil }

// MergeContext merges a context.
func (k *Keyspace) MergeContext(c *Context) { k.ctx.Merge(c) }
