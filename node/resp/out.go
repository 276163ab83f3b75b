package resp

import (
	"strconv"

	"github.com/tidwall/redcon"
)

// out writes replies in the connection's protocol version (RESP2, or
// RESP3 after HELLO 3: nulls, maps and sets have types of their own).
type out struct {
	w     *redcon.Writer
	proto int
}

func (o *out) ok()                 { o.w.WriteString("OK") }
func (o *out) status(s string)     { o.w.WriteString(s) }
func (o *out) err(msg string)      { o.w.WriteError(msg) }
func (o *out) int(n int64)         { o.w.WriteInt64(n) }
func (o *out) bulk(b []byte)       { o.w.WriteBulk(b) }
func (o *out) bulkString(s string) { o.w.WriteBulkString(s) }
func (o *out) array(n int)         { o.w.WriteArray(n) }
func (o *out) raw(b []byte)        { o.w.WriteRaw(b) }
func (o *out) bool(b bool)         { o.int(boolInt(b)) }
func (o *out) buffer() []byte      { return o.w.Buffer() }
func (o *out) reset()              { o.w.SetBuffer(o.w.Buffer()[:0]) }
func (o *out) bulkInt(n int64)     { o.w.WriteBulkString(strconv.FormatInt(n, 10)) }

// null is a missing value.
func (o *out) null() {
	if o.proto == 3 {
		o.w.WriteRaw([]byte("_\r\n"))
		return
	}
	o.w.WriteNull()
}

// nullArray is a missing array (RESP2 *-1).
func (o *out) nullArray() {
	if o.proto == 3 {
		o.w.WriteRaw([]byte("_\r\n"))
		return
	}
	o.w.WriteRaw([]byte("*-1\r\n"))
}

// mapHeader starts a map of n pairs (a flat array of 2n under RESP2).
func (o *out) mapHeader(n int) {
	if o.proto == 3 {
		o.w.WriteRaw([]byte("%" + strconv.Itoa(n) + "\r\n"))
		return
	}
	o.w.WriteArray(2 * n)
}

// setHeader starts a set of n members (an array under RESP2).
func (o *out) setHeader(n int) {
	if o.proto == 3 {
		o.w.WriteRaw([]byte("~" + strconv.Itoa(n) + "\r\n"))
		return
	}
	o.w.WriteArray(n)
}

// push starts an out-of-band message of n items (pub/sub under RESP3; an
// array under RESP2).
func (o *out) push(n int) {
	if o.proto == 3 {
		o.w.WriteRaw([]byte(">" + strconv.Itoa(n) + "\r\n"))
		return
	}
	o.w.WriteArray(n)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
