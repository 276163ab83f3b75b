package node

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// Node is an embedded shoal replica: the state in memory, every change in a
// write-ahead log on disk, snapshots, and subscriptions. All methods are
// safe for concurrent use.
//
// Goroutines: Open starts the write pipeline (the loop, the appender and
// the applier, the only writer of the state; see loop.go) and the
// snapshot writer;
// Close stops the pipeline, then the snapshot writer, ends the
// subscriptions and closes the WAL, in that order.
type Node struct {
	dir  string
	opts Options
	log  *slog.Logger
	m    *metrics

	lockf *flock.Flock
	wal   *wal.Log

	replica     crdt.ReplicaID
	incarnation uint64
	ownIDs      map[crdt.ReplicaID]bool // replica IDs this directory has had (replica included)

	// mu guards ks and applied for readers; only the commit loop writes
	// them, under the write lock.
	mu      stateLock
	ks      *crdt.Keyspace
	applied uint64 // the WAL offset after the last applied record

	keys     atomic.Int64                // ks.Len(), for Status without the lock
	readOnly atomic.Pointer[readOnlyErr] // set once by the first WAL failure

	// hlc is the loop's clock as of its last operation, for readers: they
	// see expiries at max(wall clock, hlc) (readTime).
	hlc atomic.Uint64

	// lastSeq is the highest seq of this replica that is durable in the
	// state (the committer raises it; the loop begins transactions above it).
	lastSeq atomic.Uint64

	// Owned by the loop, the pipeline's first stage (see loop.go), under
	// loopMu, which the inline commits hold too.
	clock     crdt.Timestamp // hybrid logical clock
	tx        *crdt.Tx       // the rolling transaction
	txSeq     uint64         // last seq issued by an earlier transaction
	txStale   bool           // a group with peers' records was sent since tx began
	sent      atomic.Uint64  // groups handed to the committer (written under loopMu)
	lastWrite time.Time      // when a request last opened a group (the sweep's rest)
	gate      transferGate   // the state transfer in progress (transfer.go)

	// Owned by the applier, the last stage, under applyMu, which the
	// inline commits hold too (and by Open before it starts); recs by the
	// appender (and the inline commits, when the appender is idle).
	durableClock crdt.Timestamp // the loop's clock as of the last applied group (written under mu)
	sinceOps     int            // records since the last snapshot
	sinceSize    int64          // record bytes since the last snapshot
	recs         [][]byte       // reused per group

	// loopMu is held by the loop, but while it waits with no group open,
	// and by the inline commits; applyMu by the applier for each group,
	// and by the inline commits. queued counts requests sent to reqs that
	// the loop has not taken under loopMu.
	loopMu        sync.Mutex
	applyMu       sync.Mutex
	queued        atomic.Int64
	inlined       atomic.Uint64 // commits made by commitInline
	inlinedRemote atomic.Uint64 // deliveries committed by commitRemoteInline
	remoteAt      atomic.Int64  // when the loop last took a peer's record (Unix ms, Options.Now)

	reqs      chan *request
	groups    chan *group   // loop -> appender (unbuffered)
	appended  chan *group   // appender -> applier
	committed atomic.Uint64 // groups the applier finished
	groupDone chan struct{} // applier -> loop: a group finished (cap 1)
	// sweepAgain: applier -> loop, a sweep step found more to do, and how
	// long to rest before the next (cap 1); swept: a sweep step reclaimed
	// keys under the rolling transaction.
	sweepAgain chan time.Duration
	loopWaits  atomic.Bool // the loop waits for the state lock (loopRLock)
	swept      atomic.Bool
	closing    chan struct{} // closed by Close: the loop stops
	loopDone   chan struct{} // closed when every stage has exited
	closed     atomic.Bool
	close      sync.Once
	closeErr   error

	hub   hub
	index dotIndex
	snap  snapshotter

	// commitHook, when set, receives every committed group (replication).
	commitHook atomic.Pointer[func([]committed)]

	repl atomic.Pointer[replicator] // replication: nil = offline
}

type readOnlyErr struct{ err error }

// Open opens (or creates) the node whose data lives in dir: it takes the
// directory lock, loads the replica identity, the newest valid snapshot and
// replays the WAL after it. A nil opts means defaults; opts is copied.
func Open(dir string, opts *Options) (*Node, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := mkdirDurable(dir); err != nil {
		return nil, fmt.Errorf("node: open %s: %w", dir, err)
	}
	n := &Node{
		dir:        dir,
		opts:       o,
		log:        o.Logger,
		reqs:       make(chan *request, o.MaxBatchOps),
		groups:     make(chan *group), // unbuffered: a group is handed over only when the appender is free
		appended:   make(chan *group, 1),
		groupDone:  make(chan struct{}, 1),
		sweepAgain: make(chan time.Duration, 1),
		closing:    make(chan struct{}),
		loopDone:   make(chan struct{}),
	}
	n.m = newMetrics(func() float64 { return float64(len(n.reqs)) })
	n.hub.init(n.m)
	if n.lockf, err = lockDir(dir); err != nil {
		return nil, err
	}
	fail := func(err error) (*Node, error) {
		if n.wal != nil {
			n.wal.Close()
		}
		n.m.unregister()
		n.lockf.Close()
		return nil, err
	}
	stored, err := readIdentity(dir)
	if err != nil {
		return fail(err)
	}
	if err := n.m.register(o.Registerer); err != nil {
		return fail(err)
	}
	// Nothing in the directory changes before the WAL and the snapshots
	// have been checked: the WAL calls beforeRecovery once it has, and
	// before it cuts a torn tail or rebuilds an index.
	var ident identity
	beforeRecovery := func(info wal.RecoveryInfo) error {
		if err := checkSnapshotsCovered(filepath.Join(dir, snapDir), info.Next); err != nil {
			return err
		}
		reason := ""
		if info.CutBytes > 0 {
			// The cut may remove operations of this replica that peers
			// hold (acknowledged before a non-durable sync, or synced and
			// then damaged): never reissue their dots.
			reason = fmt.Sprintf("the WAL's torn tail was cut (%d bytes of %s at byte %d)", info.CutBytes, info.CutSegment, info.CutAt)
		}
		var err error
		ident, n.replica, err = commitIdentity(dir, stored, reason, o.Sync, n.log)
		n.incarnation = ident.Incarnation
		return err
	}
	n.wal, err = wal.Open(filepath.Join(dir, walDir), &wal.Options{
		SegmentBytes:   o.SegmentBytes,
		Sync:           o.Sync,
		SyncInterval:   o.SyncInterval,
		Logger:         o.Logger,
		FS:             o.WALFS,
		BeforeRecovery: beforeRecovery,
		Hooks: wal.Hooks{
			// Called by the WAL's committer; Observe does not block.
			OnSync: func(d time.Duration, _ error) { n.m.fsyncSeconds.Observe(d.Seconds()) },
		},
	})
	if err != nil {
		n.wal = nil
		return fail(damagedError(dir, fmt.Errorf("node: open wal: %w", err)))
	}
	n.ownIDs = ident.replicaIDs()
	if err := n.recover(); err != nil {
		return fail(damagedError(dir, err))
	}
	n.log.Info("node open", "dir", dir, "replica", n.replica.String(), "incarnation", n.incarnation,
		"keys", n.keys.Load(), "wal_first", n.wal.FirstOffset(), "wal_next", n.wal.NextOffset())
	n.snap.start(n)
	go n.run()
	// replication: after the loop runs (deliveries go through it).
	if err := n.startReplication(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Close stops the node: writes queued before Close are committed, later
// calls return ErrClosed, subscriptions end with ErrClosed, the WAL is
// synced and closed and the directory unlocked. Safe to call more than once.
func (n *Node) Close() error {
	n.close.Do(func() {
		n.closed.Store(true)
		var errs []error
		// replication: gossip first, while the loop still runs.
		if err := n.stopReplication(); err != nil {
			errs = append(errs, err)
		}
		close(n.closing)
		<-n.loopDone
		n.snap.stop()
		n.hub.closeAll(ErrClosed)
		if err := n.wal.Sync(); err != nil && n.readOnly.Load() == nil {
			errs = append(errs, fmt.Errorf("node: close: sync wal: %w", err))
		}
		if err := n.wal.Close(); err != nil && n.readOnly.Load() == nil {
			errs = append(errs, fmt.Errorf("node: close: wal: %w", err))
		}
		// Every acknowledged write is durable now: the next Open may keep
		// this replica ID.
		if len(errs) == 0 && n.readOnly.Load() == nil && n.opts.Sync != SyncAlways {
			if err := removeDurable(n.dir, dirtyFile); err != nil {
				errs = append(errs, fmt.Errorf("node: close: %w", err))
			}
		}
		n.m.unregister()
		if err := n.lockf.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close: unlock: %w", err))
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Err returns nil while the node accepts writes, ErrClosed after Close, or
// an error wrapping ErrReadOnly and its cause after a WAL failure.
func (n *Node) Err() error {
	if n.closed.Load() {
		return ErrClosed
	}
	if ro := n.readOnly.Load(); ro != nil {
		return readOnlyError(ro.err)
	}
	return nil
}

// setReadOnly records the first WAL failure: every later write is refused.
func (n *Node) setReadOnly(cause error) {
	if n.readOnly.CompareAndSwap(nil, &readOnlyErr{cause}) {
		n.m.readOnly.Set(1)
		n.log.Error("WAL failed; the node is read-only until reopened", "err", cause)
	}
}

// Get returns the visible value of key, or ErrNotFound. The value is a
// copy the caller owns.
func (n *Node) Get(key string) (Value, error) {
	if n.closed.Load() {
		return Value{}, ErrClosed
	}
	if !validKey(key) {
		return Value{}, keyError("get", key)
	}
	sh := n.mu.rlock()
	v, ok := n.ks.GetShared(key, 0)
	n.mu.runlock(sh)
	if !ok || !n.unexpired(v.Expires) {
		return Value{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	data, err := sharedViewData(&v)
	if err != nil {
		return Value{}, fmt.Errorf("node: get %q: %w", key, err)
	}
	return Value{Key: key, Type: typeOf(v.Type), Data: data, Expires: expiresTime(v.Expires)}, nil
}

// Siblings returns the concurrent values of the register at key, the
// winner (what Get returns) first. ErrWrongType if key is not a register.
func (n *Node) Siblings(key string) ([]Sibling, error) { return n.FieldSiblings(key) }

// FieldSiblings is Siblings for the register at a field of the map
// (document) at key: path names the field, then the fields of the maps
// under it (an empty path is the key itself). ErrNotFound when the key or
// a field of the path is absent, ErrWrongType when a step is not a map or
// the field is not a register.
func (n *Node) FieldSiblings(key string, path ...string) ([]Sibling, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if !validKey(key) {
		return nil, keyError("siblings", key)
	}
	sh := n.mu.rlock()
	sibs, err := n.ks.FieldSiblings(key, n.readTime(), path...)
	n.mu.runlock(sh)
	if err != nil {
		return nil, mapError("siblings", key, err)
	}
	out := make([]Sibling, len(sibs))
	for i, s := range sibs {
		data, err := decodeValue(s.Value)
		if err != nil {
			return nil, fmt.Errorf("node: siblings %q: %w", key, err)
		}
		out[i] = Sibling{Data: data, Origin: s.Dot.Replica.String(), Time: time.UnixMilli(s.Time.Physical())}
	}
	return out, nil
}

// Keys lists the keys starting with prefix, sorted, at most limit of them
// (limit <= 0: all). A long listing walks the keys a chunk at a time, writes
// going on in between, as KeysAfter does.
func (n *Node) Keys(prefix string, limit int) ([]KeyInfo, error) {
	return n.KeysAfter(prefix, "", limit)
}

// KeysAfter is Keys for the keys that sort after the key after (all of
// them when after is ""): a cursor to walk a prefix in chunks, which needs
// no state on the node. Keys written behind the cursor meanwhile are not
// seen; none is listed twice.
func (n *Node) KeysAfter(prefix, after string, limit int) ([]KeyInfo, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	now := n.readTime()
	var out []KeyInfo
	for {
		chunk := listChunkKeys
		if limit > 0 {
			chunk = min(chunk, limit-len(out))
		}
		sh := n.mu.rlock()
		infos := n.ks.KeysAfter(prefix, after, chunk, now)
		n.mu.runlock(sh)
		for _, ki := range infos {
			out = append(out, KeyInfo{Key: ki.Key, Type: typeOf(ki.Type)})
		}
		if len(infos) < chunk || limit > 0 && len(out) >= limit {
			break
		}
		after = infos[len(infos)-1].Key
	}
	if out == nil {
		out = []KeyInfo{}
	}
	return out, nil
}

// listChunkKeys is how many keys KeysAfter lists per hold of the state
// lock: listing a million keys at once held every write for ~0.3 s.
var listChunkKeys = 4096

// Digest returns a hash of the canonical state (hex): two nodes have equal
// digests exactly when their states are equal. "" after Close.
func (n *Node) Digest() string {
	if n.closed.Load() {
		return ""
	}
	sh := n.mu.rlock()
	d := n.ks.Digest()
	n.mu.runlock(sh)
	return hex.EncodeToString(d[:])
}

// Status describes the node.
type Status struct {
	Replica     string // this replica's ID (16 hex digits)
	Incarnation uint64 // how many replica IDs this directory has had
	Keys        int    // keys in memory: expired keys count until the sweep reclaims them
	ReadOnly    bool   // a WAL failure stopped writes
	Error       string // the cause when ReadOnly
	Closed      bool
	Sync        string // the sync policy
	FirstOffset uint64 // oldest WAL offset still held
	NextOffset  uint64 // offset of the next WAL record
	WALBytes    int64
}

// MaxBatchOperations is the most operations a Batch may hold here
// (Options.MaxBatchOperations): a caller that gathers writes into batches
// keeps them within it.
func (n *Node) MaxBatchOperations() int { return n.opts.MaxBatchOperations }

// Status returns the node's identity and a few counters; it does not block
// on writers.
func (n *Node) Status() Status {
	st := Status{
		Replica:     n.replica.String(),
		Incarnation: n.incarnation,
		Keys:        int(n.keys.Load()),
		Closed:      n.closed.Load(),
		Sync:        n.opts.Sync.String(),
	}
	if ro := n.readOnly.Load(); ro != nil {
		st.ReadOnly, st.Error = true, ro.err.Error()
	}
	if !st.Closed {
		st.FirstOffset, st.NextOffset, st.WALBytes = n.wal.FirstOffset(), n.wal.NextOffset(), n.wal.Size()
	}
	return st
}

// readTime is the time reads see expiries at: the node's hybrid logical
// clock, which is at least the wall clock and may run ahead of it (by at
// most MaxClockDrift) after a peer's write from the future.
func (n *Node) readTime() crdt.Timestamp {
	return max(crdt.MakeTimestamp(n.opts.Now().UnixMilli(), 0), crdt.Timestamp(n.hlc.Load()))
}

// unexpired reports whether a value with expiry at (0: none) is visible
// now. A read asks for its key's view ignoring expiries (now 0) and then
// this: most keys have no expiry, and the clock is ~3% of a read.
func (n *Node) unexpired(at crdt.Timestamp) bool { return at == 0 || n.readTime() < at }

// expiresTime turns a key's expiry into Value.Expires (zero: none).
func expiresTime(at crdt.Timestamp) time.Time {
	if at == 0 {
		return time.Time{}
	}
	return time.UnixMilli(at.Physical()).UTC()
}

// ReplicaID returns this replica's ID (16 hex digits).
func (n *Node) ReplicaID() string { return n.replica.String() }

// Dir returns the data directory.
func (n *Node) Dir() string { return n.dir }

func keyError(op, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: %s: empty key", ErrInvalidKey, op)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: %s: key of %d bytes (max %d)", ErrInvalidKey, op, len(key), MaxKeyBytes)
	}
	return fmt.Errorf("%w: %s: key is not valid UTF-8", ErrInvalidKey, op)
}

// mapError turns a crdt error into the node's sentinel for it.
func mapError(op, key string, err error) error {
	switch {
	case errors.Is(err, crdt.ErrWrongType):
		return fmt.Errorf("%w: %s %q: %w", ErrWrongType, op, key, err)
	case errors.Is(err, crdt.ErrNotFound):
		return fmt.Errorf("%w: %s %q", ErrNotFound, op, key)
	case errors.Is(err, crdt.ErrOverflow):
		return fmt.Errorf("%w: %s %q", ErrOverflow, op, key)
	case errors.Is(err, crdt.ErrInvalid):
		return fmt.Errorf("%w: %s %q: %w", ErrInvalidValue, op, key, err)
	}
	return fmt.Errorf("node: %s %q: %w", op, key, err)
}
