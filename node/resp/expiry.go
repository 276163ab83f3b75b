package resp

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shoaldb/shoal/node"
)

// Expiry maps onto the node's (node.Expire, node.Persist, WriteOptions.TTL):
// CRDT state that replicates with the write that set it; the latest expiry
// wins among concurrent ones, a PERSIST over all of them. One difference
// from Redis: a write keeps the key's expiry (shoal's rule; Redis's SET
// discards it unless KEEPTTL): PERSIST removes it.

// errExpireTime is Redis's answer to a TTL that is not positive.
func errExpireTime(cmd string) string {
	return "ERR invalid expire time in '" + cmd + "' command"
}

// parseTTL reads an expiry given in unit (time.Second or
// time.Millisecond), relative or, with at, as a Unix time. It answers the
// error itself and returns false when the value is not usable.
func parseTTL(x *exec, cmd string, arg []byte, unit time.Duration, at bool) (time.Duration, bool) {
	n, err := strconv.ParseInt(string(arg), 10, 64)
	if err != nil {
		x.o.err(errNotInteger)
		return 0, false
	}
	if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
		x.o.err(errExpireTime(cmd))
		return 0, false
	}
	ttl := time.Duration(n) * unit
	if at {
		ttl = time.Until(time.UnixMilli(0).Add(ttl))
	}
	if ttl <= 0 || ttl > node.MaxTTL {
		x.o.err(errExpireTime(cmd))
		return 0, false
	}
	return ttl, true
}

// expiryOption parses SET's and GETEX's EX|PX|EXAT|PXAT at a[i] (its value
// at a[i+1]); ok false after an error reply.
func expiryOption(x *exec, cmd string, a [][]byte, i int) (ttl time.Duration, ok bool) {
	if i+1 >= len(a) {
		x.o.err(errSyntax)
		return 0, false
	}
	switch strings.ToUpper(string(a[i])) {
	case "EX":
		return parseTTL(x, cmd, a[i+1], time.Second, false)
	case "PX":
		return parseTTL(x, cmd, a[i+1], time.Millisecond, false)
	case "EXAT":
		return parseTTL(x, cmd, a[i+1], time.Second, true)
	case "PXAT":
		return parseTTL(x, cmd, a[i+1], time.Millisecond, true)
	}
	x.o.err(errSyntax)
	return 0, false
}

// expires returns key's expiry (zero: none) as this command or
// transaction sees it; ok false after an error reply.
func (x *exec) expires(key []byte, v *val) (time.Time, bool) {
	if v.expLoaded || !v.exists() {
		return v.expires, true
	}
	got, err := x.n.Get(string(key))
	switch {
	case errors.Is(err, node.ErrNotFound):
	case err != nil:
		x.o.err(nodeError(err))
		return time.Time{}, false
	default:
		v.expires = got.Expires
	}
	v.expLoaded = true
	return v.expires, true
}

func (x *exec) expire(key []byte, v *val, ttl time.Duration) {
	x.b.Expire(string(key), ttl)
	v.expires, v.expLoaded = time.Now().Add(ttl).Truncate(time.Millisecond), true
}

func (x *exec) persist(key []byte, v *val) {
	x.b.Persist(string(key))
	v.expires, v.expLoaded = time.Time{}, true
}

// cmdExpire serves EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with NX, XX,
// GT and LT.
func cmdExpire(x *exec, a [][]byte) {
	name := strings.ToLower(string(a[0]))
	unit := time.Second
	if strings.HasPrefix(name, "p") {
		unit = time.Millisecond
	}
	var nx, xx, gt, lt bool
	for _, opt := range a[3:] {
		switch strings.ToUpper(string(opt)) {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GT":
			gt = true
		case "LT":
			lt = true
		default:
			x.o.err("ERR Unsupported option " + printable(opt))
			return
		}
	}
	if (nx && (xx || gt || lt)) || (gt && lt) {
		x.o.err("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	ttl, ok := parseTTL(x, name, a[2], unit, strings.HasSuffix(name, "at"))
	if !ok {
		return
	}
	v := x.load(a[1])
	if v == nil {
		return
	}
	if !v.exists() {
		x.o.int(0)
		return
	}
	cur, ok := x.expires(a[1], v)
	if !ok {
		return
	}
	when := time.Now().Add(ttl)
	// As in Redis, no expiry counts as an infinite one for GT and LT.
	if (nx && !cur.IsZero()) || (xx && cur.IsZero()) || (gt && (cur.IsZero() || !when.After(cur))) ||
		(lt && !cur.IsZero() && !when.Before(cur)) {
		x.o.int(0)
		return
	}
	x.expire(a[1], v, ttl)
	x.o.int(1)
}

// cmdTTL serves TTL, PTTL, EXPIRETIME and PEXPIRETIME: -2 for a missing
// key, -1 for one without an expiry.
func cmdTTL(x *exec, a [][]byte) {
	v := x.load(a[1])
	if v == nil {
		return
	}
	if !v.exists() {
		x.o.int(-2)
		return
	}
	exp, ok := x.expires(a[1], v)
	if !ok {
		return
	}
	if exp.IsZero() {
		x.o.int(-1)
		return
	}
	switch strings.ToLower(string(a[0])) {
	case "ttl":
		x.o.int(int64((time.Until(exp) + time.Second/2) / time.Second))
	case "pttl":
		x.o.int(time.Until(exp).Milliseconds())
	case "expiretime":
		x.o.int(exp.Unix())
	default:
		x.o.int(exp.UnixMilli())
	}
}

func cmdPersist(x *exec, a [][]byte) {
	v := x.load(a[1])
	if v == nil {
		return
	}
	exp, ok := x.expires(a[1], v)
	if !ok {
		return
	}
	if !v.exists() || exp.IsZero() {
		x.o.int(0)
		return
	}
	x.persist(a[1], v)
	x.o.int(1)
}

// cmdSetEx serves SETEX and PSETEX: SET with EX or PX.
func cmdSetEx(x *exec, a [][]byte) {
	name := strings.ToLower(string(a[0]))
	unit := time.Second
	if name == "psetex" {
		unit = time.Millisecond
	}
	ttl, ok := parseTTL(x, name, a[2], unit, false)
	if !ok {
		return
	}
	v := x.load(a[1])
	if v == nil {
		return
	}
	x.setString(a[1], a[3], v, ttl)
	x.o.ok()
}

// cmdGetEx is GETEX key [EX|PX|EXAT|PXAT t | PERSIST].
func cmdGetEx(x *exec, a [][]byte) {
	var ttl time.Duration
	persist := false
	switch {
	case len(a) == 2:
	case len(a) == 3 && strings.EqualFold(string(a[2]), "PERSIST"):
		persist = true
	case len(a) == 4:
		var ok bool
		if ttl, ok = expiryOption(x, "getex", a, 2); !ok {
			return
		}
	default:
		x.o.err(errSyntax)
		return
	}
	v := x.loadType(a[1], node.TypeRegister, node.TypeCounter)
	if v == nil {
		return
	}
	x.o.value(v)
	if !v.exists() {
		return
	}
	switch {
	case ttl > 0:
		x.expire(a[1], v, ttl)
	case persist:
		if exp, ok := x.expires(a[1], v); ok && !exp.IsZero() {
			x.persist(a[1], v)
		}
	}
}
