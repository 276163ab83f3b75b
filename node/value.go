package node

import (
	"fmt"
	"time"

	"github.com/shoaldb/shoal/crdt"
)

// Type names the CRDT a key holds.
type Type string

// Types. TypeFlag appears only as a document field.
const (
	TypeRegister Type = "register" // a JSON value, last writer wins
	TypeCounter  Type = "counter"  // an int64 PN-counter
	TypeSet      Type = "set"      // an add-wins set of strings
	TypeMap      Type = "map"      // a document of typed fields
	TypeFlag     Type = "flag"     // an enable-wins boolean (document fields only)
)

func typeOf(t crdt.Type) Type {
	switch t {
	case crdt.TypeRegister:
		return TypeRegister
	case crdt.TypeCounter:
		return TypeCounter
	case crdt.TypeSet:
		return TypeSet
	case crdt.TypeMap:
		return TypeMap
	case crdt.TypeFlag:
		return TypeFlag
	}
	return Type(t.String())
}

// Value is the visible value of a key.
type Value struct {
	Key  string
	Type Type
	// Data is, by Type: register: the JSON value as nil, bool, int64
	// (integral numbers within its range), float64, json.Number (integers
	// beyond int64 that no float64 holds exactly, every digit kept),
	// string, []any or map[string]any; counter:
	// int64; set: sorted []string; map:
	// map[string]any with fields converted the same way (flags as bool).
	Data any
	// Expires is when the key expires (UTC, millisecond precision); the
	// zero time when it does not (see Node.Expire).
	Expires time.Time
}

// KeyInfo names a key and its type.
type KeyInfo struct {
	Key  string
	Type Type
}

// Sibling is one of the concurrent values of a register. A plain Get
// returns the winner (the first sibling); the others are writes no replica
// had seen when the winner was written: visible here rather than silently
// lost.
type Sibling struct {
	Data   any       // the JSON value, decoded as in Value.Data
	Origin string    // replica that wrote it
	Time   time.Time // its hybrid logical clock time (millisecond precision)
}

// Patch updates the fields of a document (a key of type map). It applies
// in this order: Delete, Set, Incr, Add/Remove, Enable/Disable, Nested.
// Fields that do not exist are created with the type the operation implies.
type Patch struct {
	Set     map[string]any      // register fields, values as for Put
	Delete  []string            // fields to remove (observed remove)
	Incr    map[string]int64    // counter fields
	Add     map[string][]string // set fields: members to add
	Remove  map[string][]string // set fields: members to remove
	Enable  []string            // flag fields to enable
	Disable []string            // flag fields to disable
	Nested  map[string]Patch    // map fields, patched recursively
}

// sharedViewData is convertView for a view of the state's own bytes
// (Keyspace.GetShared): a register's strings alias them, since the state
// never changes the bytes of a value it holds.
func sharedViewData(v *crdt.View) (any, error) {
	if v.Type == crdt.TypeRegister {
		return decodeOwnedValue(v.Register)
	}
	return convertView(v)
}

// convertView turns a crdt view into the Go values of Value.Data.
func convertView(v *crdt.View) (any, error) {
	switch v.Type {
	case crdt.TypeRegister:
		return decodeValue(v.Register)
	case crdt.TypeCounter:
		return v.Counter, nil
	case crdt.TypeSet:
		if v.Set == nil {
			return []string{}, nil
		}
		return v.Set, nil
	case crdt.TypeFlag:
		return v.Flag, nil
	case crdt.TypeMap:
		m := make(map[string]any, len(v.Map))
		for f, fv := range v.Map {
			d, err := convertView(&fv)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f, err)
			}
			m[f] = d
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: unknown type %d", ErrCorrupt, v.Type)
}
