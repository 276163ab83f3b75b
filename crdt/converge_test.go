package crdt

import (
	"flag"
	"math/rand/v2"
	"testing"
	"time"
)

var (
	seedFlag  = flag.Uint64("crdt.seed", 0, "run the convergence test with this seed only")
	seedsFlag = flag.Int("crdt.seeds", 60, "number of fixed seeds the convergence test runs")
)

// network delivers deltas between test replicas in a hostile order:
// shuffled, duplicated, batched, and dropped (dropped messages are resent
// at the end, like anti-entropy would).
type network struct {
	t       *testing.T
	seed    uint64
	r       *rand.Rand
	rs      []*replica
	queue   []message
	dropped []message
	logs    [][]*Delta // per replica: every delta it applied (its "WAL")
	cut     int        // replica cut off from delta traffic (-1: none)
}

type message struct {
	to int
	d  *Delta
}

func (n *network) apply(to int, d *Delta) {
	rp := n.rs[to]
	if rp.ks.Covers(d) {
		before := rp.ks.Snapshot()
		if ch := rp.ks.Apply(d); ch != nil {
			n.t.Fatalf("seed %d: a covered delta changed %v\n%s--- before\n%s--- after\n%s", n.seed, ch, dump(d), dump(before), dump(rp.ks.Snapshot()))
		}
		return
	}
	rp.ks.Apply(d)
	n.logs[to] = append(n.logs[to], d)
}

func (n *network) send(from int, d *Delta) {
	n.logs[from] = append(n.logs[from], d)
	for to := range n.rs {
		if to == from {
			continue
		}
		if n.cut == to || n.cut == from {
			n.dropped = append(n.dropped, message{to, d})
			continue
		}
		n.queue = append(n.queue, message{to, d})
	}
}

func (n *network) take(i int) message {
	m := n.queue[i]
	n.queue[i] = n.queue[len(n.queue)-1]
	n.queue = n.queue[:len(n.queue)-1]
	return m
}

// deliverOne delivers (or drops, or duplicates) a random queued message.
func (n *network) deliverOne(canDrop bool) {
	if len(n.queue) == 0 {
		return
	}
	i := n.r.IntN(len(n.queue))
	switch k := n.r.IntN(10); {
	case k == 0 && canDrop:
		n.dropped = append(n.dropped, n.take(i))
	case k == 1:
		n.apply(n.queue[i].to, n.queue[i].d) // stays queued: a duplicate follows
	case k == 2:
		// Several messages to one replica joined into one delta.
		m := n.take(i)
		batch := []*Delta{m.d}
		for j := len(n.queue) - 1; j >= 0 && len(batch) < 4; j-- {
			if n.queue[j].to == m.to {
				batch = append(batch, n.take(j).d)
			}
		}
		n.apply(m.to, JoinDeltas(batch...))
	default:
		m := n.take(i)
		n.apply(m.to, m.d)
	}
}

func TestConvergence(t *testing.T) {
	seeds := []uint64{*seedFlag}
	if *seedFlag == 0 {
		seeds = seeds[:0]
		for s := uint64(1); s <= uint64(*seedsFlag); s++ {
			seeds = append(seeds, s)
		}
		seeds = append(seeds, uint64(time.Now().UnixNano())) // a new one every run
	}
	for _, seed := range seeds {
		converge(t, seed)
		if t.Failed() {
			return
		}
	}
}

func converge(t *testing.T, seed uint64) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("convergence failed with seed %d: reproduce with go test -run TestConvergence -crdt.seed %d", seed, seed)
		}
	}()
	r := rand.New(rand.NewPCG(seed, seed>>32))
	nrep := 2 + r.IntN(4) // 2..5 replicas
	n := &network{t: t, seed: seed, r: r, rs: newReplicas(nrep), logs: make([][]*Delta, nrep), cut: -1}
	catchUp := r.IntN(3) // 0: resend dropped; 1: resend what Missing names; 2: JoinRange state transfer
	if catchUp > 0 {
		n.cut = r.IntN(nrep)
	}
	src := mathRnd{r}
	m := modes[r.IntN(len(modes))].m
	ops := 100 + r.IntN(100)
	// Clocks: a global time and a fixed skew per replica within the drift
	// (replicas also run ahead of it by their own operations). Keys get
	// expiries of a few milliseconds, so they expire, are written afresh
	// and extended concurrently with skewed views of the time. In half
	// the runs replicas sweep as well, reclaiming expired keys each at its
	// own time.
	skew := make([]int64, nrep)
	for i := range skew {
		skew[i] = r.Int64N(testDrift + 1)
	}
	sweeps, swept := r.IntN(2) == 0, false
	global := int64(1000)
	tick := func(i int) *replica {
		rp := n.rs[i]
		rp.now = max(rp.now, global+skew[i])
		return rp
	}
	for i := 0; i < ops; i++ {
		global += r.Int64N(3)
		from := r.IntN(nrep)
		if d := step(t, src, tick(from), m); d != nil {
			n.send(from, d)
		}
		for k := r.IntN(4); k > 0; k-- {
			n.deliverOne(true)
		}
		if sweeps && r.IntN(4) == 0 {
			_, reclaimed := tick(r.IntN(nrep)).sweep(1 + r.IntN(4))
			swept = swept || len(reclaimed) > 0
		}
	}
	for len(n.queue) > 0 {
		n.deliverOne(false)
	}
	switch catchUp {
	case 0, 1:
		if catchUp == 1 {
			// Anti-entropy by dots: each pair compares contexts and the
			// one ahead resends the logged deltas that issued the
			// missing dots.
			for a := range n.rs {
				for b := range n.rs {
					if a != b {
						n.resendMissing(a, b)
					}
				}
			}
			n.dropped = nil
		}
		n.queue, n.dropped = n.dropped, nil
		for len(n.queue) > 0 {
			n.deliverOne(false)
		}
	case 2:
		// State transfer in key ranges, both ways with the cut replica.
		for other := range n.rs {
			if other != n.cut {
				n.transfer(other, n.cut)
				n.transfer(n.cut, other)
			}
		}
		for other := range n.rs {
			if other != n.cut {
				n.transfer(n.cut, other)
			}
		}
	}
	if swept {
		// A replica that reclaimed a key holds less than one that has not
		// (yet), and an extension delivered after a reclaim finds nothing
		// there: the periodic state comparison (a state transfer) carries
		// the reclaim to the others, as it would a delete.
		for a := range n.rs {
			for b := range n.rs {
				if a != b {
					n.transfer(a, b)
				}
			}
		}
	}
	for i, rp := range n.rs[1:] {
		if n.rs[0].ks.Digest() != rp.ks.Digest() {
			t.Errorf("seed %d (%d replicas, mode %d, catch-up %d, sweeps %v): replica %d diverged", seed, nrep, m, catchUp, swept, i+1)
		}
		sameState(t, "converged", n.rs[0].ks, rp.ks)
		if !n.rs[0].ks.Applied().Equal(rp.ks.Applied()) {
			t.Errorf("seed %d: replica %d applied %v, replica 0 %v", seed, i+1, rp.ks.Applied(), n.rs[0].ks.Applied())
		}
	}
	sameState(t, "snapshot round trip", n.rs[0].ks, fromState(t, n.rs[0].ks.Snapshot()))
	// Equal states reclaim alike: once every replica swept everything that
	// expired by a common time, they are equal again, with no key left
	// whose expiry has passed.
	end := MakeTimestamp(global+10*testDrift+1000, 0)
	for _, rp := range n.rs {
		for {
			_, reclaimed := rp.ks.Sweep(end, end, 1+r.IntN(8))
			waiting, expired := rp.ks.Expiring()
			if len(reclaimed) == 0 && expired == 0 && (waiting == 0 || rp.ks.waiting[0].at > end) {
				break
			}
		}
		for key, e := range rp.ks.keys {
			if at := Expiry(e.Exp); at != 0 && at <= end {
				t.Fatalf("seed %d: key %q expired at %d is still held after sweeping to %d", seed, key, at, end)
			}
		}
	}
	for _, rp := range n.rs[1:] {
		sameState(t, "reclaimed", n.rs[0].ks, rp.ks)
	}
}

// resendMissing sends to b the deltas a logged that issued dots b lacks.
func (n *network) resendMissing(a, b int) {
	missing := n.rs[b].ks.Applied().Missing(n.rs[a].ks.Applied())
	if len(missing) == 0 {
		return
	}
	for _, d := range n.logs[a] {
		if overlaps(d.Dots(), missing) {
			n.apply(b, d)
		}
	}
	if lack := n.rs[b].ks.Applied().Missing(n.rs[a].ks.Applied()); len(lack) > 0 {
		n.t.Fatalf("seed %d: after resending, still missing %v", n.seed, lack)
	}
}

func overlaps(a, b []DotRange) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Replica == y.Replica && x.First <= y.Last && y.First <= x.Last {
				return true
			}
		}
	}
	return false
}

// transfer joins the whole state of replica from into replica to, the way
// catch-up does when the deltas are gone: key ranges, then the context.
func (n *network) transfer(from, to int) {
	src, dst := n.rs[from].ks, n.rs[to].ks
	ctx := src.Context()
	keys := src.Keys("", 0, 0)
	lo := ""
	for i := 0; i < len(keys); {
		j := min(len(keys), i+1+n.r.IntN(2))
		hi := ""
		if j < len(keys) {
			hi = keys[j].Key
		}
		names := make([]string, 0, j-i)
		for _, ki := range keys[i:j] {
			names = append(names, ki.Key)
		}
		dst.JoinRange(lo, hi, src.KeyState(names...), ctx)
		lo, i = hi, j
	}
	if len(keys) == 0 {
		dst.JoinRange("", "", &Delta{}, ctx)
	}
	dst.MergeContext(ctx)
	dst.MergeApplied(src.Applied())
}
