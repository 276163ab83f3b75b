package crdt

// Delta is a transportable state: keys with their dot stores, and a causal
// context. Every local mutation returns a Delta, which is itself a state of
// the keyspace lattice (delta-state CRDT); a snapshot is a Delta too.
//
// Fields are exported with msgpack tags so the node encodes deltas with
// github.com/vmihailenco/msgpack/v5; crdt itself imports no encoder.
type Delta struct {
	Keys map[string]*Entry `msgpack:"k,omitempty"`
	Ctx  Context           `msgpack:"c"`
	// Own are the dots issued by the operations this delta records (each
	// operation consumes at least one fresh dot, removals included). Empty
	// for snapshots and key states.
	Own []DotRange `msgpack:"o,omitempty"`
	// Full marks a whole state (Snapshot): Apply then visits every local
	// key, not only the listed ones.
	Full bool `msgpack:"f,omitempty"`
}

// Dots returns the dots issued by the delta's operations (Own), as sorted,
// merged ranges: the index for deduplication and anti-entropy.
func (d *Delta) Dots() []DotRange {
	return nil // TODO
}

// Join returns the lattice join of two states; neither is modified.
func Join(a, b *Delta) *Delta {
	return &Delta{} // TODO
}

// JoinDeltas joins deltas into one (a batch that becomes one WAL record).
func JoinDeltas(ds ...*Delta) *Delta {
	return &Delta{} // TODO
}

// Validate checks the invariants a delta from disk or network must hold.
func (d *Delta) Validate() error {
	return nil // TODO
}

// Equal reports whether two deltas hold the same state.
func (d *Delta) Equal(o *Delta) bool {
	return false // TODO
}
