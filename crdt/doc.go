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
// # Expiry
//
// A key may carry an expiry: an HLC time from which no read sees it. The
// expiry is part of the key's CRDT state, a dot store of its own
// (Entry.Exp): each item is (dot, At), At an HLC time, or Persisted (0).
// Items are dotted values like any other, joined by the same rule, so the
// join stays commutative, associative and idempotent (the law tests run
// with expiries). The key's expiry is a function of its items (Expiry):
// none when it has no item or one is a Persist, else the latest At.
//
//   - Tx.Expire replaces the items its replica has seen with one item;
//     concurrent expiries both stay, and the latest time wins. Tx.Persist
//     replaces them with a Persist item, which wins over every concurrent
//     expiry. These are the rules of Redis Active-Active (concurrent
//     EXPIREs: the longer TTL wins; PERSIST wins over them), here as state:
//     they hold whatever the order of delivery, with no owner replica.
//   - A write that sets no expiry (Put, Incr, SetAdd, SetRemove, Update)
//     keeps the key's expiry, on every type alike. Redis keeps the TTL on
//     INCR, SADD or HSET but clears it on SET (unless KEEPTTL); shoal keeps
//     it on Put too. The rule is then the same for every type (a Put is a
//     whole-value write only for registers, and a type-conflicted key
//     could not tell which rule applies), and a TTL set on a session or a
//     cache entry is not lost to a writer that did not pass one: clearing
//     would let any concurrent writer make a key immortal, the failure that
//     is hard to notice. To clear an expiry, Persist; to replace it, write
//     with a TTL (Put then Expire in one Tx, as node does).
//     The write sets the expiry again under a fresh dot: the items it has
//     seen replaced by one item with the same time. That binds the value
//     it writes to the expiry: a replica that no longer holds the old
//     items (it reclaimed the key, or a fresh write removed them) still
//     finds the value expiring. As a consequence, a write that kept an
//     expiry counts as setting it concurrently: an Expire that shortened it
//     concurrently loses to it (the latest time wins), a Persist does not.
//   - Visibility: Keyspace.Get, Keys and Siblings take the caller's time
//     (its HLC); a key whose expiry is at or before it does not exist for
//     them. Replicas that hold the same state agree on visibility at equal
//     times, and replicas whose clocks differ by at most d disagree about a
//     key only during the d before its expiry.
//   - A write to an expired key (its expiry at or before the Tx's time,
//     Tx.SetTime) starts a fresh value: it first removes every dot of the
//     key it has seen, values and expiry items, as Delete would, then acts
//     on an absent key, and the fresh value gets a Persist item (it never
//     expires until an Expire, whatever expiry a concurrent write kept).
//     Nothing of the expired value it had seen shows again. The same holds
//     for a key holding only expiry items (a concurrent operation removed
//     its values), and a write that removes a key's last value removes its
//     expiry items too, so a new value never inherits an old expiry.
//     Delete, Expire and Persist of an expired key fail with ErrNotFound.
//   - Type conflicts: an expired key holds no visible type, so a write of
//     any type succeeds on it, and the fresh write removes the expired
//     values of every type it has seen; only a value it had not seen (a
//     concurrent write) can be left, and then the usual rule applies.
//   - Expiry items live on keys only (a map field has none; Validate
//     refuses them), and an entry holding only expiry items is a key that
//     does not exist.
//
// What can show again. Once a key expired on a replica, its values are
// visible there again only through operations made before that expiry on
// another replica's clock, which an observed remove cannot undo: an
// Expire or Persist made while the key was still live there and delivered
// later extends it; and a value written before the expiry by a replica
// that had not seen a later fresh write survives that write (as a write
// concurrent with a delete survives it), visible with the fresh value. With
// connected replicas both are at most MaxClockDrift plus a delivery delay
// old. TestExpiredNeverReadableAgain checks exactly this: a value a replica
// found expired is visible there again only after it applied an operation
// whose causal past holds an operation made before the expiry that it had
// not applied, or one made by a replica that had not seen the value.
//
// # Reclaiming expired keys
//
// Every replica computes visibility from the same expiry, so no removal
// needs to be written: Keyspace.Sweep drops an expired key from the state
// by itself, values and expiry items, once its expiry is at or before a
// horizon the caller chooses (node: its clock minus MaxClockDrift, when
// every replica whose clock is within the drift sees the key expired and
// makes only fresh writes to it). Dropping keeps the dots in the causal
// context, as a delete does, so
//
//   - a delta that carries them again later (a duplicate, a retransmission)
//     changes nothing: the join finds them seen and not held, so removed;
//   - a join with a replica that still holds them (a state transfer) removes
//     them there: a reclaim is an inflation of the state, an observed
//     remove without an operation;
//   - a later operation made before the expiry (above) finds no value to
//     extend on a replica that reclaimed the key; the key's expiry items
//     alone are no value, and a later state comparison carries the removal
//     to the replicas that still hold the values. So replicas converge to
//     the key being gone.
//
// No tombstone is kept per key: the context keeps the dots as version
// vectors do, compactly. Nothing is written, so there are no duplicate
// removals from N replicas to avoid. The only state left behind is, rarely,
// an entry holding only a Persist item (a Persist concurrent with the
// removal of the key's last value), which the next write to the key
// removes. The sweep is incremental: keys with an expiry wait in a heap by
// expiry, and each Sweep step costs O(limit log n), never a pass over the
// keyspace.
//
// # What the caller does
//
// A Keyspace is not safe for concurrent use. The node owns it and, like an
// application of go.etcd.io/raft, does the I/O itself, in this order:
//
//  1. Local writes: tx := ks.Begin(replica, lastSeq); tx.SetTime(hlc);
//     build one delta per operation (Put, Incr, SetAdd, SetRemove, Delete,
//     Update, Expire, Persist); on a failed operation of a batch, Rollback
//     to its Checkpoint. JoinDeltas makes a batch one delta.
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
//  8. Expiry: read with the node's HLC (Get(key, now), Keys, Siblings), and
//     call Sweep(now, now - MaxClockDrift, limit) now and then, telling
//     subscribers of the keys it reports expired.
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
