// Package node is the shoal database an application embeds: a replica that
// keeps its state in memory, every change in a write-ahead log on disk, and
// works with no network at all (replication plugs into it and syncs when
// peers appear).
//
//	n, err := node.Open("data", nil) // creates the directory on first use
//	if err != nil {
//		return err
//	}
//	defer n.Close()
//	err = n.Put("todo/1", map[string]any{"title": "buy milk", "done": false})
//	v, err := n.Get("todo/1")            // v.Data: map[string]any{"done": false, "title": "buy milk"}
//	_, err = n.Incr("visits", 1)         // a PN-counter
//	err = n.SetAdd("tags", "home", "k")  // an add-wins set
//	sub, err := n.Subscribe(ctx, "todo/") // changes, local and remote
//
// # Data model
//
// A key (1 to 1024 bytes of UTF-8) holds one CRDT: a register (a JSON value,
// last writer wins by hybrid logical clock; concurrent values are kept and
// shown by Siblings), a counter (int64), a set of strings (add wins), or a
// map (a document whose fields are registers, counters, sets, flags or
// maps). An operation of another type than the key holds fails with
// ErrWrongType. Delete is an observed remove: a concurrent write on another
// replica survives it.
//
// # Writes
//
// Every write goes through one pipeline, in this order: validate (in the
// caller's goroutine), compute the CRDT delta, encode it once (msgpack, the
// Op record: the same bytes are the WAL record and the replication
// payload), append to the WAL, apply to the in-memory state, notify
// subscribers, hand to replication, answer the caller. Writers that arrive
// together share one WAL append and one fsync (group commit), and the next
// group is prepared while the previous one waits for the disk. Under
// SyncAlways (the default) a write returns only once it is on disk; reads
// never see a write before that. A Batch commits several operations as one
// record: all or none survive a crash.
//
// # Expiry
//
// PutWith and UpdateWith with WriteOptions.TTL, Expire (any type) and
// Persist set or remove a key's expiry; Value.Expires reports it. The
// expiry is CRDT state (package crdt, "Expiry"): it replicates with the
// write that set it, concurrent expiries resolve the same way everywhere
// (the latest wins, a Persist over all), and a write without a TTL keeps
// it. Reads compare it with the node's hybrid logical clock (never below
// the wall clock), so an expired key is absent for every read at once. The
// write pipeline's applier runs a sweep step every Options.SweepInterval,
// and again while there is more: at most 256 keys or 50 µs per step, ended
// early when writes wait for it, and, while writes arrive, resting between
// steps: while the backlog is younger than 10 s, a step waits for a moment
// when no write waits (trying again at the next tick) and rests at least 5
// ms (about 1% of the applier: the steps and their timers, not their CPU,
// are what writes feel); an older backlog rests three times as long as the
// step (a quarter of the applier at most, like Redis's active expiry); an
// idle node sweeps without rest. Writes wait for a short step, never for a
// pass over the keyspace. It reports keys that expired to subscribers
// (EventExpired) and drops keys that expired more than MaxClockDrift ago
// from memory; the next snapshot no longer holds them. Nothing is written
// for either.
//
// If a WAL write or fsync fails the node turns read-only: writes return
// ErrReadOnly wrapping the cause, reads go on, and only reopening the node
// makes it writable again (after the operator fixed the disk).
//
// # Identity and crashes
//
// The directory holds the replica's identity (<dir>/identity): a random
// 64-bit replica ID, its incarnation number and the IDs it had before.
// Every operation takes fresh dots (replica, seq).
//
// Invariant: a dot is never issued twice, whatever a crash, a cut or a
// repair removed, under every sync policy. A peer that holds an operation
// ignores another with the same dot as already seen, so a reissued dot
// would be a write acknowledged here and silently dropped everywhere else
// (and anti-entropy would then remove the older value from its peers too).
// The node keeps the invariant this way:
//
//   - Under SyncAlways a dot is published (to peers, to subscribers, to
//     the caller) only once durable, so after kill -9 the node recovers its
//     last seq from the WAL and the snapshot and keeps its ID. Its own
//     operations coming back from a peer (a directory restored from an old
//     copy) raise the seq too.
//   - Under SyncInterval or SyncNever a write is acknowledged before it is
//     durable; the node keeps a marker file while it runs, and finding that
//     marker at Open (the previous run did not Close) makes it take a new
//     replica ID: a new incarnation.
//   - Any cut of the WAL may remove an operation a peer holds (acknowledged
//     before a non-durable sync, or synced and later damaged): when the WAL
//     is about to cut a torn tail, the node takes a new incarnation first
//     (durably, before the cut). Repair always takes one.
//
// The hybrid logical clock never issues a timestamp below one it issued
// before: the node's own operations restore it at replay unclamped (the
// drift clamp is for peers' clocks), so a wall clock that stepped back
// between runs cannot make a new write sort below an old one.
//
// # Damaged files
//
// The WAL cuts by itself only what a crash can leave: damage at the end of
// the last segment with nothing intact after it (package wal's doc has the
// table). Damage followed by intact records, damage in a sealed segment, a
// snapshot that covers records beyond the WAL's end: Open refuses with an
// error matching ErrCorrupt that names the file, the byte and what
// follows, and changes no file (its checks run before the WAL repairs
// anything). Repair (the `shoal wal repair` command) then keeps the newest
// valid snapshot and the intact WAL after it, or the WAL up to the damage,
// whichever keeps more; sets the rest aside in files it never overwrites;
// and takes a new incarnation. The repaired node opens, and its peers send
// back the operations it lost that they hold.
//
// # Files
//
//	<dir>/LOCK                  flock held while open (one Node per directory)
//	<dir>/identity              replica ID, incarnation, earlier IDs (JSON, written atomically)
//	<dir>/dirty                 present while running under a non-durable sync policy
//	<dir>/wal/                  the segmented WAL (package wal): one Op per record
//	<dir>/snapshots/<offset>.snap  state snapshots (format below the snapshot constants)
//
// Snapshots are written every Options.SnapshotEveryOps records or
// SnapshotEveryBytes WAL bytes, atomically, then the WAL is truncated below
// the previous snapshot. The state is copied in memory in the background,
// a chunk of keys at a time with writes going on between the chunks (keys
// changed behind the copy are copied again), then encoded and written;
// a Backup's copy is taken the same way. Open loads the
// newest valid snapshot (falling back to an older one when it is damaged)
// and replays the WAL after it; it refuses to open, rather than lose data
// silently, when the WAL does not cover what the snapshot it could load
// does not.
//
// # Subscriptions
//
// Subscribe delivers an Event per changed key, in WAL order, for local and
// remote writes; SubscribeFrom resumes from a WAL offset. Each subscription
// has a bounded queue: a reader that falls behind is dropped with
// ErrSlowSubscriber, and writers never wait for readers.
//
// # Replication
//
// With Options.Gossip the node replicates (the replicator type has the details): each
// write is pushed to every peer once, anti-entropy sends a peer exactly the
// records it lacks (or, when the WAL no longer holds them, the key ranges
// that differ), a state transfer is atomic to observers (a deleted value
// never comes back while or after one runs), and at least every
// StateCheckInterval (at random between three quarters of it and all of it,
// so that the comparisons with many peers do not run at once) the node
// compares its state with each peer's range by range, so that a divergence
// the version vectors cannot show is repaired
// within 2 × StateCheckInterval + 3 × AntiEntropyInterval even under
// continuous writes.
//
// # Metrics and logs
//
// Options.Registerer receives shoal_node_* metrics (operations, WAL bytes,
// append latency, group sizes, snapshots, replay, keys, subscribers,
// read-only state, keys_expired_total and keys_reclaimed_total); Options.Logger receives recovery, snapshot and failure
// events. Both are off when nil.
package node
