package crdt

import (
	"fmt"
	"slices"
	"strconv"
)

// ReplicaID identifies a replica (one incarnation of a node). It is chosen at
// random by the node; crdt only compares it.
type ReplicaID uint64

// String returns the ID as 16 lowercase hex digits.
func (r ReplicaID) String() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[r&0xf]
		r >>= 4
	}
	return string(b[:])
}

// ParseReplicaID parses the form String returns (1 to 16 hex digits).
func ParseReplicaID(s string) (ReplicaID, error) {
	if len(s) == 0 || len(s) > 16 {
		return 0, fmt.Errorf("%w: replica id %q", ErrInvalid, s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: replica id %q", ErrInvalid, s)
	}
	return ReplicaID(v), nil
}

// Dot names one event: the Seq-th event issued by Replica. Dots are unique:
// a replica never issues the same seq twice, so a dot identifies one value in
// one place of the state forever.
type Dot struct {
	Replica ReplicaID `msgpack:"r"`
	Seq     uint64    `msgpack:"s"` // 1-based; 0 is never a valid seq
}

func (d Dot) String() string { return d.Replica.String() + ":" + strconv.FormatUint(d.Seq, 10) }

// compareDots orders dots by replica, then seq.
func compareDots(a, b Dot) int {
	switch {
	case a.Replica < b.Replica:
		return -1
	case a.Replica > b.Replica:
		return 1
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// sortDots sorts and removes duplicates in place.
func sortDots(ds []Dot) []Dot {
	if len(ds) < 2 {
		return ds
	}
	slices.SortFunc(ds, compareDots)
	return slices.Compact(ds)
}

// DotRange is the inclusive range of seqs First..Last of one replica.
type DotRange struct {
	Replica ReplicaID `msgpack:"r"`
	First   uint64    `msgpack:"f"`
	Last    uint64    `msgpack:"l"`
}

// VersionVector maps each replica to the highest seq such that every dot
// 1..seq of that replica has been seen. A nil VersionVector is empty.
// Merge takes the pointwise maximum (a join: commutative, associative,
// idempotent).
type VersionVector map[ReplicaID]uint64

// Get returns the seq of replica r (0 when absent).
func (v VersionVector) Get(r ReplicaID) uint64 { return v[r] }

// Clone returns a copy (nil for an empty vector).
func (v VersionVector) Clone() VersionVector {
	if len(v) == 0 {
		return nil
	}
	c := make(VersionVector, len(v))
	for r, s := range v {
		c[r] = s
	}
	return c
}

// Merge raises every entry of v to at least o's. v must be non-nil when o
// has entries that v lacks.
func (v VersionVector) Merge(o VersionVector) {
	for r, s := range o {
		if s > v[r] {
			v[r] = s
		}
	}
}

// Contains reports whether d is covered by v.
func (v VersionVector) Contains(d Dot) bool { return d.Seq != 0 && d.Seq <= v[d.Replica] }

// Equal reports whether both vectors have the same non-zero entries.
func (v VersionVector) Equal(o VersionVector) bool {
	n := 0
	for r, s := range v {
		if s == 0 {
			continue
		}
		if o[r] != s {
			return false
		}
		n++
	}
	m := 0
	for _, s := range o {
		if s != 0 {
			m++
		}
	}
	return n == m
}

// Sorted returns the non-zero entries as dots (replica, seq) ordered by
// replica.
func (v VersionVector) Sorted() []Dot {
	out := make([]Dot, 0, len(v))
	for r, s := range v {
		if s != 0 {
			out = append(out, Dot{r, s})
		}
	}
	slices.SortFunc(out, compareDots)
	return out
}
