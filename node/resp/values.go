package resp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/shoaldb/shoal/node"
)

// bytesField is the one field of the object that holds a Redis string
// that is not UTF-8 (a JSON string cannot): {"$bytes": "<base64>"}.
const bytesField = "$bytes"

// storedString is what a Redis string is stored as in a register or a
// map field: a JSON string when it is UTF-8 (so the HTTP API shows it as
// it is), the {"$bytes": base64} object otherwise. GET returns the same
// bytes either way.
func storedString(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string]any{bytesField: base64.StdEncoding.EncodeToString(b)}
}

// registerBytes turns a register's canonical JSON into the Redis string
// GET answers: a JSON string's contents, the bytes of a {"$bytes"}
// object, or else the JSON text itself (a number or document written over
// HTTP reads as its JSON).
func registerBytes(raw []byte) []byte {
	if len(raw) >= 2 && raw[0] == '"' {
		if bytes.IndexByte(raw, '\\') < 0 {
			return raw[1 : len(raw)-1]
		}
		// Escapes: one allocation, of the final size at most.
		if str, err := node.AppendUnquoted(make([]byte, 0, len(raw)-2), raw); err == nil {
			return str
		}
		return raw
	}
	if len(raw) > 0 && raw[0] == '{' && bytes.Contains(raw, []byte(`"`+bytesField+`"`)) {
		var m map[string]string
		if json.Unmarshal(raw, &m) == nil && len(m) == 1 {
			if b, err := base64.StdEncoding.DecodeString(m[bytesField]); err == nil {
				return b
			}
		}
	}
	return raw
}

// dataBytes is registerBytes for a decoded value (a map field as
// node.Get returns it).
func dataBytes(v any) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case map[string]any:
		if s, ok := x[bytesField].(string); ok && len(x) == 1 {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return b
			}
		}
	}
	b, err := node.EncodeValue(v)
	if err != nil {
		return []byte(fmt.Sprint(v))
	}
	return b
}

// val is a key's value as the commands see it, loaded from the node and
// changed in place by the writes of the command (or transaction) being
// run, so that later reads see them.
type val struct {
	typ  node.Type // "" = no such key
	str  []byte    // register: the Redis string
	n    int64     // counter
	set  map[string]struct{}
	hash map[string]field

	expires   time.Time // the key's expiry (zero: none), once expLoaded
	expLoaded bool
}

// field is one field of a map, as a Redis hash sees it.
type field struct {
	str     []byte
	counter bool // a counter (HINCRBY) field; str is its decimal value
	n       int64
}

func (v *val) exists() bool { return v.typ != "" }

// load reads key from the node into a val.
func load(n *node.Node, key string) (*val, error) {
	typ, raw, err := n.GetJSON(key)
	if errors.Is(err, node.ErrNotFound) {
		return &val{}, nil
	}
	if err != nil {
		return nil, err
	}
	v := &val{typ: typ}
	switch typ {
	case node.TypeRegister:
		v.str = registerBytes(raw)
	case node.TypeCounter:
		v.n, err = strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("counter %q reads as %q", key, raw)
		}
	case node.TypeSet:
		var ms []string
		if err := json.Unmarshal(raw, &ms); err != nil {
			return nil, err
		}
		v.set = make(map[string]struct{}, len(ms))
		for _, m := range ms {
			v.set[m] = struct{}{}
		}
	case node.TypeMap:
		// The typed value: a counter field is an int64, every other field
		// a decoded JSON value (GetJSON would not tell them apart).
		got, err := n.Get(key)
		if errors.Is(err, node.ErrNotFound) {
			return &val{}, nil
		}
		if err != nil {
			return nil, err
		}
		m, _ := got.Data.(map[string]any)
		v.hash = make(map[string]field, len(m))
		for f, x := range m {
			if c, ok := x.(int64); ok {
				v.hash[f] = field{str: strconv.AppendInt(nil, c, 10), counter: true, n: c}
			} else {
				v.hash[f] = field{str: dataBytes(x)}
			}
		}
	}
	return v, nil
}

// redisType is what TYPE answers for a shoal type.
func redisType(t node.Type) string {
	switch t {
	case node.TypeRegister, node.TypeCounter:
		return "string"
	case node.TypeSet:
		return "set"
	case node.TypeMap:
		return "hash"
	case "":
		return "none"
	}
	return string(t)
}

// Redis's own error texts, so that clients recognise them.
const (
	errWrongType   = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errNotInteger  = "ERR value is not an integer or out of range"
	errHashNotInt  = "ERR hash value is not an integer"
	errOverflow    = "ERR increment or decrement would overflow"
	errSyntax      = "ERR syntax error"
	errNoAuth      = "NOAUTH Authentication required."
	errWrongPass   = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPassword  = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	errExecAbort   = "EXECABORT Transaction discarded because of previous errors."
	errNestedMulti = "ERR MULTI calls can not be nested"
	errDBIndex     = "ERR DB index is out of range"
	errCursor      = "ERR invalid cursor"
)

func errArity(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// nodeError is the RESP error for an error of the node.
func nodeError(err error) string {
	switch {
	case errors.Is(err, node.ErrWrongType):
		return errWrongType
	case errors.Is(err, node.ErrOverflow):
		return errOverflow
	case errors.Is(err, node.ErrInvalidKey):
		return "ERR invalid key: shoal keys are 1 to 1024 bytes of UTF-8"
	case errors.Is(err, node.ErrReadOnly):
		return "READONLY " + oneLine(err.Error())
	case errors.Is(err, node.ErrClosed):
		return "ERR the node is shutting down"
	}
	return "ERR " + oneLine(err.Error())
}

// oneLine keeps an error text on one line (a RESP error cannot hold a
// line break) and bounded.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	if len(b) > 512 {
		b = append(b[:509], "..."...)
	}
	return string(b)
}
