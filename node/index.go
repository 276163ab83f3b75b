package node

import (
	"cmp"
	"maps"
	"slices"
	"sync"

	"github.com/shoaldb/shoal/crdt"
)

// dotIndex maps each replica's dots to the WAL offsets of the delta
// records that carry them, so replication can resend exactly the records a
// peer lacks. It is kept compact: a stretch of consecutive records that
// each carry the next single seq (the common case: one local write after
// another) is one run, whatever its length.
//
// Safe for concurrent use: the commit loop adds, the snapshot writer
// truncates, replication looks up.
type dotIndex struct {
	mu   sync.Mutex
	runs map[crdt.ReplicaID][]indexRun // sorted by FirstSeq
}

// indexRun says where seqs FirstSeq..LastSeq of one replica live. Either
// one record (FirstOff == LastOff) carries all of them, or the run is
// linear: LastSeq-FirstSeq == LastOff-FirstOff and the record at offset
// FirstOff+i carries exactly seq FirstSeq+i.
type indexRun struct {
	FirstSeq uint64 `msgpack:"s"`
	LastSeq  uint64 `msgpack:"l"`
	FirstOff uint64 `msgpack:"o"`
	LastOff  uint64 `msgpack:"p"`
}

func (r *indexRun) linear() bool { return r.LastSeq-r.FirstSeq == r.LastOff-r.FirstOff }

// offRange is an inclusive range of WAL offsets.
type offRange struct{ First, Last uint64 }

// add records that the record at off carries seqs first..last of replica.
func (x *dotIndex) add(replica crdt.ReplicaID, first, last, off uint64) {
	if first == 0 || last < first {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.runs == nil {
		x.runs = make(map[crdt.ReplicaID][]indexRun)
	}
	list := x.runs[replica]
	if n := len(list); n > 0 {
		t := &list[n-1]
		if first == last && first == t.LastSeq+1 && off == t.LastOff+1 && t.linear() {
			t.LastSeq, t.LastOff = first, off
			return
		}
	}
	run := indexRun{FirstSeq: first, LastSeq: last, FirstOff: off, LastOff: off}
	if n := len(list); n == 0 || list[n-1].FirstSeq <= first {
		x.runs[replica] = append(list, run)
		return
	}
	i, _ := slices.BinarySearchFunc(list, first, func(r indexRun, s uint64) int {
		switch {
		case r.FirstSeq < s:
			return -1
		case r.FirstSeq > s:
			return 1
		}
		return 0
	})
	x.runs[replica] = slices.Insert(list, i, run)
}

// lookup returns the offset ranges (sorted, merged) of the records that
// carry seqs from..to of replica, and whether every one of those seqs was
// found (false: some were never indexed, or were truncated away with the
// WAL records that held them; send state instead).
func (x *dotIndex) lookup(replica crdt.ReplicaID, from, to uint64) ([]offRange, bool) {
	if from == 0 {
		from = 1
	}
	if to < from {
		return nil, true
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []offRange
	type seqRange struct{ a, b uint64 }
	var got []seqRange
	for _, r := range x.runs[replica] {
		if r.FirstSeq > to {
			break
		}
		if r.LastSeq < from {
			continue
		}
		a, b := max(from, r.FirstSeq), min(to, r.LastSeq)
		got = append(got, seqRange{a, b})
		if r.linear() {
			out = append(out, offRange{r.FirstOff + (a - r.FirstSeq), r.FirstOff + (b - r.FirstSeq)})
		} else {
			out = append(out, offRange{r.FirstOff, r.FirstOff})
		}
	}
	// Complete when the seq ranges found cover from..to without a gap.
	slices.SortFunc(got, func(p, q seqRange) int { return cmp.Compare(p.a, q.a) })
	next, complete := from, true
	for _, g := range got {
		if g.a > next {
			complete = false
			break
		}
		if g.b >= next {
			next = g.b + 1
		}
	}
	if next <= to {
		complete = false
	}
	return mergeOffRanges(out), complete
}

func mergeOffRanges(rs []offRange) []offRange {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(p, q offRange) int { return cmp.Compare(p.First, q.First) })
	out := rs[:1]
	for _, r := range rs[1:] {
		t := &out[len(out)-1]
		if r.First <= t.Last+1 {
			t.Last = max(t.Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// truncate forgets every record below offset (TruncateFront removed them).
func (x *dotIndex) truncate(below uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for rep, list := range x.runs {
		kept := list[:0]
		for _, r := range list {
			switch {
			case r.LastOff < below:
				continue
			case r.FirstOff < below: // only linear runs span several records
				shift := below - r.FirstOff
				r.FirstOff, r.FirstSeq = below, r.FirstSeq+shift
			}
			kept = append(kept, r)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(x.runs, rep)
		} else {
			x.runs[rep] = kept
		}
	}
}

// export returns a copy, for a snapshot.
func (x *dotIndex) export() map[crdt.ReplicaID][]indexRun {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[crdt.ReplicaID][]indexRun, len(x.runs))
	for r, list := range x.runs {
		out[r] = slices.Clone(list)
	}
	return out
}

// load replaces the index with m (from a snapshot), dropping malformed runs.
func (x *dotIndex) load(m map[crdt.ReplicaID][]indexRun) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.runs = make(map[crdt.ReplicaID][]indexRun, len(m))
	for r, list := range maps.All(m) {
		kept := make([]indexRun, 0, len(list))
		for _, run := range list {
			if run.FirstSeq == 0 || run.LastSeq < run.FirstSeq || run.LastOff < run.FirstOff ||
				(run.LastOff != run.FirstOff && !run.linear()) {
				continue
			}
			kept = append(kept, run)
		}
		slices.SortFunc(kept, func(p, q indexRun) int {
			switch {
			case p.FirstSeq < q.FirstSeq:
				return -1
			case p.FirstSeq > q.FirstSeq:
				return 1
			}
			return 0
		})
		if len(kept) > 0 {
			x.runs[r] = kept
		}
	}
}
