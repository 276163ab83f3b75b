package crdt

import "errors"

// Sentinel errors. Functions wrap them with the operation and the key, so
// test with errors.Is.
var (
	// ErrWrongType: an operation of one type on a key (or map field) whose
	// visible value has another type.
	ErrWrongType = errors.New("crdt: wrong type")
	// ErrNotFound: the key (or register) does not exist or is deleted.
	ErrNotFound = errors.New("crdt: not found")
	// ErrOverflow: a counter increment would overflow this replica's int64
	// contribution.
	ErrOverflow = errors.New("crdt: counter overflow")
	// ErrInvalid: malformed input (a delta or snapshot that breaks the
	// invariants, an empty patch, an unknown type name, ...).
	ErrInvalid = errors.New("crdt: invalid")
)
