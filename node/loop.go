package node

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// maxGroupBytes bounds the record bytes of one group commit (one
// wal.Append); requests beyond it wait for the next group.
const maxGroupBytes = 32 << 20

// maxRecordBytes is the largest record the WAL accepts.
const maxRecordBytes = wal.DefaultMaxRecordBytes

// committed describes one record of a group, for the replication hook.
type committed struct {
	Offset uint64 // WAL offset
	Record []byte // the record bytes; shared, read-only
	Op     *Op    // the decoded record; shared, read-only
	From   string // the peer it came from; "" for a local write
}

// groupEntry is one record of a group.
type groupEntry struct {
	r   *request
	op  *Op
	rec []byte
}

// group is one WAL append's worth of work: built by the loop, made durable
// and applied by the committer.
type group struct {
	reqs     []*request // every request to answer, failed ones included
	sweep    bool       // the applier runs a sweep step after it (expiry.go)
	entries  []groupEntry
	bytes    int
	lastSeq  uint64         // the loop's last issued seq after this group
	clock    crdt.Timestamp // the loop's clock after this group
	remote   bool           // holds records from peers
	snapshot *request       // a Snapshot request (the group holds nothing else)

	remoteDots []crdt.DotRange // dots of its remote deltas, for duplicates within it

	// Set by the appender.
	first  uint64 // WAL offset of the first record
	failed error  // the WAL failure that stopped it (the requests get ErrReadOnly)
}

// fastRun is how many requests the loop takes in a row before it looks
// at its other channels (run).
const fastRun = 64

// maxTxOps bounds the operations a rolling transaction accumulates before
// the loop waits for the committer and starts a fresh one. Operations, not
// requests: a batch holds many, and the transaction's pending context
// grows with each (a sorted slice its operations insert into).
const maxTxOps = 4096

// The write path is a three-stage pipeline, like etcd's raft loop:
//
//   - the loop (run) builds each request into the open group as it
//     arrives: its delta from a crdt transaction, its record encoded. The
//     group grows while requests are queued (64 in a row at most before
//     the appender gets its turn: takeQueued) and until the appender is
//     free to take it (or it is full), so while the disk is busy the next
//     group fills up, and one fsync covers everyone who arrived meanwhile;
//   - the appender (appendLoop) appends a group with one wal.Append (one
//     write, one fsync) and passes it on;
//   - the applier (applyLoop) applies the durable group to the state,
//     publishes the events, calls the replication hook and answers the
//     callers.
//
// When the pipeline is idle (nothing queued, open or in flight), a caller
// does all three stages itself instead (commitInline, and for a peer's
// delivery commitRemoteInline): a lone writer's commit, or a delivery to
// a node that is otherwise idle, then involves no other goroutine.
//
// "The committer" below means the last two stages together. Reads never
// see a write before it is durable: only the applier changes the state,
// after the append. The loop's transaction therefore reads a
// state that lags its own earlier operations, and sees them through the
// transaction's pending delta instead. It lives across groups ("rolling")
// while the committer only applies groups of this transaction's own
// operations, which leaves state ⊔ pending exactly what the loop must
// read. Whenever a group with records from peers may have been applied
// (they can remove values the pending delta still holds), or the
// transaction grew long, the loop waits for the committer to catch up and
// begins a fresh transaction on the up-to-date state, always between
// groups.

// run is the loop: the first stage of the pipeline.
func (n *Node) run() {
	// The loop holds loopMu except while it waits with no group open, so
	// that a caller can commit on its own goroutine then (commitInline,
	// commitRemoteInline).
	n.loopMu.Lock()
	defer n.loopMu.Unlock()
	go n.appendLoop()
	go n.applyLoop()
	defer close(n.groups)
	sweep := time.NewTicker(n.opts.SweepInterval)
	defer sweep.Stop()
	rested := time.NewTimer(0) // the sweep's rest between steps (expiry.go)
	rested.Stop()
	defer rested.Stop()
	var g *group // the open group, not yet handed over
	// A step due while writes arrive follows the next group, after its
	// writers are answered, rather than starting on its own: a timer that
	// fires late fires when the runtime wakes for a write, so a step of
	// its own would start just as a write arrives and delay it.
	sweepDue := false
	fast := 0 // requests taken in a row without the full select
	for {
		if sweepDue && g != nil {
			g = n.markSweep(g)
			sweepDue = false
		}
		if g == nil {
			var took bool
			if g, took = n.takeQueued(nil, &fast); took {
				continue
			}
			n.loopMu.Unlock()
			select {
			case r := <-n.reqs:
				n.loopMu.Lock()
				n.queued.Add(-1)
				g = n.add(nil, r)
			case <-n.gate.timeout():
				n.loopMu.Lock()
				g = n.giveUpTransfer(nil)
			case <-n.snap.ended:
				// The committer checks whether a snapshot is due after each
				// group (maybeSnapshot), so one that fell due while the
				// snapshotter was busy waits for a group. When the writes
				// stopped meanwhile, this empty one starts it now, not the
				// next write or sweep step.
				n.loopMu.Lock()
				g = n.newGroup()
			case <-sweep.C:
				n.loopMu.Lock()
				g = n.markSweep(nil)
			case rest := <-n.sweepAgain:
				n.loopMu.Lock()
				if time.Since(n.lastWrite) < sweepIdle { // make room for the writes
					rested.Reset(rest)
				} else { // idle: no need to rest
					g = n.markSweep(nil)
				}
			case <-rested.C:
				n.loopMu.Lock()
				if time.Since(n.lastWrite) < sweepIdle {
					sweepDue = true
					rested.Reset(sweepIdle) // if no write comes, the node is idle then
				} else {
					g = n.markSweep(nil)
				}
			case <-n.closing:
				n.loopMu.Lock()
				n.drain(nil)
				return
			}
			continue
		}
		var took bool
		if g, took = n.takeQueued(g, &fast); took {
			continue
		}
		select {
		case n.groups <- g: // the committer is free: hand the group over
			n.handed(g)
			g = nil
		case r := <-n.reqs:
			n.queued.Add(-1)
			g = n.add(g, r)
		case <-n.gate.timeout():
			g = n.giveUpTransfer(g)
		case <-sweep.C:
			g = n.markSweep(g)
		case rest := <-n.sweepAgain:
			rested.Reset(rest) // a group is open: writes are coming
		case <-rested.C:
			g = n.markSweep(g)
		case <-n.closing:
			n.drain(g)
			return
		}
	}
}

// takeQueued builds a queued request into g (nil: none open) without
// waiting and returns the open group after it; took is false, and *fast
// set to 0, when nothing is queued or when it has taken fastRun in a row
// (*fast counts them). The loop takes what is queued this way before
// its select, which picks at random among its ready cases: with the
// committer free it cut a burst (a peer's delivery, many writers at once)
// into groups of about two, an fsync each, and it locks all seven channels
// each time. The select still runs every fastRun requests and whenever
// nothing is queued, so the committer, timers and Close are not starved.
func (n *Node) takeQueued(g *group, fast *int) (_ *group, took bool) {
	if *fast < fastRun {
		select {
		case r := <-n.reqs:
			*fast++
			n.queued.Add(-1)
			return n.add(g, r), true
		default:
		}
	}
	*fast = 0
	return g, false
}

// drain commits what was queued before Close (the loop then stops).
func (n *Node) drain(g *group) {
	for {
		select {
		case r := <-n.reqs:
			n.queued.Add(-1)
			g = n.add(g, r)
			continue
		default:
		}
		break
	}
	if g != nil {
		n.send(g)
	}
}

// send hands g to the committer, waiting until it takes it.
func (n *Node) send(g *group) {
	n.groups <- g
	n.handed(g)
}

// handed records that g went to the committer.
func (n *Node) handed(g *group) {
	n.sent.Add(1)
	if g.remote {
		n.txStale = true
	}
}

// add builds request r into the open group g (nil: none) and returns the
// open group afterwards (nil when r had to go in a group of its own).
func (n *Node) add(g *group, r *request) *group {
	if r.kind == reqSnapshot { // after everything before it, alone
		if g != nil {
			n.send(g)
		}
		n.send(&group{snapshot: r, reqs: []*request{r}})
		return nil
	}
	if g != nil && (g.bytes >= maxGroupBytes || len(g.reqs) >= n.opts.MaxBatchOps) {
		n.send(g)
		g = nil
	}
	if g == nil {
		g = n.newGroup()
		n.lastWrite = time.Now() // per group: the sweep needs no finer idea of idle
	}
	g.reqs = append(g.reqs, r)
	if n.readOnly.Load() != nil || n.tx == nil {
		return g // the committer answers with the cause
	}
	n.buildInto(g, r)
	g.lastSeq, g.clock = n.tx.LastSeq(), n.clock
	if len(n.gate.released) > 0 { // after the record that closed a transfer
		g = n.releaseHeld(g)
	}
	return g
}

// newGroup opens a group.
func (n *Node) newGroup() *group {
	if n.readOnly.Load() == nil {
		n.transaction() // only between groups: see above
	}
	return &group{}
}

// markSweep asks for a sweep step after the open group g (opening one, to
// hold nothing else, when there is none).
func (n *Node) markSweep(g *group) *group {
	if g == nil {
		g = n.newGroup()
	}
	g.sweep = true
	return g
}

// loopRLock read-locks the state for the loop, saying so while it waits:
// a sweep step holding the lock gives way (expiry.go).
func (n *Node) loopRLock() {
	n.loopWaits.Store(true)
	n.mu.RLock()
	n.loopWaits.Store(false)
}

// writesWaiting, called by the applier during a sweep step, reports
// whether writes wait for it: the loop for the state lock, or a group
// handed to the committer after the one the step follows.
func (n *Node) writesWaiting() bool {
	return n.loopWaits.Load() || n.groupWaiting()
}

// groupWaiting, called by the applier, reports whether a group was handed
// to the committer after the one it is on.
func (n *Node) groupWaiting() bool { return n.sent.Load() > n.committed.Load()+1 }

// waitCommitted waits until the committer has finished every group sent.
func (n *Node) waitCommitted() {
	for n.committed.Load() != n.sent.Load() {
		<-n.groupDone
	}
}

// transaction makes n.tx the rolling transaction, beginning a fresh one
// on the current state when the old one may read stale values, is long,
// or can be replaced for free (everything it did is applied).
func (n *Node) transaction() {
	if n.swept.Swap(false) {
		n.txStale = true
	}
	if n.tx != nil && (n.txStale || n.tx.Ops() >= maxTxOps || n.committed.Load() == n.sent.Load()) {
		n.waitCommitted()
		n.txSeq = max(n.txSeq, n.tx.LastSeq())
		n.tx, n.txStale = nil, false
	}
	if n.tx == nil {
		n.tx = n.ks.Begin(n.replica, max(n.txSeq, n.lastSeq.Load()))
	}
}

// buildInto builds one request into g: a remote record is checked for
// duplicates, a local operation gets its delta and record.
func (n *Node) buildInto(g *group, r *request) {
	now := n.opts.Now().UnixMilli()
	if r.kind == reqRemote {
		n.remoteAt.Store(now)
		if r.op != nil && r.op.Kind == OpDelta {
			n.loopRLock()
			dup := n.ks.Covers(r.op.Delta)
			n.mu.RUnlock()
			if dup || rangesCover(g.remoteDots, r.op.Delta.Dots()) {
				n.m.remoteDup.Inc()
				return
			}
		}
		if !n.admitRemote(r) { // held back by a state transfer, refused, or a mark
			return
		}
		if r.op.Kind == OpDelta {
			g.remoteDots = append(g.remoteDots, r.op.Delta.Dots()...)
		}
		next, ahead := crdt.WitnessTimestamp(n.clock, r.op.Time, now, n.opts.MaxClockDrift.Milliseconds())
		n.clock = next
		n.hlc.Store(uint64(next))
		if ahead {
			n.m.clockAhead.Inc()
		}
		g.entries = append(g.entries, groupEntry{r: r, op: r.op, rec: r.raw})
		g.bytes += len(r.raw)
		g.remote = true
		if n.gate.closing {
			n.gate.close(n) // what it held follows this record (add)
		}
		return
	}
	tx := n.tx
	n.clock = crdt.NextTimestamp(n.clock, now)
	n.hlc.Store(uint64(n.clock))
	tx.SetTime(n.clock) // a key expired at this time gets a fresh value
	cp := tx.Checkpoint()
	n.loopRLock() // the transaction reads the state the committer writes
	d, err := n.build(tx, r, n.clock)
	n.mu.RUnlock()
	var rec []byte
	op := &Op{V: OpVersion, Kind: OpDelta, Origin: n.replica, Time: n.clock, Delta: d}
	if err == nil {
		rec, err = EncodeOp(op)
	}
	if err == nil && len(rec) > maxRecordBytes {
		err = fmt.Errorf("%w: %s %q: record of %d bytes (max %d)", ErrTooLarge, r.kind, r.key, len(rec), maxRecordBytes)
	}
	if err != nil {
		n.loopRLock()
		tx.Rollback(cp)
		n.mu.RUnlock()
		r.err = err
		n.m.opErrors.WithLabelValues(errorReason(err)).Inc()
		return
	}
	g.entries = append(g.entries, groupEntry{r: r, op: op, rec: rec})
	g.bytes += len(rec)
}

// appendLoop is the second stage: it makes each group durable with one
// wal.Append and passes it on, so the fsyncs run back to back while the
// loop fills the next group and the applier applies the previous one.
func (n *Node) appendLoop() {
	defer close(n.appended)
	for g := range n.groups {
		if g.snapshot == nil {
			n.appendGroup(g)
		}
		n.appended <- g
	}
}

// appendGroup appends g's records, or marks its requests failed.
func (n *Node) appendGroup(g *group) {
	if ro := n.readOnly.Load(); ro != nil {
		g.failed = ro.err
		return
	}
	if len(g.entries) == 0 {
		return
	}
	recs := n.recs[:0]
	for _, e := range g.entries {
		recs = append(recs, e.rec)
	}
	start := time.Now()
	first, err := n.wal.Append(recs...)
	clear(recs)
	n.recs = recs[:0]
	n.m.appendSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		n.setReadOnly(err)
		g.failed = err
		return
	}
	g.first = first
}

// applyLoop is the third stage: it applies each durable group to the
// state, publishes, calls the replication hook and answers the callers.
// It is the state's only writer, but for the inline commits, which run
// when it is idle; loopDone closes when it exits.
func (n *Node) applyLoop() {
	defer close(n.loopDone)
	for g := range n.appended {
		n.applyMu.Lock()
		n.finishGroup(g, true)
		n.applyMu.Unlock()
	}
}

// finishGroup is the applier's work on one group, under applyMu: apply,
// answer (with answer: an inline commit's caller needs no answer), a sweep
// step if one is due after it, a snapshot if one is due.
func (n *Node) finishGroup(g *group, answer bool) {
	switch {
	case g.snapshot != nil:
		n.snapshotRequest(g.snapshot) // every earlier group is applied
	case g.failed != nil:
		for _, r := range g.reqs {
			if r.err == nil {
				r.err = readOnlyError(g.failed)
			}
		}
		n.m.readOnlyErrors.Add(float64(len(g.reqs)))
	case len(g.entries) > 0:
		n.applyGroup(g)
	}
	if answer {
		for _, r := range g.reqs {
			if r.done != nil { // nil: nobody waits (released by a transfer gate)
				r.done <- struct{}{}
			}
		}
	}
	// Let the callers just answered run before this goroutine goes on
	// with a group already handed over: readied by it, they wait in
	// its processor's run queue, which it may not give up for
	// milliseconds while groups keep coming. They send their next
	// writes first, which the loop gathers into a group. (Not when it
	// would block next anyway: a lone writer's Put then pays 3-5 µs.)
	if n.groupWaiting() {
		runtime.Gosched()
	}
	// After the answers: a group's writers do not wait for the step.
	if g.sweep {
		n.sweepStep()
	}
	n.committed.Add(1)
	select {
	case n.groupDone <- struct{}{}:
	default:
	}
	n.maybeSnapshot()
}

// remoteQuiet is how long after the loop last took a peer's record local
// writes keep going through the loop rather than commitInline: while peers
// send, a local write shares their group commit (one fsync for both)
// instead of taking one of its own, and the loop is never kept waiting
// for loopMu.
const remoteQuiet = 100 * time.Millisecond

// commitInline commits r on the caller's goroutine, as the loop, the
// appender and the applier would, when the pipeline is idle: nothing
// queued, no group open or in flight. A lone writer then pays no hand-off
// between goroutines: each wakes a parked goroutine, and the round trip
// through the pipeline cost ~15 µs on the reference VM against a 140 µs
// fsync. It reports whether it committed r. A request queued meanwhile
// waits for the loop, which waits for loopMu: the WAL order is the order
// of the commits, and a caller's requests keep the order it made them in
// (a queued one makes the next go through the queue behind it).
func (n *Node) commitInline(r *request) bool {
	if r.kind == reqRemote || r.kind == reqSnapshot || !n.lockIdle() {
		return false
	}
	defer n.loopMu.Unlock()
	if n.opts.Now().UnixMilli()-n.remoteAt.Load() < remoteQuiet.Milliseconds() {
		return false
	}
	n.commitOwn(n.add(nil, r))
	n.inlined.Add(1)
	return true
}

// commitRemoteInline commits a peer's delivery (reqs, plain deltas) on the
// caller's goroutine when the pipeline is idle, as commitInline does a
// local write: one group, one fsync, and no hand-off to the loop, the
// appender and the applier and back (each wakes a parked goroutine, often
// on another thread: a third of a delivery's CPU on an otherwise idle
// node, BenchmarkRemoteDelivery). It reports whether it committed them; each
// request's err is set. Not while a state transfer is open: the transfer
// gate may hold records back or release held ones, which the loop
// commits in order.
func (n *Node) commitRemoteInline(reqs []*request) bool {
	if len(reqs) == 0 || len(reqs) > n.opts.MaxBatchOps {
		return false
	}
	size := 0
	for _, r := range reqs {
		if r.op == nil || r.op.Kind != OpDelta || r.mark != 0 {
			return false
		}
		size += len(r.raw)
	}
	if size >= maxGroupBytes || !n.lockIdle() {
		return false
	}
	defer n.loopMu.Unlock()
	if n.gate.peer != "" || len(n.gate.released) > 0 {
		return false
	}
	var g *group
	for _, r := range reqs {
		g = n.add(g, r) // within the group's bounds (above): never sent
	}
	n.commitOwn(g)
	n.inlinedRemote.Add(1)
	return true
}

// lockIdle takes loopMu when the pipeline is idle (nothing queued, no
// group open or in flight, the node open), for an inline commit; false
// when it is not. The loop holds loopMu whenever a group is open, and
// counts a request as queued until it holds loopMu, so a request the loop
// took is never overtaken by an inline commit.
func (n *Node) lockIdle() bool {
	if !n.loopMu.TryLock() {
		return false
	}
	if n.queued.Load() != 0 || n.sent.Load() != n.committed.Load() || n.closed.Load() {
		n.loopMu.Unlock()
		return false
	}
	return true
}

// commitOwn appends and applies g, built under loopMu by an inline commit,
// on the caller's goroutine; nobody is answered (the caller waits for
// nothing).
func (n *Node) commitOwn(g *group) {
	n.handed(g)
	n.applyMu.Lock() // the applier may still be finishing the last group
	defer n.applyMu.Unlock()
	n.appendGroup(g)
	n.finishGroup(g, false)
}

// applyGroup applies a durable group (its records start at WAL offset
// g.first).
func (n *Node) applyGroup(g *group) {
	first := g.first
	n.m.batchOps.Observe(float64(len(g.entries)))
	n.m.walRecords.Add(float64(len(g.entries)))
	n.m.walBytes.Add(float64(g.bytes))

	var evs []Event
	n.mu.Lock()
	// Read under n.mu: a resuming subscriber registers under n.mu too, so
	// either it is seen here or its catch-up cut comes after this group.
	publish := n.hub.active()
	for i, e := range g.entries {
		off := first + uint64(i)
		e.r.offset = off
		changes := n.applyOp(e.op)
		switch e.r.kind {
		case reqIncr:
			if v, ok := n.ks.Get(e.r.key, 0); ok { // the value just written
				e.r.n = v.Counter
			}
		case reqBatch:
			for _, op := range e.r.batch {
				if op.kind == reqIncr {
					if v, ok := n.ks.Get(op.key, 0); ok && v.Type == crdt.TypeCounter {
						op.n, op.counted = v.Counter, true
					}
				}
			}
		}
		if publish {
			evs = n.appendEvents(evs, changes, e.op.Origin, off)
		}
	}
	n.applied = first + uint64(len(g.entries))
	n.keys.Store(int64(n.ks.Len()))
	// Under the lock too: a snapshot's copy reads them with the state
	// (copyState).
	n.noteSeq(g.lastSeq)
	n.durableClock = g.clock
	for i, e := range g.entries {
		n.indexOp(e.op, first+uint64(i))
	}
	n.mu.Unlock()

	for _, e := range g.entries {
		if e.r.kind == reqRemote {
			n.m.remoteApplied.Inc()
		} else {
			n.m.opsBy[e.r.kind].Inc()
		}
	}
	n.m.keys.Set(float64(n.keys.Load()))
	n.sinceOps += len(g.entries)
	n.sinceSize += int64(g.bytes)
	n.hub.publish(evs)
	if hook := n.commitHook.Load(); hook != nil {
		cs := make([]committed, len(g.entries))
		for i, e := range g.entries {
			cs[i] = committed{Offset: first + uint64(i), Record: e.rec, Op: e.op, From: e.r.from}
		}
		(*hook)(cs)
	}
}

// noteSeq raises lastSeq to at least s.
func (n *Node) noteSeq(s uint64) {
	for {
		cur := n.lastSeq.Load()
		if s <= cur || n.lastSeq.CompareAndSwap(cur, s) {
			return
		}
	}
}

// applyOp joins one record into the state (the committer under n.mu, or
// Open before the pipeline starts) and keeps lastSeq above every dot of
// this replica its context carries.
func (n *Node) applyOp(op *Op) []crdt.Change {
	var changes []crdt.Change
	switch op.Kind {
	case OpDelta:
		// Its values are the Tx's or DecodeOp's (which aliases nothing),
		// and nobody writes into them: the state keeps them.
		changes = n.ks.ApplyOwned(op.Delta)
	case OpStateRange:
		changes = n.ks.JoinRange(op.Lo, op.Hi, op.Delta, op.Ctx)
	case OpContext:
		n.ks.MergeContext(op.Ctx)
		if op.Applied != nil {
			n.ks.MergeApplied(op.Applied)
		}
	}
	if op.Ctx != nil {
		n.noteSeq(maxSeq(op.Ctx, n.replica))
	}
	return changes
}

// indexOp records where a delta's dots live in the WAL (for replication)
// and keeps lastSeq above every dot of this replica the state holds (a
// peer may hand back our own dots, e.g. after a restore).
func (n *Node) indexOp(op *Op, off uint64) {
	if op.Kind != OpDelta {
		return
	}
	for _, dr := range op.Delta.Dots() {
		n.index.add(dr.Replica, dr.First, dr.Last, off)
		if dr.Replica == n.replica {
			n.noteSeq(dr.Last)
		}
	}
}

// maxSeq returns the highest seq of replica r that c has seen.
func maxSeq(c *crdt.Context, r crdt.ReplicaID) uint64 {
	s := c.VV[r]
	for _, d := range c.Cloud {
		if d.Replica == r && d.Seq > s {
			s = d.Seq
		}
	}
	return s
}

// rangesCover reports whether every range of want lies within one of have.
func rangesCover(have, want []crdt.DotRange) bool {
	if len(want) == 0 || len(have) == 0 {
		return false
	}
next:
	for _, w := range want {
		for _, h := range have {
			if h.Replica == w.Replica && h.First <= w.First && w.Last <= h.Last {
				continue next
			}
		}
		return false
	}
	return true
}

// appendEvents turns the changes of the record at off into events for the
// keys someone subscribed to. Called under n.mu, after the record applied,
// so each event carries the value right after its record.
func (n *Node) appendEvents(evs []Event, changes []crdt.Change, origin crdt.ReplicaID, off uint64) []Event {
	now := n.readTime()
	from := ""
	for _, c := range changes {
		if !n.hub.interested(c.Key) {
			continue
		}
		if from == "" {
			from = origin.String()
		}
		ev := Event{Key: c.Key, Origin: from, Offset: off, Deleted: true}
		if !c.Deleted {
			if v, ok := n.ks.GetShared(c.Key, now); ok {
				data, err := sharedViewData(&v)
				if err != nil {
					n.log.Warn("event for undecodable value", "key", c.Key, "err", err)
					continue
				}
				ev.Deleted, ev.Type, ev.Data = false, typeOf(v.Type), data
			}
		}
		evs = append(evs, ev)
	}
	return evs
}

// build computes the delta of one local request inside tx.
func (n *Node) build(tx *crdt.Tx, r *request, ts crdt.Timestamp) (*crdt.Delta, error) {
	if r.kind != reqBatch {
		d, err := buildOne(tx, r, ts)
		if err != nil {
			return nil, mapError(r.kind.String(), r.key, err)
		}
		return d, nil
	}
	if len(r.batch) == 1 { // nothing to join: the Tx's delta as a single write uses it
		d, err := buildOne(tx, r.batch[0], ts)
		if err != nil {
			return nil, fmt.Errorf("node: batch operation 0: %w", mapError(r.batch[0].kind.String(), r.batch[0].key, err))
		}
		return d, nil
	}
	ds := make([]*crdt.Delta, 0, len(r.batch))
	for i, op := range r.batch {
		d, err := buildOne(tx, op, ts)
		if err != nil {
			return nil, fmt.Errorf("node: batch operation %d: %w", i, mapError(op.kind.String(), op.key, err))
		}
		ds = append(ds, d)
	}
	return crdt.JoinDeltasOwned(ds...), nil // the Tx's deltas: never modified
}

func buildOne(tx *crdt.Tx, r *request, ts crdt.Timestamp) (*crdt.Delta, error) {
	if r.ttl > 0 && r.kind != reqExpire { // a write with a TTL: the write, then its expiry
		d, err := buildWrite(tx, r, ts)
		if err != nil {
			return nil, err
		}
		x, err := tx.Expire(r.key, expiryAt(ts, r.ttl))
		if err != nil {
			return nil, err
		}
		return crdt.JoinDeltasOwned(d, x), nil
	}
	return buildWrite(tx, r, ts)
}

func buildWrite(tx *crdt.Tx, r *request, ts crdt.Timestamp) (*crdt.Delta, error) {
	switch r.kind {
	case reqExpire:
		return tx.Expire(r.key, expiryAt(ts, r.ttl))
	case reqPersist:
		return tx.Persist(r.key)
	case reqPut:
		return tx.PutOwned(r.key, r.value, ts) // newPut's own encoding, never modified
	case reqDelete:
		return tx.Delete(r.key)
	case reqIncr:
		return tx.Incr(r.key, r.by)
	case reqSetAdd:
		return tx.SetAdd(r.key, r.members...)
	case reqSetRemove:
		return tx.SetRemove(r.key, r.members...)
	case reqUpdate:
		return tx.Update(r.key, r.patch, ts)
	}
	return nil, fmt.Errorf("node: unknown request kind %d", r.kind)
}

// errorReason labels a refused operation for the op_errors metric.
func errorReason(err error) string {
	switch {
	case errors.Is(err, ErrWrongType):
		return "wrong_type"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrOverflow):
		return "overflow"
	case errors.Is(err, ErrInvalidValue):
		return "invalid"
	}
	return "other"
}
