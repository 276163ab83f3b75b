package resp

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shoaldb/shoal/node"
)

// The data commands. Each validates all its arguments before it adds an
// operation to the batch, so that one refused command inside a
// transaction adds nothing.

func cmdGet(x *exec, a [][]byte) {
	if !x.keep && getDirect(x, a[1]) {
		return
	}
	v := x.loadType(a[1], node.TypeRegister, node.TypeCounter)
	if v != nil {
		x.o.value(v)
	}
}

// getDirect answers a GET outside a transaction from the register's JSON,
// read into the connection's buffer and unquoted there, in place: no
// allocation per GET (a string holding quotes or backslashes, as
// redis-benchmark's and any stored JSON do, used to be unescaped into one).
// It answers a register holding a JSON string, a counter, or no key, and
// reports whether it answered; other values (bytes that are not UTF-8,
// JSON written over HTTP, errors) take load's path.
func getDirect(x *exec, key []byte) bool {
	typ, raw, err := x.n.AppendJSON(x.c.getBuf[:0], string(key))
	if cap(raw) <= maxKeptGetBuf {
		x.c.getBuf = raw[:0]
	}
	switch {
	case errors.Is(err, node.ErrNotFound):
		x.o.null()
	case err != nil:
		return false
	case typ == node.TypeRegister:
		if len(raw) < 2 || raw[0] != '"' {
			return false
		}
		s, err := node.AppendUnquoted(raw[:0], raw)
		if err != nil {
			return false
		}
		x.o.bulk(s)
	case typ == node.TypeCounter:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return false
		}
		x.o.bulkInt(n)
	default:
		x.o.err(errWrongType)
	}
	return true
}

// maxKeptGetBuf bounds the buffer a connection keeps for getDirect.
const maxKeptGetBuf = 64 << 10

// value writes a string-like value (register or counter) or null.
func (o *out) value(v *val) {
	switch v.typ {
	case node.TypeRegister:
		o.bulk(v.str)
	case node.TypeCounter:
		o.bulkInt(v.n)
	default:
		o.null()
	}
}

func cmdSet(x *exec, a [][]byte) {
	var nx, xx, get, keepTTL bool
	var ttl time.Duration
	for i := 3; i < len(a); i++ {
		switch opt := strings.ToUpper(string(a[i])); opt {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GET":
			get = true
		case "KEEPTTL":
			keepTTL = true // what a write does anyway (see expiry.go)
		case "EX", "PX", "EXAT", "PXAT":
			if ttl > 0 {
				x.o.err(errSyntax)
				return
			}
			var ok bool
			if ttl, ok = expiryOption(x, "set", a, i); !ok {
				return
			}
			i++
		default:
			x.o.err(errSyntax)
			return
		}
	}
	if (nx && xx) || (keepTTL && ttl > 0) {
		x.o.err(errSyntax)
		return
	}
	var v *val
	if get {
		v = x.loadType(a[1], node.TypeRegister, node.TypeCounter)
	} else {
		v = x.load(a[1])
	}
	if v == nil {
		return
	}
	old := *v
	if (nx && v.exists()) || (xx && !v.exists()) {
		if get {
			x.o.value(&old)
		} else {
			x.o.null()
		}
		return
	}
	x.setString(a[1], a[2], v, ttl)
	if get {
		x.o.value(&old)
	} else {
		x.o.ok()
	}
}

func cmdMGet(x *exec, a [][]byte) {
	vs := make([]*val, 0, len(a)-1)
	for _, k := range a[1:] {
		v, err := load(x.n, string(k))
		if ov, ok := x.vals[string(k)]; ok {
			v, err = ov, nil
		}
		if err != nil {
			v = &val{} // like Redis: what cannot be read as a string is nil
		}
		vs = append(vs, v)
	}
	x.o.array(len(vs))
	for _, v := range vs {
		x.o.value(v)
	}
}

func cmdMSet(x *exec, a [][]byte) {
	if len(a)%2 != 1 {
		x.o.err(errArity("mset"))
		return
	}
	vs := make([]*val, 0, len(a)/2)
	for i := 1; i < len(a); i += 2 {
		v := x.load(a[i])
		if v == nil {
			return
		}
		vs = append(vs, v)
	}
	for i := 1; i < len(a); i += 2 {
		x.setString(a[i], a[i+1], vs[i/2], 0)
	}
	x.o.ok()
}

func cmdGetDel(x *exec, a [][]byte) {
	v := x.loadType(a[1], node.TypeRegister, node.TypeCounter)
	if v == nil {
		return
	}
	x.o.value(v)
	if v.exists() {
		x.del(a[1], v)
	}
}

// cmdIncr serves INCR, DECR, INCRBY and DECRBY. A counter is a type of
// its own (a PN-counter): they work on a counter or a missing key, and
// answer WRONGTYPE on a string set with SET (see the package doc).
func cmdIncr(x *exec, a [][]byte) {
	by, ok := incrAmount(a)
	if !ok {
		x.o.err(errNotInteger)
		return
	}
	v := x.loadType(a[1], node.TypeCounter)
	if v != nil && x.incr(a[1], v, by) {
		x.o.int(v.n)
	}
}

// incrAmount is the increment of an INCR-family command. It compares the
// name without lowering a copy of it: this runs for every pipelined INCR.
func incrAmount(a [][]byte) (int64, bool) {
	switch {
	case bytes.EqualFold(a[0], []byte("incr")):
		return 1, true
	case bytes.EqualFold(a[0], []byte("decr")):
		return -1, true
	}
	by, err := strconv.ParseInt(string(a[2]), 10, 64)
	if err != nil {
		return 0, false
	}
	if bytes.EqualFold(a[0], []byte("decrby")) {
		if by == math.MinInt64 {
			return 0, false
		}
		by = -by
	}
	return by, true
}

func members(a [][]byte) ([]string, bool) {
	ms := make([]string, 0, len(a))
	for _, m := range a {
		if !utf8.Valid(m) {
			return nil, false
		}
		ms = append(ms, string(m))
	}
	return ms, true
}

const errMemberUTF8 = "ERR shoal set members and hash fields must be UTF-8"

// changing returns the distinct members of ms that are in set (in) or
// not (!in): those an SREM or an SADD changes, whose count it answers.
func changing[V any](set map[string]V, ms []string, in bool) []string {
	var out []string
	for _, m := range ms {
		if _, ok := set[m]; ok == in && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func cmdSAdd(x *exec, a [][]byte) { setChange(x, a, false) }
func cmdSRem(x *exec, a [][]byte) { setChange(x, a, true) }

// setChange is SADD (remove false) and SREM: it answers how many members
// it added or removed.
func setChange(x *exec, a [][]byte, remove bool) {
	ms, ok := members(a[2:])
	if !ok {
		x.o.err(errMemberUTF8)
		return
	}
	v := x.loadType(a[1], node.TypeSet)
	if v == nil {
		return
	}
	changed := changing(v.set, ms, remove)
	switch {
	case len(changed) == 0:
	case remove:
		x.setRemove(a[1], v, changed)
	default:
		x.setAdd(a[1], v, changed)
	}
	x.o.int(int64(len(changed)))
}

func cmdSMembers(x *exec, a [][]byte) {
	v := x.loadType(a[1], node.TypeSet)
	if v == nil {
		return
	}
	ms := slices.Sorted(maps.Keys(v.set))
	x.o.setHeader(len(ms))
	for _, m := range ms {
		x.o.bulkString(m)
	}
}

func cmdSIsMember(x *exec, a [][]byte) {
	if v := x.loadType(a[1], node.TypeSet); v != nil {
		_, in := v.set[string(a[2])]
		x.o.bool(in)
	}
}

func cmdSCard(x *exec, a [][]byte) {
	if v := x.loadType(a[1], node.TypeSet); v != nil {
		x.o.int(int64(len(v.set)))
	}
}

func cmdHSet(x *exec, a [][]byte) {
	if len(a)%2 != 0 {
		x.o.err(errArity(strings.ToLower(string(a[0]))))
		return
	}
	for i := 2; i < len(a); i += 2 {
		if !utf8.Valid(a[i]) {
			x.o.err(errMemberUTF8)
			return
		}
	}
	v := x.loadType(a[1], node.TypeMap)
	if v == nil {
		return
	}
	p := node.Patch{Set: make(map[string]any, len(a)/2)}
	added := 0
	if v.hash == nil {
		v.hash = make(map[string]field)
	}
	for i := 2; i < len(a); i += 2 {
		f := string(a[i])
		old, in := v.hash[f]
		if !in {
			added++
		} else if old.counter && !slices.Contains(p.Delete, f) {
			p.Delete = append(p.Delete, f) // a string replaces a counter field
		}
		p.Set[f] = storedString(a[i+1])
		v.hash[f] = field{str: a[i+1]}
	}
	x.b.Update(string(a[1]), p)
	v.typ = node.TypeMap
	if strings.EqualFold(string(a[0]), "hmset") {
		x.o.ok()
		return
	}
	x.o.int(int64(added))
}

func cmdHGet(x *exec, a [][]byte) {
	v := x.loadType(a[1], node.TypeMap)
	if v == nil {
		return
	}
	if f, in := v.hash[string(a[2])]; in {
		x.o.bulk(f.bytes())
		return
	}
	x.o.null()
}

func (f field) bytes() []byte {
	if f.counter && f.str == nil {
		return strconv.AppendInt(nil, f.n, 10)
	}
	return f.str
}

func cmdHDel(x *exec, a [][]byte) {
	v := x.loadType(a[1], node.TypeMap)
	if v == nil {
		return
	}
	fields := make([]string, 0, len(a)-2)
	for _, f := range a[2:] {
		fields = append(fields, string(f))
	}
	gone := changing(v.hash, fields, true)
	if len(gone) > 0 {
		x.b.Update(string(a[1]), node.Patch{Delete: gone})
		for _, f := range gone {
			delete(v.hash, f)
		}
		if len(v.hash) == 0 {
			*v = val{}
		}
	}
	x.o.int(int64(len(gone)))
}

func cmdHGetAll(x *exec, a [][]byte) {
	v := x.loadType(a[1], node.TypeMap)
	if v == nil {
		return
	}
	fs := slices.Sorted(maps.Keys(v.hash))
	x.o.mapHeader(len(fs))
	for _, f := range fs {
		x.o.bulkString(f)
		x.o.bulk(v.hash[f].bytes())
	}
}

func cmdHIncrBy(x *exec, a [][]byte) {
	by, err := strconv.ParseInt(string(a[3]), 10, 64)
	if err != nil {
		x.o.err(errNotInteger)
		return
	}
	if !utf8.Valid(a[2]) {
		x.o.err(errMemberUTF8)
		return
	}
	v := x.loadType(a[1], node.TypeMap)
	if v == nil {
		return
	}
	f := string(a[2])
	old, in := v.hash[f]
	if in && !old.counter {
		x.o.err(errHashNotInt) // a string field; a counter is a type of its own
		return
	}
	if (by > 0 && old.n > math.MaxInt64-by) || (by < 0 && old.n < math.MinInt64-by) {
		x.o.err(errOverflow)
		return
	}
	x.b.Update(string(a[1]), node.Patch{Incr: map[string]int64{f: by}})
	if v.hash == nil {
		v.hash = make(map[string]field)
	}
	v.typ = node.TypeMap
	v.hash[f] = field{counter: true, n: old.n + by}
	x.o.int(old.n + by)
}

func cmdHLen(x *exec, a [][]byte) {
	if v := x.loadType(a[1], node.TypeMap); v != nil {
		x.o.int(int64(len(v.hash)))
	}
}

func cmdHExists(x *exec, a [][]byte) {
	if v := x.loadType(a[1], node.TypeMap); v != nil {
		_, in := v.hash[string(a[2])]
		x.o.bool(in)
	}
}

func cmdDel(x *exec, a [][]byte) {
	vs := make([]*val, 0, len(a)-1)
	for _, k := range a[1:] {
		v := x.load(k)
		if v == nil {
			return
		}
		vs = append(vs, v)
	}
	removed := int64(0)
	for i, v := range vs {
		if v.exists() {
			x.del(a[i+1], v)
			removed++
		}
	}
	x.o.int(removed)
}

func cmdExists(x *exec, a [][]byte) {
	count := int64(0)
	for _, k := range a[1:] {
		v := x.load(k)
		if v == nil {
			return
		}
		if v.exists() {
			count++
		}
	}
	x.o.int(count)
}

func cmdType(x *exec, a [][]byte) {
	if v := x.load(a[1]); v != nil {
		x.o.status(redisType(v.typ))
	}
}

func cmdDBSize(x *exec, a [][]byte) {
	x.o.int(int64(x.n.Status().Keys))
}

// cmdKeys lists every key matching a pattern: like Redis, O(keys under the
// pattern's literal prefix); prefer SCAN.
func cmdKeys(x *exec, a [][]byte) {
	pat := a[1]
	keys, err := x.n.Keys(literalPrefix(pat), 0)
	if err != nil {
		x.o.err(nodeError(err))
		return
	}
	var out []string
	for _, k := range keys {
		if globMatch(pat, []byte(k.Key)) {
			out = append(out, k.Key)
		}
	}
	x.o.array(len(out))
	for _, k := range out {
		x.o.bulkString(k)
	}
}

// cmdScan walks the keys in order. The cursor is a number (clients parse
// it as one) naming the last key returned, kept by the server (a client
// may send the next SCAN on another pooled connection): scanning needs no
// state on the node, and keys written meanwhile behind the cursor are not
// seen (Redis's guarantee: every key present for the whole scan is
// returned, none twice).
func cmdScan(x *exec, a [][]byte) {
	cur, err := strconv.ParseUint(string(a[1]), 10, 64)
	if err != nil {
		x.o.err(errCursor)
		return
	}
	var pat []byte
	count := 10
	typ := ""
	for i := 2; i < len(a); i += 2 {
		if i+1 >= len(a) {
			x.o.err(errSyntax)
			return
		}
		switch strings.ToUpper(string(a[i])) {
		case "MATCH":
			pat = a[i+1]
		case "COUNT":
			n, err := strconv.Atoi(string(a[i+1]))
			if err != nil || n < 1 {
				x.o.err(errSyntax)
				return
			}
			count = min(n, 100_000)
		case "TYPE":
			typ = strings.ToLower(string(a[i+1]))
		default:
			x.o.err(errSyntax)
			return
		}
	}
	after := ""
	if cur != 0 {
		var ok bool
		if after, ok = x.c.s.cursors.get(cur); !ok {
			x.o.err(errCursor)
			return
		}
	}
	keys, err := x.n.KeysAfter(literalPrefix(pat), after, count)
	if err != nil {
		x.o.err(nodeError(err))
		return
	}
	var next uint64
	if len(keys) == count {
		next = x.c.s.cursors.put(keys[len(keys)-1].Key)
	}
	var out []string
	for _, k := range keys {
		if (pat == nil || globMatch(pat, []byte(k.Key))) && (typ == "" || redisType(k.Type) == typ) {
			out = append(out, k.Key)
		}
	}
	x.o.array(2)
	x.o.bulkString(strconv.FormatUint(next, 10))
	x.o.array(len(out))
	for _, k := range out {
		x.o.bulkString(k)
	}
}

// cursors maps SCAN cursors to the key they stop after. Bounded: the
// oldest cursor is forgotten first (it then answers "invalid cursor").
type cursors struct {
	mu   sync.Mutex
	next uint64
	keys map[uint64]string
}

// maxCursors bounds the cursors kept (each holds a key of at most 1 KiB).
const maxCursors = 4096

func (c *cursors) put(key string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = make(map[uint64]string)
	}
	c.next++
	c.keys[c.next] = key
	delete(c.keys, c.next-maxCursors)
	return c.next
}

func (c *cursors) get(id uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[id]
	return k, ok
}

// literalPrefix is the part of a glob pattern before its first special
// character: the keys to list.
func literalPrefix(pat []byte) string {
	i := bytes.IndexAny(pat, `*?[\`)
	if i < 0 {
		i = len(pat)
	}
	if !utf8.Valid(pat[:i]) {
		return ""
	}
	return string(pat[:i])
}

// globMatch is Redis's glob: * ? [abc] [^a-z] and \ escapes.
func globMatch(pat, s []byte) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for len(pat) > 1 && pat[1] == '*' {
				pat = pat[1:]
			}
			if len(pat) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(pat[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			p := pat[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for len(p) > 0 && p[0] != ']' {
				switch {
				case p[0] == '\\' && len(p) > 1:
					match = match || p[1] == s[0]
					p = p[2:]
				case len(p) > 2 && p[1] == '-':
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					match = match || (s[0] >= lo && s[0] <= hi)
					p = p[3:]
				default:
					match = match || p[0] == s[0]
					p = p[1:]
				}
			}
			if match == not {
				return false
			}
			if len(p) > 0 {
				p = p[1:] // the ']'
			}
			pat = p
			s = s[1:]
			continue
		case '\\':
			if len(pat) > 1 {
				pat = pat[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || s[0] != pat[0] {
				return false
			}
			s = s[1:]
		}
		pat = pat[1:]
	}
	return len(s) == 0
}
