// Package crdt is shoal's pure CRDT core: the replicated data types, their
// deltas and joins, and the keyspace that holds them. It is deterministic
// and self-contained: standard library only, no I/O, no clock (callers pass
// the time in), no randomness, no goroutines, no locks. No output depends on
// map iteration order.
//
// # Model
//
// shoal uses delta-state causal CRDTs (Almeida, Shoker, Baquero: "Delta
// State Replicated Data Types", 2018).
//
//   - A Dot (replica, seq) names one event. Each replica numbers its events
//     1, 2, 3, ... and never reuses a number, so a dot names one value in one
//     place of the state forever.
//   - A Context is the set of dots a state has seen, kept as a version vector
//     plus a cloud of dots beyond its gaps.
//   - A value is a dot store (dotted values) joined under its context: a
//     dotted value survives a join unless the other side has seen its dot
//     and no longer holds it, which means it was removed there. Removing
//     needs no tombstone: the context remembers.
//   - A mutation returns a Delta: a small state holding the new dotted values
//     and, in its context, the fresh dots plus the dots it removes. Joining
//     the delta into any replica has the effect of the mutation there.
//
// Join is commutative, associative and idempotent, so deltas may be
// delivered in any order, any number of times, batched or not; every replica
// that has joined the same deltas holds the same state.
//
// # Types
//
// Each key (and each map field) holds one of:
//
//	register  multi-value register of (dot, HLC time, bytes); a write replaces
//	          the siblings it has seen; the read is the sibling with the highest
//	          (time, replica ID, seq); Siblings shows them all.
//	counter   one cumulative contribution per replica, each under its latest
//	          dot; the value is the sum. An increment concurrent with a key
//	          delete survives with its replica's whole cumulative count.
//	set       add-wins observed-remove set of strings: each add gets a fresh
//	          dot, a remove drops the dots it has seen.
//	map       observed-remove map of fields, each field one of these types,
//	          recursively (a document).
//	flag      enable-wins flag (map fields only): enable adds a dot, disable
//	          drops the dots it has seen.
//
// Deleting a key or a field removes every dot under it that the deleting
// replica has seen; a concurrent update (a fresh dot) survives.
//
// Timestamps are a hybrid logical clock (Timestamp, NextTimestamp,
// WitnessTimestamp). They only order concurrent register writes;
// convergence never depends on them.
//
// # Type conflicts
//
// Concurrent first writes of different types to one key or field (each
// replica wrote before it saw the other's write) are both kept: a join only
// removes what a replica has seen, and neither replica had seen the other
// value. The view shows the type of highest precedence,
// map > set > counter > register > flag, an order every replica applies
// alike; the other value is hidden, and a local operation of its type fails
// with ErrWrongType.
//
// The conflict ends with the first operation on that key or field (or on a
// field under it) by a replica that has seen it: besides its own effect, the
// operation removes every value of another type it has seen there, an
// observed remove through its delta's context, like a delete. The first
// operation causally after both writes thus decides, and keeps the type
// that won. So a hidden value never comes back by itself: when the visible
// value is emptied later (its last member removed, its last field deleted),
// the key or field is gone, instead of showing the value that lost the
// conflict, which nobody wrote since. The rule lives only in the deltas a
// Tx makes; the join, the state and its encoding are unchanged, so the
// laws and convergence do not depend on it, and it needs no tombstone or
// other metadata.
//
// Like every observed remove, it removes only what the replica had seen. A
// write of the hidden type that it had not seen (concurrent with its
// operation) survives, and becomes the visible value if the other one is
// emptied. Until an operation settles the conflict, the hidden value stays
// in the state (and in the digest).
//
// # What the caller does
//
// A Keyspace is not safe for concurrent use. The node owns it and, like an
// application of go.etcd.io/raft, does the I/O itself, in this order:
//
//  1. Local writes: tx := ks.Begin(replica, lastSeq); build one delta per
//     operation (Put, Incr, SetAdd, SetRemove, Delete, Update); on a failed
//     operation of a batch, Rollback to its Checkpoint. JoinDeltas makes a
//     batch one delta.
//  2. Persist the encoded delta (the WAL); only then publish its dots:
//     remember tx.LastSeq() and never issue those seqs again.
//  3. ks.Apply(delta) and hand the returned changes to subscribers.
//  4. Send the same bytes to peers.
//  5. Remote deltas: decode, Validate, skip when ks.Covers(d) (a duplicate),
//     persist, Apply.
//  6. Anti-entropy: mine.Applied().Missing(theirs.Applied()) names the
//     operations a peer lacks (by Delta.Dots). When they are gone from the
//     WAL, transfer state: JoinRange over key ranges of KeyState, then
//     MergeContext(sender's Context) and MergeApplied(sender's Applied).
//  7. Snapshots: Snapshot to save, FromSnapshot to load.
//
// Every operation consumes at least one fresh dot, removals included, so a
// new operation is never mistaken for a duplicate. Dedup and anti-entropy use
// the applied set, not the context: a removal can carry the dot of a value
// into a context before the operation that wrote the value arrives.
//
// # Costs
//
// Apply, Covers and every Tx operation cost O(size of the delta or
// operation), not O(size of the key or the keyspace): a delta lists the
// paths it touches (members and fields, or a whole entry for a delete), and
// Apply visits only those. Deleting a key or field costs O(size of what it
// removes), and so does the operation that ends a type conflict, once. The digest is incremental: every item of the state has a 128-bit
// hash, entries keep the sums of their items, and Apply updates the sums
// along the paths it touches, so Digest costs O(replicas).
//
// # Encoding
//
// crdt imports no encoder. Delta, Entry and Context have exported fields with
// msgpack struct tags; node encodes them with github.com/vmihailenco/msgpack/v5,
// and a round trip gives an equal state. Decoders of untrusted bytes must
// bound declared lengths before decoding (msgpack v5.4.1 preallocates the
// declared length of typed slices), then Validate the delta; FromSnapshot,
// Apply and JoinRange validate and never panic on bad input.
package crdt
