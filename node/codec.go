package node

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/shoaldb/shoal/crdt"
)

// A hand-written msgpack codec for Op records. It writes exactly what the
// msgpack library writes for these types (maps keyed by the struct tags,
// empty fields omitted, compact integers), so either side may decode the
// other's output; it just avoids reflection, which was most of the cost of
// a commit and of a WAL replay. Map entries are written in sorted key
// order, so the encoding is deterministic. The decoder handles exactly the
// shapes the encoders produce; anything else (an unknown field from a newer
// version, an unusual but valid encoding) makes it report !ok, and
// DecodeOp falls back to the msgpack library.

// ---- encoder

type mpWriter struct{ b []byte }

func (w *mpWriter) code(c byte) { w.b = append(w.b, c) }

func (w *mpWriter) mapLen(n int) {
	switch {
	case n < 16:
		w.b = append(w.b, 0x80|byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, 0xde, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdf)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	}
}

func (w *mpWriter) arrLen(n int) {
	switch {
	case n < 16:
		w.b = append(w.b, 0x90|byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, 0xdc, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdd)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	}
}

func (w *mpWriter) str(s string) {
	n := len(s)
	switch {
	case n < 32:
		w.b = append(w.b, 0xa0|byte(n))
	case n < 256:
		w.b = append(w.b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, 0xda, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdb)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	}
	w.b = append(w.b, s...)
}

func (w *mpWriter) bin(p []byte) {
	if p == nil {
		w.code(0xc0)
		return
	}
	n := len(p)
	switch {
	case n < 256:
		w.b = append(w.b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, 0xc5, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xc6)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	}
	w.b = append(w.b, p...)
}

func (w *mpWriter) uint(n uint64) {
	switch {
	case n <= math.MaxInt8:
		w.b = append(w.b, byte(n))
	case n <= math.MaxUint8:
		w.b = append(w.b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, 0xcd, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		w.b = append(w.b, 0xce)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	default:
		w.b = append(w.b, 0xcf)
		w.b = binary.BigEndian.AppendUint64(w.b, n)
	}
}

func (w *mpWriter) int(n int64) {
	switch {
	case n >= 0:
		w.uint(uint64(n))
	case n >= -32:
		w.b = append(w.b, byte(n))
	case n >= math.MinInt8:
		w.b = append(w.b, 0xd0, byte(n))
	case n >= math.MinInt16:
		w.b = append(w.b, 0xd1, byte(uint16(n)>>8), byte(n))
	case n >= math.MinInt32:
		w.b = append(w.b, 0xd2)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	default:
		w.b = append(w.b, 0xd3)
		w.b = binary.BigEndian.AppendUint64(w.b, uint64(n))
	}
}

// sortedKeys returns m's keys in order (no allocation for one key).
func sortedKeys[V any](m map[string]V, buf []string) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) > 1 {
		slices.Sort(keys)
	}
	return keys
}

func (w *mpWriter) op(op *Op) {
	n := 4
	if op.Delta != nil {
		n++
	}
	if op.Lo != "" {
		n++
	}
	if op.Hi != "" {
		n++
	}
	if op.Ctx != nil {
		n++
	}
	if op.Applied != nil {
		n++
	}
	w.mapLen(n)
	w.str("v")
	w.uint(uint64(op.V))
	w.str("k")
	w.uint(uint64(op.Kind))
	w.str("o")
	w.uint(uint64(op.Origin))
	w.str("t")
	w.uint(uint64(op.Time))
	if op.Delta != nil {
		w.str("d")
		w.delta(op.Delta)
	}
	if op.Lo != "" {
		w.str("lo")
		w.str(op.Lo)
	}
	if op.Hi != "" {
		w.str("hi")
		w.str(op.Hi)
	}
	if op.Ctx != nil {
		w.str("x")
		w.context(op.Ctx)
	}
	if op.Applied != nil {
		w.str("a")
		w.context(op.Applied)
	}
}

func (w *mpWriter) delta(d *crdt.Delta) {
	n := 1
	if len(d.Keys) > 0 {
		n++
	}
	if len(d.Own) > 0 {
		n++
	}
	if d.Full {
		n++
	}
	w.mapLen(n)
	if len(d.Keys) > 0 {
		w.str("k")
		w.mapLen(len(d.Keys))
		var buf [1]string
		for _, k := range sortedKeys(d.Keys, buf[:]) {
			w.str(k)
			w.entryPtr(d.Keys[k])
		}
	}
	w.str("c")
	w.context(&d.Ctx)
	if len(d.Own) > 0 {
		w.str("o")
		w.arrLen(len(d.Own))
		for _, r := range d.Own {
			w.mapLen(3)
			w.str("r")
			w.uint(uint64(r.Replica))
			w.str("f")
			w.uint(r.First)
			w.str("l")
			w.uint(r.Last)
		}
	}
	if d.Full {
		w.str("f")
		w.code(0xc3)
	}
}

func (w *mpWriter) context(c *crdt.Context) {
	n := 0
	if len(c.VV) > 0 {
		n++
	}
	if len(c.Cloud) > 0 {
		n++
	}
	w.mapLen(n)
	if len(c.VV) > 0 {
		w.str("v")
		w.mapLen(len(c.VV))
		reps := make([]crdt.ReplicaID, 0, len(c.VV))
		for r := range c.VV {
			reps = append(reps, r)
		}
		slices.Sort(reps)
		for _, r := range reps {
			w.uint(uint64(r))
			w.uint(c.VV[r])
		}
	}
	if len(c.Cloud) > 0 {
		w.str("c")
		w.dots(c.Cloud)
	}
}

func (w *mpWriter) dot(d crdt.Dot) {
	w.mapLen(2)
	w.str("r")
	w.uint(uint64(d.Replica))
	w.str("s")
	w.uint(d.Seq)
}

func (w *mpWriter) dots(ds []crdt.Dot) {
	if ds == nil {
		w.code(0xc0)
		return
	}
	w.arrLen(len(ds))
	for _, d := range ds {
		w.dot(d)
	}
}

func (w *mpWriter) entryPtr(e *crdt.Entry) {
	if e == nil {
		w.code(0xc0)
		return
	}
	n := 0
	for _, set := range []bool{len(e.Reg) > 0, len(e.Cnt) > 0, len(e.Set) > 0, len(e.Map) > 0, len(e.Flag) > 0, len(e.Exp) > 0, e.All} {
		if set {
			n++
		}
	}
	w.mapLen(n)
	if len(e.Reg) > 0 {
		w.str("r")
		w.arrLen(len(e.Reg))
		for i := range e.Reg {
			v := &e.Reg[i]
			w.mapLen(3)
			w.str("d")
			w.dot(v.Dot)
			w.str("t")
			w.uint(uint64(v.Time))
			w.str("v")
			w.bin(v.Value)
		}
	}
	if len(e.Cnt) > 0 {
		w.str("n")
		w.arrLen(len(e.Cnt))
		for _, c := range e.Cnt {
			w.mapLen(2)
			w.str("d")
			w.dot(c.Dot)
			w.str("n")
			w.int(c.N)
		}
	}
	if len(e.Set) > 0 {
		w.str("s")
		w.mapLen(len(e.Set))
		var buf [4]string
		for _, m := range sortedKeys(e.Set, buf[:]) {
			w.str(m)
			w.dots(e.Set[m])
		}
	}
	if len(e.Map) > 0 {
		w.str("m")
		w.mapLen(len(e.Map))
		var buf [4]string
		for _, f := range sortedKeys(e.Map, buf[:]) {
			w.str(f)
			w.entryPtr(e.Map[f])
		}
	}
	if len(e.Flag) > 0 {
		w.str("f")
		w.dots(e.Flag)
	}
	if len(e.Exp) > 0 { // field order as the msgpack library writes crdt.Entry
		w.str("e")
		w.arrLen(len(e.Exp))
		for _, x := range e.Exp {
			w.mapLen(2)
			w.str("d")
			w.dot(x.Dot)
			w.str("t")
			w.uint(uint64(x.At))
		}
	}
	if e.All {
		w.str("a")
		w.code(0xc3)
	}
}

// ---- decoder

// mpReader decodes from a byte slice that checkMsgpack has accepted. Any
// surprise sets bad; the caller then falls back to the msgpack library.
type mpReader struct {
	b   []byte
	i   int
	bad bool
}

func (r *mpReader) peek() byte {
	if r.i >= len(r.b) {
		r.bad = true
		return 0xc1
	}
	return r.b[r.i]
}

func (r *mpReader) take(n int) []byte {
	if n < 0 || n > len(r.b)-r.i {
		r.bad = true
		r.i = len(r.b)
		return nil
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	return p
}

func (r *mpReader) be(n int) uint64 {
	p := r.take(n)
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v
}

// nil consumes a nil and reports whether there was one.
func (r *mpReader) nil() bool {
	if r.peek() == 0xc0 {
		r.i++
		return true
	}
	return false
}

func (r *mpReader) length(fix, fixMask byte, c16, c32 byte) int {
	c := r.peek()
	r.i++
	switch {
	case c&^fixMask == fix:
		return int(c & fixMask)
	case c == c16:
		return int(r.be(2))
	case c == c32:
		return int(r.be(4))
	}
	r.bad = true
	return 0
}

func (r *mpReader) mapLen() int { return r.length(0x80, 0x0f, 0xde, 0xdf) }
func (r *mpReader) arrLen() int { return r.length(0x90, 0x0f, 0xdc, 0xdd) }

func (r *mpReader) strBytes() []byte {
	c := r.peek()
	r.i++
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9:
		n = int(r.be(1))
	case c == 0xda:
		n = int(r.be(2))
	case c == 0xdb:
		n = int(r.be(4))
	default:
		r.bad = true
		return nil
	}
	return r.take(n)
}

func (r *mpReader) str() string { return string(r.strBytes()) }

func (r *mpReader) bin() []byte {
	c := r.peek()
	r.i++
	var n int
	switch c {
	case 0xc0:
		return nil
	case 0xc4:
		n = int(r.be(1))
	case 0xc5:
		n = int(r.be(2))
	case 0xc6:
		n = int(r.be(4))
	default:
		r.bad = true
		return nil
	}
	p := r.take(n)
	if p == nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

func (r *mpReader) uint() uint64 {
	c := r.peek()
	r.i++
	switch {
	case c <= 0x7f:
		return uint64(c)
	case c == 0xcc:
		return r.be(1)
	case c == 0xcd:
		return r.be(2)
	case c == 0xce:
		return r.be(4)
	case c == 0xcf:
		return r.be(8)
	}
	r.bad = true
	return 0
}

func (r *mpReader) int() int64 {
	c := r.peek()
	switch {
	case c <= 0x7f, c == 0xcc, c == 0xcd, c == 0xce:
		return int64(r.uint())
	case c == 0xcf:
		v := r.uint()
		if v > math.MaxInt64 {
			r.bad = true
		}
		return int64(v)
	case c >= 0xe0:
		r.i++
		return int64(int8(c))
	case c == 0xd0:
		r.i++
		return int64(int8(r.be(1)))
	case c == 0xd1:
		r.i++
		return int64(int16(r.be(2)))
	case c == 0xd2:
		r.i++
		return int64(int32(r.be(4)))
	case c == 0xd3:
		r.i++
		return int64(r.be(8))
	}
	r.bad = true
	return 0
}

func (r *mpReader) bool() bool {
	switch r.peek() {
	case 0xc2:
		r.i++
		return false
	case 0xc3:
		r.i++
		return true
	}
	r.bad = true
	return false
}

// fastDecodeOp decodes b (already accepted by checkMsgpack) without
// reflection; ok is false when b uses a shape it does not handle.
func fastDecodeOp(b []byte) (op *Op, ok bool) {
	r := &mpReader{b: b}
	blk := &opBlock{}
	op = &blk.op
	deltas := 0
	n := r.mapLen()
	for range n {
		if r.bad {
			return nil, false
		}
		switch string(r.strBytes()) {
		case "v":
			v := r.uint()
			if v > math.MaxUint8 {
				return nil, false
			}
			op.V = uint8(v)
		case "k":
			v := r.uint()
			if v > math.MaxUint8 {
				return nil, false
			}
			op.Kind = OpKind(v)
		case "o":
			op.Origin = crdt.ReplicaID(r.uint())
		case "t":
			op.Time = crdt.Timestamp(r.uint())
		case "d":
			if !r.nil() {
				if deltas++; deltas == 1 {
					op.Delta = r.deltaInto(&blk.delta)
				} else { // a repeated field: blk.delta is taken
					op.Delta = r.delta()
				}
			}
		case "lo":
			op.Lo = r.str()
		case "hi":
			op.Hi = r.str()
		case "x":
			if !r.nil() {
				op.Ctx = &crdt.Context{}
				r.context(op.Ctx)
			}
		case "a":
			if !r.nil() {
				op.Applied = &crdt.Context{}
				r.context(op.Applied)
			}
		default:
			return nil, false
		}
	}
	if r.bad || r.i != len(b) {
		return nil, false
	}
	return op, true
}

// deltaBlock and entryBlock allocate a delta with its usual single Own
// range, and an entry with its usual single register sibling, at once:
// one allocation each instead of two per decoded record.
type deltaBlock struct {
	d   crdt.Delta
	own [1]crdt.DotRange
}

type entryBlock struct {
	e   crdt.Entry
	reg [1]crdt.RegValue
}

// opBlock allocates an Op with its delta (the usual record) at once.
type opBlock struct {
	op    Op
	delta deltaBlock
}

func (r *mpReader) delta() *crdt.Delta { return r.deltaInto(&deltaBlock{}) }

// deltaInto decodes a delta into blk, which must be zero.
func (r *mpReader) deltaInto(blk *deltaBlock) *crdt.Delta {
	d := &blk.d
	n := r.mapLen()
	for range n {
		if r.bad {
			return nil
		}
		switch string(r.strBytes()) {
		case "k":
			if r.nil() {
				d.Keys = nil
				continue
			}
			m := r.mapLen()
			d.Keys = make(map[string]*crdt.Entry, min(m, 64))
			for range m {
				if r.bad {
					return nil
				}
				k := r.str()
				d.Keys[k] = r.entryPtr(0)
			}
		case "c":
			r.context(&d.Ctx)
		case "o":
			if r.nil() {
				continue
			}
			m := r.arrLen()
			if m == 1 {
				d.Own = blk.own[:0:1]
			} else {
				d.Own = make([]crdt.DotRange, 0, min(m, 64))
			}
			for range m {
				if r.bad {
					return nil
				}
				var dr crdt.DotRange
				for range r.mapLen() {
					switch string(r.strBytes()) {
					case "r":
						dr.Replica = crdt.ReplicaID(r.uint())
					case "f":
						dr.First = r.uint()
					case "l":
						dr.Last = r.uint()
					default:
						r.bad = true
					}
					if r.bad {
						return nil
					}
				}
				d.Own = append(d.Own, dr)
			}
		case "f":
			d.Full = r.bool()
		default:
			r.bad = true
		}
	}
	return d
}

func (r *mpReader) context(c *crdt.Context) {
	n := r.mapLen()
	for range n {
		if r.bad {
			return
		}
		switch string(r.strBytes()) {
		case "v":
			if r.nil() {
				continue
			}
			m := r.mapLen()
			c.VV = make(crdt.VersionVector, min(m, 64))
			for range m {
				if r.bad {
					return
				}
				rep := crdt.ReplicaID(r.uint())
				c.VV[rep] = r.uint()
			}
		case "c":
			c.Cloud = r.dots()
		default:
			r.bad = true
		}
	}
}

func (r *mpReader) dot() crdt.Dot {
	var d crdt.Dot
	n := r.mapLen()
	for range n {
		switch string(r.strBytes()) {
		case "r":
			d.Replica = crdt.ReplicaID(r.uint())
		case "s":
			d.Seq = r.uint()
		default:
			r.bad = true
		}
		if r.bad {
			break
		}
	}
	return d
}

// dots decodes a []Dot as the library does: nil for nil, non-nil otherwise.
func (r *mpReader) dots() []crdt.Dot {
	if r.nil() {
		return nil
	}
	n := r.arrLen()
	ds := make([]crdt.Dot, 0, min(n, 64))
	for range n {
		if r.bad {
			return nil
		}
		ds = append(ds, r.dot())
	}
	return ds
}

func (r *mpReader) entryPtr(depth int) *crdt.Entry {
	if r.nil() {
		return nil
	}
	if depth > maxOpDepth {
		r.bad = true
		return nil
	}
	blk := &entryBlock{}
	e := &blk.e
	n := r.mapLen()
	for range n {
		if r.bad {
			return nil
		}
		switch string(r.strBytes()) {
		case "r":
			if r.nil() {
				continue
			}
			m := r.arrLen()
			if m == 1 {
				e.Reg = blk.reg[:0:1]
			} else {
				e.Reg = make([]crdt.RegValue, 0, min(m, 64))
			}
			for range m {
				var v crdt.RegValue
				for range r.mapLen() {
					switch string(r.strBytes()) {
					case "d":
						v.Dot = r.dot()
					case "t":
						v.Time = crdt.Timestamp(r.uint())
					case "v":
						v.Value = r.bin()
					default:
						r.bad = true
					}
					if r.bad {
						return nil
					}
				}
				e.Reg = append(e.Reg, v)
			}
		case "n":
			if r.nil() {
				continue
			}
			m := r.arrLen()
			e.Cnt = make([]crdt.CountValue, 0, min(m, 64))
			for range m {
				var v crdt.CountValue
				for range r.mapLen() {
					switch string(r.strBytes()) {
					case "d":
						v.Dot = r.dot()
					case "n":
						v.N = r.int()
					default:
						r.bad = true
					}
					if r.bad {
						return nil
					}
				}
				e.Cnt = append(e.Cnt, v)
			}
		case "s":
			if r.nil() {
				continue
			}
			m := r.mapLen()
			e.Set = make(map[string][]crdt.Dot, min(m, 64))
			for range m {
				if r.bad {
					return nil
				}
				k := r.str()
				e.Set[k] = r.dots()
			}
		case "m":
			if r.nil() {
				continue
			}
			m := r.mapLen()
			e.Map = make(map[string]*crdt.Entry, min(m, 64))
			for range m {
				if r.bad {
					return nil
				}
				k := r.str()
				e.Map[k] = r.entryPtr(depth + 1)
			}
		case "f":
			e.Flag = r.dots()
		case "e": // absent from records written before expiries existed
			if r.nil() {
				continue
			}
			m := r.arrLen()
			e.Exp = make([]crdt.ExpValue, 0, min(m, 64))
			for range m {
				var x crdt.ExpValue
				for range r.mapLen() {
					switch string(r.strBytes()) {
					case "d":
						x.Dot = r.dot()
					case "t":
						x.At = crdt.Timestamp(r.uint())
					default:
						r.bad = true
					}
					if r.bad {
						return nil
					}
				}
				e.Exp = append(e.Exp, x)
			}
		case "a":
			e.All = r.bool()
		default:
			r.bad = true
		}
	}
	return e
}

// fastDecodeSnapshot decodes a snapshot body (as the msgpack library
// writes it) without reflection; ok is false for any other shape.
func fastDecodeSnapshot(b []byte) (body *snapshotBody, ok bool) {
	r := &mpReader{b: b}
	body = &snapshotBody{}
	for range r.mapLen() {
		if r.bad {
			return nil, false
		}
		switch string(r.strBytes()) {
		case "o":
			body.Offset = r.uint()
		case "r":
			body.Replica = crdt.ReplicaID(r.uint())
		case "s":
			body.LastSeq = r.uint()
		case "t":
			body.Clock = crdt.Timestamp(r.uint())
		case "d":
			if !r.nil() {
				body.State = r.delta()
			}
		case "i":
			if r.nil() {
				continue
			}
			m := r.mapLen()
			body.Index = make(map[crdt.ReplicaID][]indexRun, min(m, 64))
			for range m {
				if r.bad {
					return nil, false
				}
				rep := crdt.ReplicaID(r.uint())
				if r.nil() {
					body.Index[rep] = nil
					continue
				}
				k := r.arrLen()
				runs := make([]indexRun, 0, min(k, 1024))
				for range k {
					var run indexRun
					for range r.mapLen() {
						switch string(r.strBytes()) {
						case "s":
							run.FirstSeq = r.uint()
						case "l":
							run.LastSeq = r.uint()
						case "o":
							run.FirstOff = r.uint()
						case "p":
							run.LastOff = r.uint()
						default:
							r.bad = true
						}
						if r.bad {
							return nil, false
						}
					}
					runs = append(runs, run)
				}
				body.Index[rep] = runs
			}
		default:
			return nil, false
		}
	}
	if r.bad || r.i != len(b) {
		return nil, false
	}
	return body, true
}
