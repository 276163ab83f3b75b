package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/shoaldb/shoal/node"
)

// keyPath is the API path of a key; the key travels escaped as one path
// segment, so keys holding '/', '?', '%' or spaces arrive intact.
func keyPath(key string, action ...string) string {
	p := "/v1/kv/" + url.PathEscape(key)
	for _, a := range action {
		p += "/" + a
	}
	return p
}

// checkKey refuses, without asking the server, the keys a node refuses,
// with the node's error.
func checkKey(op, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: %s: empty key", node.ErrInvalidKey, op)
	case len(key) > node.MaxKeyBytes:
		return fmt.Errorf("%w: %s: key of %d bytes (max %d)", node.ErrInvalidKey, op, len(key), node.MaxKeyBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: %s: key is not valid UTF-8", node.ErrInvalidKey, op)
	}
	return nil
}

// encodeOp validates and encodes one write exactly as the node does, by
// adding it to a node.Batch, and returns it with the error the node's
// method would return for an invalid one.
func encodeOp(add func(b *node.Batch)) (node.BatchOp, error) {
	var b node.Batch
	add(&b)
	if err := b.Err(); err != nil {
		// The batch wraps the operation's own error with its position.
		if inner := errors.Unwrap(err); inner != nil {
			return node.BatchOp{}, inner
		}
		return node.BatchOp{}, err
	}
	return b.Ops()[0], nil
}

// valueAnswer is the answer of the key endpoints.
type valueAnswer struct {
	Key      string          `json:"key"`
	Type     node.Type       `json:"type"`
	Value    json.RawMessage `json:"value"`
	Sets     [][]string      `json:"sets"`
	Expires  string          `json:"expires"`
	Siblings []struct {
		Value  json.RawMessage `json:"value"`
		Origin string          `json:"origin"`
		Time   string          `json:"time"`
	} `json:"siblings"`
}

// Get returns the visible value of key, or an error wrapping
// node.ErrNotFound. Value.Data holds the Go types an embedded node's Get
// returns.
func (c *Client) Get(key string) (node.Value, error) {
	if err := checkKey("get", key); err != nil {
		return node.Value{}, err
	}
	var a valueAnswer
	if err := c.Do(http.MethodGet, keyPath(key), nil, nil, &a); err != nil {
		return node.Value{}, err
	}
	data, err := decodeData(a.Type, a.Value, a.Sets)
	if err != nil {
		return node.Value{}, fmt.Errorf("client: get %q: %w", key, err)
	}
	expires, err := parseExpires(a.Expires)
	if err != nil {
		return node.Value{}, fmt.Errorf("client: get %q: %w", key, err)
	}
	return node.Value{Key: key, Type: a.Type, Data: data, Expires: expires}, nil
}

// parseExpires reads the "expires" of an answer (RFC 3339, UTC) into
// Value.Expires; "" is none.
func parseExpires(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// ttlQuery is the query of a write with options.
func ttlQuery(o node.WriteOptions) url.Values {
	if o.TTL == 0 {
		return nil
	}
	return url.Values{"ttl": {o.TTL.String()}}
}

// Put writes value to the register at key (see node.Node.Put for the
// values it takes). A value the node would refuse is refused here, with
// the node's error, before anything is sent.
func (c *Client) Put(key string, value any) error {
	op, err := encodeOp(func(b *node.Batch) { b.Put(key, value) })
	if err != nil {
		return err
	}
	return c.Do(http.MethodPut, keyPath(key), nil, op.Value, nil)
}

// PutWith is Put with options (see node.Node.PutWith): with o.TTL the key
// expires o.TTL after the write.
func (c *Client) PutWith(key string, value any, o node.WriteOptions) error {
	op, err := encodeOp(func(b *node.Batch) { b.PutWith(key, value, o) })
	if err != nil {
		return err
	}
	return c.Do(http.MethodPut, keyPath(key), ttlQuery(o), op.Value, nil)
}

// Expire makes key expire ttl from now on the server's node's clock (see
// node.Node.Expire). A TTL the node would refuse is refused here, with the
// node's error, before anything is sent.
func (c *Client) Expire(key string, ttl time.Duration) error {
	if _, err := encodeOp(func(b *node.Batch) { b.Expire(key, ttl) }); err != nil {
		return err
	}
	return c.Do(http.MethodPost, keyPath(key, "expire"), nil, map[string]string{"ttl": ttl.String()}, nil)
}

// Persist removes key's expiry (see node.Node.Persist).
func (c *Client) Persist(key string) error {
	if err := checkKey("persist", key); err != nil {
		return err
	}
	return c.Do(http.MethodPost, keyPath(key, "expire"), nil, map[string]bool{"persist": true}, nil)
}

// Delete removes key (an observed remove on the server's node), or returns
// an error wrapping node.ErrNotFound.
func (c *Client) Delete(key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	return c.Do(http.MethodDelete, keyPath(key), nil, nil, nil)
}

// Incr adds by to the counter at key, creating it, and returns the
// counter's new value on the server's node.
func (c *Client) Incr(key string, by int64) (int64, error) {
	if err := checkKey("incr", key); err != nil {
		return 0, err
	}
	var a valueAnswer
	if err := c.Do(http.MethodPost, keyPath(key, "incr"), nil, map[string]int64{"by": by}, &a); err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(a.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("client: incr %q: the answer's value %q is not an integer", key, a.Value)
	}
	return v, nil
}

// SetAdd adds members to the set at key, creating it.
func (c *Client) SetAdd(key string, members ...string) error {
	return c.setOp("add", key, members)
}

// SetRemove removes the members of the set at key that the server's node
// has seen.
func (c *Client) SetRemove(key string, members ...string) error {
	return c.setOp("remove", key, members)
}

func (c *Client) setOp(action, key string, members []string) error {
	op, err := encodeOp(func(b *node.Batch) {
		if action == "add" {
			b.SetAdd(key, members...)
		} else {
			b.SetRemove(key, members...)
		}
	})
	if err != nil {
		return err
	}
	return c.Do(http.MethodPost, keyPath(key, action), nil, map[string][]string{"members": op.Members}, nil)
}

// Update patches the document (map) at key, creating it.
func (c *Client) Update(key string, p node.Patch) error {
	op, err := encodeOp(func(b *node.Batch) { b.Update(key, p) })
	if err != nil {
		return err
	}
	return c.Do(http.MethodPatch, keyPath(key), nil, patchJSON(op.Patch), nil)
}

// UpdateWith is Update with options (see node.Node.UpdateWith).
func (c *Client) UpdateWith(key string, p node.Patch, o node.WriteOptions) error {
	op, err := encodeOp(func(b *node.Batch) { b.UpdateWith(key, p, o) })
	if err != nil {
		return err
	}
	return c.Do(http.MethodPatch, keyPath(key), ttlQuery(o), patchJSON(op.Patch), nil)
}

// patchBody is the JSON of a document update (PATCH /v1/kv/{key}).
type patchBody struct {
	Set     map[string]json.RawMessage `json:"set,omitempty"`
	Delete  []string                   `json:"delete,omitempty"`
	Incr    map[string]int64           `json:"incr,omitempty"`
	Add     map[string][]string        `json:"add,omitempty"`
	Remove  map[string][]string        `json:"remove,omitempty"`
	Enable  []string                   `json:"enable,omitempty"`
	Disable []string                   `json:"disable,omitempty"`
	Nested  map[string]*patchBody      `json:"nested,omitempty"`
}

// patchJSON converts a patch listed by node.Batch.Ops (its Set values are
// canonical JSON) into its JSON body.
func patchJSON(p *node.Patch) *patchBody {
	out := &patchBody{Delete: p.Delete, Incr: p.Incr, Add: p.Add, Remove: p.Remove, Enable: p.Enable, Disable: p.Disable}
	if len(p.Set) > 0 {
		out.Set = make(map[string]json.RawMessage, len(p.Set))
		for f, v := range p.Set {
			out.Set[f], _ = v.(json.RawMessage)
		}
	}
	if len(p.Nested) > 0 {
		out.Nested = make(map[string]*patchBody, len(p.Nested))
		for f, np := range p.Nested {
			out.Nested[f] = patchJSON(&np)
		}
	}
	return out
}

// batchOp is one operation of POST /v1/batch.
type batchOp struct {
	Op      string          `json:"op"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value,omitempty"`
	By      *int64          `json:"by,omitempty"`
	Members []string        `json:"members,omitempty"`
	Patch   *patchBody      `json:"patch,omitempty"`
	TTL     string          `json:"ttl,omitempty"`
}

// batchOpNames are the API's names of node.BatchOp kinds.
var batchOpNames = map[string]string{
	"put": "put", "delete": "delete", "incr": "incr", "set_add": "add", "set_remove": "remove", "update": "patch",
	"expire": "expire", "persist": "persist",
}

// Commit applies the batch atomically on the server's node (one WAL
// record: all or none). An empty batch is a no-op; an invalid one returns
// Batch.Err without sending anything.
func (c *Client) Commit(b *node.Batch) error {
	if err := b.Err(); err != nil {
		return err
	}
	ops := b.Ops()
	if len(ops) == 0 {
		return nil
	}
	body := struct {
		Ops []batchOp `json:"ops"`
	}{make([]batchOp, len(ops))}
	for i, op := range ops {
		name, ok := batchOpNames[op.Kind]
		if !ok {
			return fmt.Errorf("client: batch operation %d: unknown kind %q", i, op.Kind)
		}
		bo := batchOp{Op: name, Key: op.Key, Value: op.Value, Members: op.Members}
		if op.Kind == "incr" {
			by := op.By
			bo.By = &by
		}
		if op.Patch != nil {
			bo.Patch = patchJSON(op.Patch)
		}
		if op.TTL != 0 {
			bo.TTL = op.TTL.String()
		}
		body.Ops[i] = bo
	}
	return c.Do(http.MethodPost, "/v1/batch", nil, body, nil)
}

// Keys lists the keys starting with prefix, sorted, at most limit of them
// (limit <= 0: all).
func (c *Client) Keys(prefix string, limit int) ([]node.KeyInfo, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var a struct {
		Keys []node.KeyInfo `json:"keys"`
	}
	if err := c.Do(http.MethodGet, "/v1/kv", q, nil, &a); err != nil {
		return nil, err
	}
	return a.Keys, nil
}

// Siblings returns the concurrent values of the register at key, the
// winner (what Get returns) first; an error wrapping node.ErrWrongType if
// key is not a register. Sibling.Time is in the local time zone, as an
// embedded node's.
func (c *Client) Siblings(key string) ([]node.Sibling, error) { return c.FieldSiblings(key) }

// FieldSiblings is Siblings for the register at a field of the map at key
// (path: the field, then the fields of nested maps), as node.FieldSiblings.
func (c *Client) FieldSiblings(key string, path ...string) ([]node.Sibling, error) {
	if err := checkKey("siblings", key); err != nil {
		return nil, err
	}
	q := url.Values{"siblings": {"true"}}
	for _, f := range path {
		q.Add("field", f)
	}
	var a valueAnswer
	if err := c.Do(http.MethodGet, keyPath(key), q, nil, &a); err != nil {
		return nil, err
	}
	out := make([]node.Sibling, len(a.Siblings))
	for i, s := range a.Siblings {
		data, err := node.DecodeValue(s.Value)
		if err != nil {
			return nil, fmt.Errorf("client: siblings %q: %w", key, err)
		}
		t, err := time.Parse(time.RFC3339Nano, s.Time)
		if err != nil {
			return nil, fmt.Errorf("client: siblings %q: time %q: %w", key, s.Time, err)
		}
		out[i] = node.Sibling{Data: data, Origin: s.Origin, Time: t.Local()}
	}
	return out, nil
}

// decodeData turns the JSON of a value (as answers and events carry it)
// into the Go values of node.Value.Data for its type; sets lists the paths
// of a map's set fields.
func decodeData(typ node.Type, raw json.RawMessage, sets [][]string) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	v, err := node.DecodeValue(raw)
	if err != nil {
		return nil, err
	}
	return dataAs(typ, v, sets)
}

// dataAs turns a decoded JSON value into the Go values of node.Value.Data
// for its type (see decodeData).
func dataAs(typ node.Type, v any, sets [][]string) (any, error) {
	switch typ {
	case node.TypeCounter:
		if _, ok := v.(int64); !ok {
			return nil, fmt.Errorf("counter value %.40v is not an integer", v)
		}
	case node.TypeSet:
		return stringList(v)
	case node.TypeMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map value %.40v is not an object", v)
		}
		for _, path := range sets {
			if err := setField(m, path); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// setField converts the set field at path in m from []any to []string.
func setField(m map[string]any, path []string) error {
	if len(path) == 0 {
		return errors.New("empty set field path")
	}
	for _, f := range path[:len(path)-1] {
		sub, ok := m[f].(map[string]any)
		if !ok {
			return fmt.Errorf("set field %q: %q is not a map field", path, f)
		}
		m = sub
	}
	f := path[len(path)-1]
	list, err := stringList(m[f])
	if err != nil {
		return fmt.Errorf("set field %q: %w", path, err)
	}
	m[f] = list
	return nil
}

// stringList converts the decoded JSON of a set into a []string.
func stringList(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("set value %T is not an array", v)
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("set member %T is not a string", e)
		}
		out[i] = s
	}
	return out, nil
}
