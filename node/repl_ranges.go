package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/gossip"
)

// Catch-up by range sums. When the operations a peer lacks were truncated
// from the WAL, a peer that understands it (capRangeSums in its digest) and
// holds something is first sent a summary (OpSummary): our keys cut into up
// to summaryRanges ranges of about equal size, the sum of the key hashes of
// each (crdt.Keyspace.RangeSums), and our context and applied set taken at
// the same instant. The peer computes its own sums over those ranges and
// pulls again with the ranges that differ (syncDigest.Ranges), echoing the
// summary's context and applied set; we send the state of those ranges only
// (OpStateRange, as in a whole-state transfer) and end with an OpContext
// record that carries the echoed context and applied set. When no range
// differs, the peer writes that OpContext record itself.
//
// Why the summary's context and applied set, not ours at the second pull:
// a range the peer does not ask for holds what ours held at the summary,
// not what we applied since; the records of those later operations follow
// the ranges (serve sends whatever the peer still lacks by record).
//
// Traffic is then about the size of the summary plus the ranges that hold
// what the peer missed, not the size of the store.
//
// The same exchange repairs a divergence the applied sets cannot show:
// every digest carries the state digest, and a peer with our applied set
// but another state digest is sent a summary too (diverged). That needs
// equal applied sets, rare under continuous writes; the periodic state
// comparison does not (repl.go, step 6): a pull with Check set gets the
// records the puller lacks and then a summary, and onSummary asks only for
// the ranges that operations in flight do not explain.

const (
	// capRangeSums: the digest's sender understands summaries.
	capRangeSums = 1 << 0
	// summaryRanges is how many ranges a summary cuts the keys into (fewer
	// for small stores: at least minRangeKeys keys per range), and
	// summaryMaxBytes bounds the bytes of its bounds.
	summaryRanges   = 1024
	minRangeKeys    = 4
	summaryMaxBytes = 256 << 10
	// maxRequestRanges bounds the ranges one request names; a peer that
	// differs in more asks for the whole state.
	maxRequestRanges = 512
)

// keyRange is the keys in [Lo, Hi) (Hi == "": no end).
type keyRange struct{ Lo, Hi string }

// wholeState is the range of every key.
var wholeState = []keyRange{{}}

// rangeRequest is what we will ask a peer for in our next pull from it.
type rangeRequest struct {
	ranges  []keyRange
	ctx     *crdt.Context // the summary's context and applied set
	applied *crdt.Context
	repair  bool // asked for by a state comparison (syncDigest.RangeRepair)
}

// encodeSummary packs the bounds of the ranges and the len(bounds)+1 sums:
// uvarint count of bounds, each bound as uvarint length and bytes, then the
// sums, 16 bytes each.
func encodeSummary(bounds []string, sums [][16]byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(bounds)))
	for _, s := range bounds {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range sums {
		b = append(b, s[:]...)
	}
	return b
}

// decodeSummary parses encodeSummary's bytes from a peer: it never panics,
// allocates at most in proportion to len(b), and checks the bounds are
// valid keys in strictly increasing order.
func decodeSummary(b []byte) ([]string, [][16]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) || n >= 1<<20 {
		return nil, nil, fmt.Errorf("%w: summary: bad count", ErrCorrupt)
	}
	b = b[k:]
	bounds := make([]string, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, nil, fmt.Errorf("%w: summary: truncated bound", ErrCorrupt)
		}
		s := string(b[k : k+int(l)])
		if !validKey(s) || len(bounds) > 0 && s <= bounds[len(bounds)-1] {
			return nil, nil, fmt.Errorf("%w: summary: bounds not valid keys in increasing order", ErrCorrupt)
		}
		bounds = append(bounds, s)
		b = b[k+int(l):]
	}
	if len(b) != 16*(len(bounds)+1) {
		return nil, nil, fmt.Errorf("%w: summary: %d bytes of sums for %d ranges", ErrCorrupt, len(b), len(bounds)+1)
	}
	sums := make([][16]byte, len(bounds)+1)
	for i := range sums {
		copy(sums[i][:], b[16*i:])
	}
	return bounds, sums, nil
}

// summary takes our summary: the key ranges, their sums, and our context
// and applied set, all at one instant (that of the last chunk of the sums,
// see scanRanges).
func (r *replicator) summary() (*Op, error) {
	n := r.n
	sh := n.mu.rlock()
	m := min(summaryRanges, max(1, n.ks.Len()/minRangeKeys))
	bounds := n.ks.KeyQuantiles(m)
	if size := boundBytes(bounds); size > summaryMaxBytes { // long keys: fewer ranges
		m = max(1, summaryMaxBytes/max(1, size/len(bounds)))
		bounds = n.ks.KeyQuantiles(m)
	}
	n.mu.runlock(sh)
	for size := boundBytes(bounds); size > summaryMaxBytes; size -= len(bounds[len(bounds)-1]) {
		bounds = bounds[:len(bounds)-1]
	}
	var op *Op
	if !n.scanRanges(bounds, func(sums [][16]byte) {
		op = &Op{V: OpVersion, Kind: OpSummary, Origin: n.replica,
			Time: crdt.MakeTimestamp(n.opts.Now().UnixMilli(), 0), Ctx: n.ks.Context(), Applied: n.ks.Applied(),
			Sums: encodeSummary(bounds, sums)}
	}) {
		return nil, fmt.Errorf("node: summary: bounds %q not in increasing order", bounds)
	}
	return op, nil
}

// boundBytes is the bytes of the keys in bounds.
func boundBytes(bounds []string) int {
	size := 0
	for _, b := range bounds {
		size += len(b)
	}
	return size
}

// summaryChunkKeys is how many keys a summary or a comparison sums per
// hold of the state lock: about a millisecond at a million keys (a few
// cache misses a key), after which the writers waiting get their turn.
// Summing every key under one hold stalled every write of a node with a
// million keys for ~2 s, for each peer's periodic comparison.
var summaryChunkKeys = 4096

// scanPaused, when set (tests), runs between two chunks of scanRanges.
var scanPaused func()

// scanRanges sums the key hashes of the ranges bounds cut the keys into,
// summaryChunkKeys keys per hold of the state lock (crdt.RangeScan), and
// calls last with the sums under the same lock as the final chunk: what
// last reads of the state is of the same instant as the sums. false when
// bounds are not valid range bounds.
func (n *Node) scanRanges(bounds []string, last func(sums [][16]byte)) bool {
	sh := n.mu.rlock()
	s := n.ks.StartRangeScan(bounds)
	if s == nil {
		n.mu.runlock(sh)
		return false
	}
	for s.Step(summaryChunkKeys) {
		n.mu.runlock(sh)
		if scanPaused != nil {
			scanPaused()
		}
		sh = n.mu.rlock()
	}
	last(s.Sums())
	s.Close()
	n.mu.runlock(sh)
	return true
}

// sendSummary writes a summary to w (nil: take one now).
func (r *replicator) sendSummary(w *gossip.SyncWriter, op *Op) error {
	if op == nil {
		var err error
		if op, err = r.summary(); err != nil {
			return err
		}
	}
	rec, err := EncodeOp(op)
	if err != nil {
		return err
	}
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("node: send summary: %w", err)
	}
	r.m.stateBytes.Add(float64(len(rec)))
	return nil
}

// onSummary compares a peer's summary with our state and asks the peer for
// the ranges that differ (in our next pull from it), or, when none does,
// records the summary's context and applied set as a transfer would have.
//
// Two cases. We lack operations the summary covers (catch-up after the
// peer's WAL lost them): every range that differs is asked for, and the
// transfer ends with the summary's context and applied set. Or we hold
// every operation the summary covers (a periodic check; the peer sent us
// what we lacked just before it): then a range that differs has diverged,
// unless operations we applied since the summary (extra) changed it; such
// a range is asked for only if it differed at the previous check too
// (suspect), so that operations in flight cost nothing and a divergence
// next to a key written all the time is still repaired at the second
// check. Such a transfer (a repair) joins each range under the summary's
// context and ends with an empty one: we hold every operation already, and
// merging the peer's whole context could hide a value of a range not asked
// for that still differs.
func (r *replicator) onSummary(from gossip.Peer, op *Op) error {
	n := r.n
	bounds, theirs, err := decodeSummary(op.Sums)
	if err != nil {
		return err
	}
	differ, applied, covered := r.compareSummary(bounds, theirs, op)
	lacking := len(applied.Missing(op.Applied)) > 0
	r.mu.Lock()
	p := r.peerLocked(from.Name, time.Now())
	if !lacking {
		p.nextCheck = r.checkAfter(time.Now())
	}
	r.mu.Unlock()
	// The peer may lack something of ours (a summary also answers a
	// divergence): have it pull from us.
	g := r.gossip()
	if g != nil {
		g.Nudge(from.Name)
	}
	if len(differ) == 0 {
		r.mu.Lock()
		p.suspect = nil
		r.mu.Unlock()
		if covered {
			return nil // the record would change nothing
		}
		return r.endSummary(from, op, bounds, theirs)
	}
	want := differ
	req := &rangeRequest{ctx: op.Ctx, applied: op.Applied}
	if !lacking {
		extra := op.Applied.Missing(applied)
		keys, known := n.keysOf(extra, maxExplainRecords)
		r.mu.Lock()
		want, p.suspect = unexplained(differ, keys, known, p.suspect)
		r.mu.Unlock()
		req.applied, req.repair = &crdt.Context{}, true
		r.m.checkRanges.WithLabelValues("differ").Add(float64(len(differ)))
		r.m.checkRanges.WithLabelValues("diverged").Add(float64(len(want)))
		if len(want) > 0 {
			r.log.Info("replication: state differs from a peer's in key ranges its applied set cannot explain: asking for them",
				"peer", from.Name, "ranges", len(want))
		}
	}
	r.m.rangesWanted.Add(float64(len(want)))
	if len(want) == 0 {
		return nil
	}
	if len(want) > maxRequestRanges {
		want = wholeState
	}
	req.ranges = want
	r.mu.Lock()
	p.want = req
	r.mu.Unlock()
	if g != nil {
		g.RequestSync(from.Name)
	}
	return nil
}

// compareSummary compares a summary's range sums with ours: the ranges
// that differ (adjacent ones merged), our applied set, and whether our
// context and applied set cover the summary's.
func (r *replicator) compareSummary(bounds []string, theirs [][16]byte, op *Op) (differ []keyRange, applied *crdt.Context, covered bool) {
	n := r.n
	var mine [][16]byte
	if !n.scanRanges(bounds, func(sums [][16]byte) {
		mine = sums
		applied = n.ks.Applied()
		covered = len(n.ks.Context().Missing(op.Ctx)) == 0 && len(applied.Missing(op.Applied)) == 0
	}) || len(mine) != len(theirs) {
		return nil, n.appliedSet(), false // decodeSummary checked the bounds: not reached
	}
	for i := range theirs {
		if theirs[i] == mine[i] {
			continue
		}
		var kr keyRange
		if i > 0 {
			kr.Lo = bounds[i-1]
		}
		if i < len(bounds) {
			kr.Hi = bounds[i]
		}
		if l := len(differ) - 1; l >= 0 && differ[l].Hi == kr.Lo {
			differ[l].Hi = kr.Hi // adjacent: one range
			continue
		}
		differ = append(differ, kr)
	}
	return differ, applied, covered
}

// endSummary records a summary's context and applied set (an OpContext
// record, as at the end of a transfer) when no range differs from ours.
// The comparison is made again with the transfer gate open (transfer.go):
// a delta landing between the comparison and the record could otherwise
// bring back a value the peer saw removed. While another peer's transfer
// is open it does nothing (the next round does it).
func (r *replicator) endSummary(from gossip.Peer, op *Op, bounds []string, theirs [][16]byte) error {
	n := r.n
	if err := n.markTransfer(from.Name, markOpen); err != nil {
		return nil
	}
	differ, _, covered := r.compareSummary(bounds, theirs, op)
	if len(differ) > 0 || covered {
		return n.markTransfer(from.Name, markClose)
	}
	fin := &Op{V: OpVersion, Kind: OpContext, Origin: op.Origin, Time: op.Time, Ctx: op.Ctx, Applied: op.Applied}
	rec, err := EncodeOp(fin)
	if err == nil {
		err = n.applyRemoteBatch([][]byte{rec}, []*Op{fin}, from.Name) // closes the gate
	}
	if err != nil {
		_ = n.markTransfer(from.Name, markClose) // in case the record did not
	}
	return err
}

// maxExplainRecords bounds the records a check reads to learn which keys
// the operations applied since the peer's summary touched; beyond it every
// differing range is suspect.
const maxExplainRecords = 4096

// keysOf returns, sorted, the keys the given operations touched, read from
// their WAL records; false when some are not in the WAL (applied by state
// transfer, or truncated) or there are more than limit records.
func (n *Node) keysOf(ops []crdt.DotRange, limit int) ([]string, bool) {
	if len(ops) == 0 {
		return nil, true
	}
	offs, ok := n.offsetsOf(ops)
	if !ok {
		return nil, false
	}
	count := 0
	for _, o := range offs {
		count += int(o.Last - o.First + 1)
	}
	if count > limit {
		return nil, false
	}
	var keys []string
	for _, o := range offs {
		for off := o.First; off <= o.Last; off++ {
			rec, err := n.wal.Read(off)
			if err != nil {
				return nil, false
			}
			op, err := DecodeOp(rec)
			if err != nil {
				return nil, false
			}
			keys = append(keys, opKeys(op)...)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), true
}

// unexplained returns the differing ranges to ask for: those that hold
// none of the keys (sorted) changed by operations applied since the
// summary, and those that also overlap a suspect range of the previous
// check. The others are the suspects of the next check. With the keys not
// known, every range is explained by them.
func unexplained(differ []keyRange, keys []string, known bool, suspect []keyRange) (want, next []keyRange) {
	for _, kr := range differ {
		explained := !known || len(rangeStrings(keys, kr)) > 0
		if !explained || overlapsAny(kr, suspect) {
			want = append(want, kr)
		} else {
			next = append(next, kr)
		}
	}
	return want, next
}

// rangeStrings returns the part of sorted keys inside kr.
func rangeStrings(keys []string, kr keyRange) []string {
	i, _ := slices.BinarySearch(keys, kr.Lo)
	j := len(keys)
	if kr.Hi != "" {
		j, _ = slices.BinarySearch(keys, kr.Hi)
	}
	return keys[i:max(i, j)]
}

// overlapsAny reports whether kr shares a key with one of rs.
func overlapsAny(kr keyRange, rs []keyRange) bool {
	for _, o := range rs {
		if (kr.Hi == "" || o.Lo < kr.Hi) && (o.Hi == "" || kr.Lo < o.Hi) {
			return true
		}
	}
	return false
}

// checkAfter returns when the next state comparison with a peer falls due
// after one at now: between three quarters of a period and a period later,
// at random. Each comparison walks every key on both sides; due a whole
// period after the last, the comparisons with all peers of nodes started
// together (and the summaries each serves them) ran at once, every period:
// with ten nodes on two cores that saturated the machine for a second or
// two, the writes' convergence p99 going from ~15 to ~50-90 ms. Spread
// out, they cost the same CPU without the burst, and a period never
// passes without a comparison (the time bound in repl.go holds).
func (r *replicator) checkAfter(now time.Time) time.Time {
	return now.Add(r.checkEvery - rand.N(r.checkEvery/4+1))
}

// firstCheckAfter is checkAfter for the first comparison with a peer we
// just heard of: between a quarter of a period and a period later, so that
// nodes started together (a deploy, a test, `shoal dev`) do not make their
// first round of comparisons within the same quarter period either.
func (r *replicator) firstCheckAfter(now time.Time) time.Time {
	return now.Add(r.checkEvery - rand.N(r.checkEvery*3/4+1))
}

// PullDigest is our digest for a pull from peer to: the ranges we want
// from it, if its summary showed some, else our usual digest, asking for
// a summary when our periodic state comparison with it is due. It also
// schedules a pull from every other peer whose comparison is due (pulls
// run at least every anti-entropy interval, so none waits much longer).
func (r *replicator) PullDigest(to gossip.Peer) []byte {
	now := time.Now()
	r.mu.Lock()
	var want *rangeRequest
	check := false
	var due []string
	for name, p := range r.peers {
		isDue := r.checkEvery > 0 && !now.Before(p.nextCheck)
		switch {
		case name == to.Name:
			want, p.want = p.want, nil
			if want == nil && isDue {
				check = true
				// Asked for again a period from now unless the summary
				// comes (onSummary); a busy or old peer does not make us
				// ask at every pull.
				p.nextCheck = r.checkAfter(now)
			}
		case isDue:
			due = append(due, name)
		}
	}
	r.mu.Unlock()
	if g := r.gossip(); g != nil {
		for _, name := range due {
			g.RequestSync(name)
		}
	}
	if want == nil {
		if !check {
			return r.Digest()
		}
		d := r.digestNow()
		d.Check = true
		if b, err := encodeDigest(d); err == nil {
			return b
		}
		return r.Digest()
	}
	d := r.digestNow()
	d.RangeCtx, d.RangeApplied, d.RangeRepair = want.ctx, want.applied, want.repair
	for _, kr := range want.ranges {
		d.Ranges = append(d.Ranges, kr.Lo, kr.Hi)
	}
	b, err := encodeDigest(d)
	if err != nil {
		r.log.Error("replication: encode digest", "err", err)
		return r.Digest()
	}
	return b
}

// diverged reports whether a peer that lacks nothing of ours holds another
// state with the same applied set: a divergence the applied sets cannot
// show (a delta that arrived during a state transfer, after its key's
// range, can leave one), repaired like a truncated WAL, by range sums.
func (r *replicator) diverged(d *syncDigest) bool {
	if d.Caps&capRangeSums == 0 || len(d.State) != 32 {
		return false
	}
	n := r.n
	n.mu.RLock()
	mine := n.ks.Applied()
	state := n.ks.Digest()
	n.mu.RUnlock()
	return string(state[:]) != string(d.State) && len(mine.Missing(d.Applied)) == 0 && len(d.Applied.Missing(mine)) == 0
}

// checkRanges validates the ranges of a digest (pairs lo, hi): each
// non-empty, in increasing order, not overlapping; only the last may have
// no end.
func checkRanges(rs []string) ([]keyRange, error) {
	if len(rs)%2 != 0 || len(rs)/2 > maxRequestRanges {
		return nil, errors.New("bad range list")
	}
	out := make([]keyRange, 0, len(rs)/2)
	for i := 0; i < len(rs); i += 2 {
		kr := keyRange{rs[i], rs[i+1]}
		if kr.Hi != "" && kr.Hi <= kr.Lo || len(out) > 0 && (out[len(out)-1].Hi == "" || kr.Lo < out[len(out)-1].Hi) {
			return nil, fmt.Errorf("bad range [%q, %q)", truncateKey(kr.Lo), truncateKey(kr.Hi))
		}
		out = append(out, kr)
	}
	return out, nil
}
