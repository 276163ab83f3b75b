package crdt

import "fmt"

// Type is the type of the CRDT a key or a map field holds. The values are
// persisted and sent on the wire: they never change.
type Type uint8

// Types. TypeFlag exists only as a map field.
const (
	TypeRegister Type = 1
	TypeCounter  Type = 2
	TypeSet      Type = 3
	TypeMap      Type = 4
	TypeFlag     Type = 5
)

// String returns "register", "counter", "set", "map" or "flag".
func (t Type) String() string {
	switch t {
	case TypeRegister:
		return "register"
	case TypeCounter:
		return "counter"
	case TypeSet:
		return "set"
	case TypeMap:
		return "map"
	case TypeFlag:
		return "flag"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType is the inverse of Type.String.
func ParseType(s string) (Type, error) {
	switch s {
	case "register":
		return TypeRegister, nil
	case "counter":
		return TypeCounter, nil
	case "set":
		return TypeSet, nil
	case "map":
		return TypeMap, nil
	case "flag":
		return TypeFlag, nil
	}
	return 0, fmt.Errorf("%w: unknown type %q", ErrInvalid, s)
}
