package crdt

// sum128 is an element of the group of integers mod 2^128.
type sum128 struct{ lo, hi uint64 }
