package crdt

import (
	"encoding/binary"
	"errors"
)

// msgpackFits walks a msgpack document and reports whether every declared
// length fits in the bytes that follow and nesting stays within maxDepth.
// msgpack v5.4.1 preallocates the declared length of arrays it decodes into
// typed slices (decode_slice.go: `noLimit := flags&disableAllocLimitFlag
// != 1` is always true), so five bytes can demand gigabytes. Decoders of
// untrusted bytes must check first; node does (node/msgcheck.go), and so
// does the fuzz test here.
func msgpackFits(b []byte, maxDepth int) bool {
	_, err := walkMsgpack(b, 0, maxDepth)
	return err == nil
}

var errMsgpack = errors.New("bad msgpack")

func walkMsgpack(b []byte, depth, maxDepth int) (int, error) {
	if depth > maxDepth || len(b) == 0 {
		return 0, errMsgpack
	}
	c := b[0]
	i := 1
	uint := func(n int) (uint64, error) {
		if len(b) < i+n {
			return 0, errMsgpack
		}
		var v uint64
		switch n {
		case 1:
			v = uint64(b[i])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b[i:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b[i:]))
		}
		i += n
		return v, nil
	}
	var skip, items uint64
	var err error
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
	case c >= 0x80 && c <= 0x8f:
		items = 2 * uint64(c&0x0f)
	case c >= 0x90 && c <= 0x9f:
		items = uint64(c & 0x0f)
	case c >= 0xa0 && c <= 0xbf:
		skip = uint64(c & 0x1f)
	case c == 0xc4 || c == 0xd9:
		skip, err = uint(1)
	case c == 0xc5 || c == 0xda:
		skip, err = uint(2)
	case c == 0xc6 || c == 0xdb:
		skip, err = uint(4)
	case c == 0xcc || c == 0xd0:
		skip = 1
	case c == 0xcd || c == 0xd1:
		skip = 2
	case c == 0xca || c == 0xce || c == 0xd2:
		skip = 4
	case c == 0xcb || c == 0xcf || c == 0xd3:
		skip = 8
	case c == 0xdc:
		items, err = uint(2)
	case c == 0xdd:
		items, err = uint(4)
	case c == 0xde:
		items, err = uint(2)
		items *= 2
	case c == 0xdf:
		items, err = uint(4)
		items *= 2
	case c >= 0xd4 && c <= 0xd8: // fixext
		skip = 1 + 1<<(c-0xd4)
	case c == 0xc7:
		skip, err = uint(1)
		skip++
	case c == 0xc8:
		skip, err = uint(2)
		skip++
	case c == 0xc9:
		skip, err = uint(4)
		skip++
	default:
		return 0, errMsgpack
	}
	if err != nil || skip > uint64(len(b)-i) || items > uint64(len(b)-i) {
		return 0, errMsgpack
	}
	i += int(skip)
	for ; items > 0; items-- {
		n, err := walkMsgpack(b[i:], depth+1, maxDepth)
		if err != nil {
			return 0, err
		}
		i += n
	}
	return i, nil
}
