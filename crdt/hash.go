package crdt

import (
	"encoding/binary"
	"math/bits"
)

// The digest is a homomorphic multiset hash: every item of the state (a
// register sibling, a counter contribution, a set member with its dots, a
// flag dot, a map field, a key) hashes to 128 bits, and an entry's hash is
// the sum mod 2^128 of its items' hashes. A change to one item updates the
// sums along its path by subtracting the old hash and adding the new one, so
// applying a delta updates the digest in O(size of the delta). A map field
// and a key hash their name together with the sum of their child, so the
// position of every item is part of the hash.
//
// The item hash is a wyhash-style multiply-mix with two independent 64-bit
// lanes: fast (a register write hashes a few dozen bytes) and deterministic
// on every platform. It guards against accidental divergence, not against an
// adversary who chooses keys to collide.

// sum128 is an element of the group of integers mod 2^128.
type sum128 struct{ lo, hi uint64 }

func (s sum128) add(o sum128) sum128 {
	lo, c := bits.Add64(s.lo, o.lo, 0)
	hi, _ := bits.Add64(s.hi, o.hi, c)
	return sum128{lo, hi}
}

func (s sum128) sub(o sum128) sum128 {
	lo, b := bits.Sub64(s.lo, o.lo, 0)
	hi, _ := bits.Sub64(s.hi, o.hi, b)
	return sum128{lo, hi}
}

const (
	p0 = 0xa0761d6478bd642f
	p1 = 0xe7037ed1a0b428db
	p2 = 0x8ebc6af09c88c6e3
	p3 = 0x589965cc75374cc3
	p4 = 0x1d8e4e27c47d124f
	p5 = 0x9e3779b97f4a7c15
)

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hasher hashes a sequence of words and strings.
type hasher struct{ a, b uint64 }

// Item tags: every kind of item hashes with its own tag, so items of
// different kinds never collide by construction.
const (
	tagReg   = 'r'
	tagCnt   = 'n'
	tagSet   = 's'
	tagFlag  = 'f'
	tagField = 'm'
	tagKey   = 'k'
	tagExp   = 'e'
)

func newHasher(tag byte) hasher {
	return hasher{a: p0 ^ uint64(tag), b: p3 ^ uint64(tag)<<8}
}

func (h *hasher) u64(v uint64) {
	h.a = mum(h.a^p1, v^p2)
	h.b = mum(h.b^p4, v^p5)
}

func (h *hasher) dot(d Dot) {
	h.u64(uint64(d.Replica))
	h.u64(d.Seq)
}

func (h *hasher) str(s string) {
	h.u64(uint64(len(s)))
	for len(s) >= 8 {
		h.u64(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
		s = s[8:]
	}
	if len(s) > 0 {
		var w uint64
		for i := 0; i < len(s); i++ {
			w |= uint64(s[i]) << (8 * i)
		}
		h.u64(w)
	}
}

func (h *hasher) bytes(b []byte) {
	h.u64(uint64(len(b)))
	for len(b) >= 8 {
		h.u64(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) > 0 {
		var w uint64
		for i := 0; i < len(b); i++ {
			w |= uint64(b[i]) << (8 * i)
		}
		h.u64(w)
	}
}

func (h *hasher) sum() sum128 {
	a, b := h.a, h.b
	return sum128{lo: mum(a^p2, b^p1), hi: mum(b^p5, a^p0^p4)}
}

func hashReg(v *RegValue) sum128 {
	h := newHasher(tagReg)
	h.dot(v.Dot)
	h.u64(uint64(v.Time))
	h.bytes(v.Value)
	return h.sum()
}

func hashCnt(v *CountValue) sum128 {
	h := newHasher(tagCnt)
	h.dot(v.Dot)
	h.u64(uint64(v.N))
	return h.sum()
}

func hashFlag(d *Dot) sum128 {
	h := newHasher(tagFlag)
	h.dot(*d)
	return h.sum()
}

func hashExp(v *ExpValue) sum128 {
	h := newHasher(tagExp)
	h.dot(v.Dot)
	h.u64(uint64(v.At))
	return h.sum()
}

// hashMember hashes a set member with its (sorted) dots.
func hashMember(m string, ds []Dot) sum128 {
	h := newHasher(tagSet)
	h.str(m)
	h.u64(uint64(len(ds)))
	for _, d := range ds {
		h.dot(d)
	}
	return h.sum()
}

// hashChild hashes a map field or a key (tag) by name and child sum.
func hashChild(tag byte, name string, child sum128) sum128 {
	h := newHasher(tag)
	h.str(name)
	h.u64(child.lo)
	h.u64(child.hi)
	return h.sum()
}

func sumItems[T any](xs []T, f func(*T) sum128) sum128 {
	var s sum128
	for i := range xs {
		s = s.add(f(&xs[i]))
	}
	return s
}
