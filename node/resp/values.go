package resp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
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
		if b, ok := unquote(raw); ok {
			return b
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

// unquote decodes a JSON string (quotes included): a few times faster
// than encoding/json on the values GET reads most. ok is false for
// anything that is not a well-formed string.
func unquote(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	in := raw[1 : len(raw)-1]
	if !utf8.Valid(in) { // never so in what the node stores
		return nil, false
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c == '"' || c < 0x20 {
			return nil, false
		}
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(in) {
			return nil, false
		}
		switch in[i] {
		case '"', '\\', '/':
			out = append(out, in[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(in[i+1:])
			if !ok {
				return nil, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+2 < len(in) && in[i+1] == '\\' && in[i+2] == 'u' {
					r2, ok = hex4(in[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r, i = dec, i+6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return out, true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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
