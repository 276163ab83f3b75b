package crdt

import (
	"bytes"
	"slices"
)

// compareReg orders register siblings by (time, replica ID, seq): the
// greatest is the visible value. Value bytes are never compared.
func compareReg(a, b *RegValue) int {
	switch {
	case a.Time < b.Time:
		return -1
	case a.Time > b.Time:
		return 1
	}
	return compareDots(a.Dot, b.Dot)
}

// winner returns the visible register sibling.
func winner(regs []RegValue) *RegValue {
	var w *RegValue
	for i := range regs {
		if w == nil || compareReg(&regs[i], w) > 0 {
			w = &regs[i]
		}
	}
	return w
}

// visibleType returns the type of highest precedence among the stores of a
// normalized entry that hold values, or 0 when it holds none. Several hold
// values only during a type conflict; the fixed order shows the same type
// on every replica, and the first operation by a replica that has seen the
// conflict removes the others (Tx, settle), so none of them shows once the
// visible value is emptied.
func (e *Entry) visibleType() Type {
	switch {
	case len(e.Map) > 0:
		return TypeMap
	case len(e.Set) > 0:
		return TypeSet
	case len(e.Cnt) > 0:
		return TypeCounter
	case len(e.Reg) > 0:
		return TypeRegister
	case len(e.Flag) > 0:
		return TypeFlag
	}
	return 0
}

// counterValue sums the contributions; the sum wraps around on overflow
// (each replica's own contribution cannot overflow, see Tx.Incr).
func counterValue(cs []CountValue) int64 {
	var n int64
	for _, c := range cs {
		n += c.N
	}
	return n
}

// view returns a copy of the visible value of a normalized entry; with
// share, a register's bytes are the entry's own (see GetShared).
func (e *Entry) view(share bool) View {
	v := View{Type: e.visibleType()}
	switch v.Type {
	case TypeRegister:
		if v.Register = winner(e.Reg).Value; !share {
			v.Register = bytes.Clone(v.Register)
		}
		if v.Register == nil {
			v.Register = []byte{}
		}
	case TypeCounter:
		v.Counter = counterValue(e.Cnt)
	case TypeSet:
		v.Set = make([]string, 0, len(e.Set))
		for m := range e.Set {
			v.Set = append(v.Set, m)
		}
		slices.Sort(v.Set)
	case TypeMap:
		v.Map = make(map[string]View, len(e.Map))
		for f, c := range e.Map {
			v.Map[f] = c.view(share)
		}
	case TypeFlag:
		v.Flag = true
	}
	return v
}
