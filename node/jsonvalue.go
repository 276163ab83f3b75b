package node

import (
	"encoding/json"
	"fmt"

	"github.com/shoaldb/shoal/crdt"
)

// EncodeValue returns the canonical JSON of a value as Put stores it (see
// Value.Data and Put for the Go types accepted): what an API that speaks
// JSON answers, with no HTML escaping and no number rounded.
func EncodeValue(v any) ([]byte, error) {
	b, err := encodeValue(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidValue, err)
	}
	return b, nil
}

// PutJSON is Put of a JSON text, returning the canonical JSON stored (what
// Get reads back): an API can answer the stored value, not its input.
func (n *Node) PutJSON(key string, raw []byte) ([]byte, error) {
	r, err := newPut(key, json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	stored := r.value
	if _, err := n.exec(r, nil); err != nil { // r is recycled; stored is not
		return nil, err
	}
	return stored, nil
}

// GetJSON returns the type of key and its value as canonical JSON: a
// register's stored bytes as they are, a counter, set or map encoded the
// same way as a register (a set as a sorted array). The bytes are the
// caller's. ErrNotFound if the key does not exist.
func (n *Node) GetJSON(key string) (Type, []byte, error) {
	if n.closed.Load() {
		return "", nil, ErrClosed
	}
	if !validKey(key) {
		return "", nil, keyError("get", key)
	}
	sh := n.mu.rlock()
	v, ok := n.ks.Get(key, n.readTime())
	n.mu.runlock(sh)
	if !ok {
		return "", nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	typ := typeOf(v.Type)
	if v.Type == crdt.TypeRegister {
		return typ, v.Register, nil // Get's own copy
	}
	data, err := convertView(&v)
	if err != nil {
		return "", nil, fmt.Errorf("node: get %q: %w", key, err)
	}
	b, err := encodeValue(data)
	if err != nil {
		return "", nil, fmt.Errorf("node: get %q: %w", key, err)
	}
	return typ, b, nil
}
