package node

import (
	"errors"
	"slices"
	"sort"
	"time"
)

// State transfers are atomic to observers: nothing deleted comes back.
//
// A state transfer (sync_serve.go, repl_ranges.go) is a run of
// OpStateRange records from one peer closed by an OpContext record.
// JoinRange joins each range under the sender's context but adds to ours
// only the dots the range holds: the sender's whole context can come only
// with the closing record, or our values in the ranges not joined yet
// would look removed. Until then our context lacks the dots the sender saw
// removed, so a delta bringing such a dot (an old write that arrives late
// from its origin) would bring the removed value back in a range already
// joined; the closing record would then mark the remove as applied, and
// the applied sets would no longer show that the states differ.
//
// So the loop, which orders the WAL, keeps a gate (n.gate, owned by the
// loop):
//   - the first OpStateRange record from a peer opens it for that peer,
//     and each of its records widens the part of the key space it has
//     joined;
//   - a remote delta that touches a key in that part is held back: it is
//     answered at once (no stream waits for the transfer), but neither
//     applied nor acknowledged as applied. A delta that touches only other
//     keys is applied as usual: the range joined later sees it like any
//     join does;
//   - the peer's OpContext record closes the gate, and the held deltas are
//     committed right after it (in WAL order, so replay needs no gate). By
//     then our context covers the context every range was joined with
//     (writeState), so a dot the sender had seen removed stays removed. (A
//     write and its removal that the sender applied after that context are
//     sent by record after the transfer: a held copy of the write may show
//     until the removal's record, right behind it, arrives, which is an
//     order any replica may receive those two operations in.)
//   - meanwhile a transfer from another peer is refused with
//     errTransferBusy (that peer's pull fails; anti-entropy pulls again
//     later), and so is an OpContext record that closes no open transfer;
//   - a transfer that stops (its stream broke: gossip gives a pull up after
//     SyncIdleTimeout of silence) is given up after the same idle time and
//     the held deltas are committed then. The ranges it joined stay (each
//     is a valid join); with no closing record nothing was marked applied,
//     so anti-entropy brings what they lacked again.
//
// Held deltas are bounded (maxHeldRecords, maxHeldBytes): beyond that they
// are dropped (counted) and anti-entropy brings them again. The summary
// comparison that ends in an OpContext record without ranges (endSummary)
// opens the gate over the whole key space with a mark request and compares
// again, so that nothing lands between the comparison and the record.
//
// A crash during a transfer loses the gate and the held deltas (they were
// never acknowledged as applied); the ranges joined before it stay, as when
// a transfer is given up.

const (
	maxHeldRecords      = 4096
	maxHeldBytes        = 32 << 20
	defaultTransferIdle = 30 * time.Second // gossip's default SyncIdleTimeout
)

var (
	// errTransferBusy refuses a state transfer while another peer's is open.
	errTransferBusy = errors.New("node: a state transfer from another peer is in progress")
	// errTransferNotOpen refuses an OpContext record that closes no transfer.
	errTransferNotOpen = errors.New("node: end of a state transfer that is not in progress")
)

// transferMark is what a remote request without a record asks of the gate.
type transferMark uint8

const (
	markOpen  transferMark = 1 // open the gate for request.from over every key
	markClose transferMark = 2 // close it (if request.from holds it) without a record
)

// transferGate is the state transfer in progress, as the loop sees it.
type transferGate struct {
	peer      string     // whose transfer is open; "" when none
	joined    []keyRange // the part of the key space it joined: sorted, disjoint, not adjacent
	closing   bool       // the request being built closes it
	released  []*request // held deltas to commit now (the gate closed or was given up)
	held      []heldRecord
	heldBytes int
	idle      time.Duration
	timer     *time.Timer // fires idle after the transfer's last record
}

type heldRecord struct {
	raw  []byte
	op   *Op
	from string
}

// timeout fires when the open transfer has been silent for too long; nil
// (never) when none is open.
func (t *transferGate) timeout() <-chan time.Time {
	if t.peer == "" {
		return nil
	}
	return t.timer.C
}

// open opens the gate for peer, or keeps it open, and restarts its idle
// timer.
func (t *transferGate) open(n *Node, peer string) {
	if t.idle == 0 {
		t.idle = defaultTransferIdle
		if gc := n.opts.Gossip; gc != nil && gc.SyncIdleTimeout > 0 {
			t.idle = gc.SyncIdleTimeout
		}
	}
	t.peer = peer
	if t.timer == nil {
		t.timer = time.NewTimer(t.idle)
		return
	}
	t.timer.Reset(t.idle)
}

// close closes the gate and moves the held deltas to released.
func (t *transferGate) close(n *Node) {
	t.timer.Stop()
	t.peer, t.joined, t.closing = "", nil, false
	for _, h := range t.held {
		r := getRequest(reqRemote) // nobody waits for it: never sent, not recycled
		r.raw, r.op, r.from = h.raw, h.op, h.from
		t.released = append(t.released, r)
	}
	clear(t.held)
	t.held, t.heldBytes = t.held[:0], 0
	n.m.transferHeld.Set(0)
}

// widen adds kr to the joined part.
func (t *transferGate) widen(kr keyRange) {
	t.joined = append(t.joined, kr)
	slices.SortFunc(t.joined, func(a, b keyRange) int {
		switch {
		case a.Lo < b.Lo:
			return -1
		case a.Lo > b.Lo:
			return 1
		}
		return 0
	})
	out := t.joined[:1]
	for _, kr := range t.joined[1:] {
		last := &out[len(out)-1]
		if last.Hi == "" || kr.Lo <= last.Hi { // overlapping or adjacent
			if last.Hi != "" && (kr.Hi == "" || kr.Hi > last.Hi) {
				last.Hi = kr.Hi
			}
			continue
		}
		out = append(out, kr)
	}
	t.joined = out
}

// touches reports whether op changes a key in the joined part.
func (t *transferGate) touches(op *Op) bool {
	if op.Delta == nil || op.Delta.Full {
		return true
	}
	for key := range op.Delta.Keys {
		// The last range starting at or before key may hold it.
		i := sort.Search(len(t.joined), func(i int) bool { return t.joined[i].Lo > key })
		if i > 0 && (t.joined[i-1].Hi == "" || key < t.joined[i-1].Hi) {
			return true
		}
	}
	return false
}

// admitRemote runs in the loop for each remote request (a duplicate delta
// was dropped already). It reports whether the request's record goes into
// the group now; otherwise the request is answered with the group (held,
// refused with r.err, or a mark).
func (n *Node) admitRemote(r *request) bool {
	t := &n.gate
	switch r.mark {
	case markOpen:
		if t.peer != "" && t.peer != r.from {
			r.err = errTransferBusy
			return false
		}
		t.open(n, r.from)
		t.joined = append(t.joined[:0], keyRange{})
		return false
	case markClose:
		if t.peer != "" && t.peer == r.from {
			t.close(n)
		}
		return false
	}
	switch r.op.Kind {
	case OpStateRange:
		if t.peer != "" && t.peer != r.from {
			r.err = errTransferBusy
			n.m.remoteRefused.Inc()
			return false
		}
		t.open(n, r.from)
		t.widen(keyRange{r.op.Lo, r.op.Hi})
	case OpContext:
		if t.peer == "" || t.peer != r.from {
			r.err = errTransferNotOpen
			n.m.remoteRefused.Inc()
			return false
		}
		t.closing = true // after its record is in the group
	case OpDelta:
		if t.peer == "" || !t.touches(r.op) {
			return true
		}
		if len(t.held) >= maxHeldRecords || t.heldBytes+len(r.raw) > maxHeldBytes {
			n.m.remoteHeldDropped.Inc()
			return false
		}
		t.held = append(t.held, heldRecord{raw: r.raw, op: r.op, from: r.from})
		t.heldBytes += len(r.raw)
		n.m.remoteHeld.Inc()
		n.m.transferHeld.Set(float64(len(t.held)))
		return false
	}
	return true
}

// releaseHeld adds the deltas released by the gate to the open group g
// (nil: none) and returns the open group.
func (n *Node) releaseHeld(g *group) *group {
	for len(n.gate.released) > 0 {
		rs := n.gate.released
		n.gate.released = nil
		for _, r := range rs {
			g = n.add(g, r)
		}
	}
	return g
}

// giveUpTransfer closes a transfer that fell silent and commits what it
// held back. g is the open group (nil: none); it returns the open group.
func (n *Node) giveUpTransfer(g *group) *group {
	n.log.Warn("replication: state transfer given up (no record for a while)", "peer", n.gate.peer, "held", len(n.gate.held))
	n.gate.close(n)
	return n.releaseHeld(g)
}

// markTransfer has the loop open or close the gate for peer (a request
// without a record) and waits until it did: every record the loop took
// before it is then applied. errTransferBusy while another peer's
// transfer is open.
func (n *Node) markTransfer(peer string, mark transferMark) error {
	r := getRequest(reqRemote)
	r.from, r.mark = peer, mark
	_, err := n.do(r)
	return err
}
