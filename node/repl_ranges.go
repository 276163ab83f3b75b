package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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
// but another state digest is sent a summary too (diverged).

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

// sendSummary writes our summary to w.
func (r *replicator) sendSummary(w *gossip.SyncWriter) error {
	n := r.n
	n.mu.Lock() // Keys sorts the key index on demand: it writes
	keys := n.ks.Keys("", 0)
	m := min(summaryRanges, max(1, len(keys)/minRangeKeys))
	if len(keys) > 0 {
		total := 0
		for _, k := range keys {
			total += len(k.Key)
		}
		m = min(m, max(1, summaryMaxBytes/max(1, total/len(keys)))) // long keys: fewer ranges
	}
	var bounds []string
	size := 0
	for i := 1; i < m && size < summaryMaxBytes; i++ {
		b := keys[i*len(keys)/m].Key
		bounds = append(bounds, b)
		size += len(b)
	}
	sums := n.ks.RangeSums(bounds)
	ctx0 := n.ks.Context()
	applied0 := n.ks.Applied()
	n.mu.Unlock()
	rec, err := EncodeOp(&Op{V: OpVersion, Kind: OpSummary, Origin: n.replica,
		Time: crdt.MakeTimestamp(n.opts.Now().UnixMilli(), 0), Ctx: ctx0, Applied: applied0,
		Sums: encodeSummary(bounds, sums)})
	if err != nil {
		return err
	}
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("node: send summary: %w", err)
	}
	r.m.stateBytes.Add(float64(len(rec)))
	return nil
}

// onSummary compares a peer's summary with our state. It asks the peer for
// the ranges that differ (in our next pull from it), or, when none does,
// records the summary's context and applied set as a transfer would have.
func (r *replicator) onSummary(from gossip.Peer, op *Op) error {
	n := r.n
	bounds, theirs, err := decodeSummary(op.Sums)
	if err != nil {
		return err
	}
	n.mu.RLock()
	mine := n.ks.RangeSums(bounds)
	n.mu.RUnlock()
	var want []keyRange
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
		if l := len(want) - 1; l >= 0 && want[l].Hi == kr.Lo {
			want[l].Hi = kr.Hi // adjacent: one range
			continue
		}
		want = append(want, kr)
	}
	r.m.rangesWanted.Add(float64(len(want)))
	// The peer may lack something of ours (a summary also answers a
	// divergence): have it pull from us.
	g := r.gossip()
	if g != nil {
		g.Nudge(from.Name)
	}
	if len(want) == 0 {
		n.mu.RLock()
		covered := len(n.ks.Context().Missing(op.Ctx)) == 0 && len(n.ks.Applied().Missing(op.Applied)) == 0
		n.mu.RUnlock()
		if covered {
			return nil // the record would change nothing
		}
		fin := &Op{V: OpVersion, Kind: OpContext, Origin: op.Origin, Time: op.Time, Ctx: op.Ctx, Applied: op.Applied}
		rec, err := EncodeOp(fin)
		if err != nil {
			return err
		}
		return n.applyRemoteBatch([][]byte{rec}, []*Op{fin}, from.Name)
	}
	if len(want) > maxRequestRanges {
		want = wholeState
	}
	r.mu.Lock()
	p := r.peers[from.Name]
	if p == nil {
		p = &peerState{applied: &crdt.Context{}}
		r.peers[from.Name] = p
	}
	p.want = &rangeRequest{ranges: want, ctx: op.Ctx, applied: op.Applied}
	r.mu.Unlock()
	if g != nil {
		g.RequestSync(from.Name)
	}
	return nil
}

// PullDigest is our digest for a pull from peer to: the ranges we want
// from it, if its summary showed some, else our usual digest.
func (r *replicator) PullDigest(to gossip.Peer) []byte {
	r.mu.Lock()
	var want *rangeRequest
	if p := r.peers[to.Name]; p != nil {
		want, p.want = p.want, nil
	}
	r.mu.Unlock()
	if want == nil {
		return r.Digest()
	}
	d := &syncDigest{V: digestVersion, Replica: r.n.replica, Caps: capRangeSums,
		RangeCtx: want.ctx, RangeApplied: want.applied}
	r.n.mu.RLock()
	d.Applied = r.n.ks.Applied()
	state := r.n.ks.Digest()
	r.n.mu.RUnlock()
	d.State = state[:]
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

// rangeKeys returns the part of sorted keys inside kr.
func rangeKeys(keys []crdt.KeyInfo, kr keyRange) []crdt.KeyInfo {
	cmp := func(ki crdt.KeyInfo, k string) int {
		switch {
		case ki.Key < k:
			return -1
		case ki.Key > k:
			return 1
		}
		return 0
	}
	i, _ := slices.BinarySearchFunc(keys, kr.Lo, cmp)
	j := len(keys)
	if kr.Hi != "" {
		j, _ = slices.BinarySearchFunc(keys, kr.Hi, cmp)
	}
	return keys[i:max(i, j)]
}
