package node

import (
	"encoding/json"
	"fmt"
	"time"

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
	return n.PutJSONWith(key, raw, WriteOptions{})
}

// PutJSONWith is PutJSON with options (see PutWith).
func (n *Node) PutJSONWith(key string, raw []byte, o WriteOptions) ([]byte, error) {
	return n.PutJSONAppend(nil, key, raw, o)
}

// PutJSONAppend is PutJSONWith appending the canonical JSON stored to dst
// instead of returning it in a buffer of its own: for a caller that
// answers it (the HTTP API's PUT). On an error it returns dst as given.
func (n *Node) PutJSONAppend(dst []byte, key string, raw []byte, o WriteOptions) ([]byte, error) {
	r, err := withTTL(newPut(key, json.RawMessage(raw)))(o)
	if err != nil {
		return dst, err
	}
	stored := r.value
	// r is recycled; stored is not, but the state keeps it (Tx.PutOwned):
	// the caller gets a copy.
	if _, err := n.exec(r, nil); err != nil {
		return dst, err
	}
	return append(dst, stored...), nil
}

// GetJSON returns the type of key and its value as canonical JSON: a
// register's stored bytes as they are, a counter, set or map encoded the
// same way as a register (a set as a sorted array). The bytes are the
// caller's. ErrNotFound if the key does not exist.
func (n *Node) GetJSON(key string) (Type, []byte, error) {
	v, err := n.GetRaw(key)
	return v.Type, v.JSON, err
}

// AppendJSON is GetJSON appending the value to dst (which may be nil)
// instead of allocating it, for a caller that reads into one buffer again
// and again (the RESP endpoint's GET). On an error it returns dst as given.
func (n *Node) AppendJSON(dst []byte, key string) (Type, []byte, error) {
	v, err := n.appendRaw(dst, key)
	if err != nil {
		return "", dst, err
	}
	return v.Type, v.JSON, nil
}

// RawValue is a key's value as canonical JSON (see GetRaw).
type RawValue struct {
	Type    Type
	JSON    []byte    // the value as GetJSON returns it; the caller's
	Expires time.Time // as in Value.Expires
}

// GetRaw is GetJSON that also returns the key's expiry, from the same
// read.
func (n *Node) GetRaw(key string) (RawValue, error) { return n.appendRaw(nil, key) }

// appendRaw is GetRaw with the JSON appended to dst.
func (n *Node) appendRaw(dst []byte, key string) (RawValue, error) {
	if n.closed.Load() {
		return RawValue{}, ErrClosed
	}
	if !validKey(key) {
		return RawValue{}, keyError("get", key)
	}
	sh := n.mu.rlock()
	v, ok := n.ks.GetShared(key, 0)
	n.mu.runlock(sh)
	if !ok || !n.unexpired(v.Expires) {
		return RawValue{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	out := RawValue{Type: typeOf(v.Type), Expires: expiresTime(v.Expires)}
	if v.Type == crdt.TypeRegister {
		// The state never writes into bytes it holds: copying them after
		// the lock is released is safe.
		out.JSON = append(dst, v.Register...)
		return out, nil
	}
	data, err := convertView(&v)
	var b []byte
	if err == nil {
		b, err = encodeValue(data)
	}
	if err != nil {
		return RawValue{}, fmt.Errorf("node: get %q: %w", key, err)
	}
	if dst == nil {
		out.JSON = b
	} else {
		out.JSON = append(dst, b...)
	}
	return out, nil
}
