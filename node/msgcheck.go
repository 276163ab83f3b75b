package node

import (
	"encoding/binary"
	"fmt"
)

// checkMsgpack walks a msgpack document without decoding it and rejects
// anything whose declared sizes do not fit in the bytes that are there, or
// that nests deeper than maxDepth. The msgpack library trusts array headers
// when it decodes into typed slices (it preallocates the declared length),
// so bytes from disk or a peer go through this check first: afterwards no
// declared length exceeds len(b), which bounds every allocation the decoder
// makes by the input size.
func checkMsgpack(b []byte, maxDepth int) error {
	// stack[i] = items still to read in the container at depth i; the
	// document itself is one item at depth 0.
	stack := make([]uint64, 1, 16)
	stack[0] = 1
	i := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-i) {
			return fmt.Errorf("%w: msgpack: %d bytes declared at %d, %d left", ErrCorrupt, n, i, len(b)-i)
		}
		return nil
	}
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		if i >= len(b) {
			return fmt.Errorf("%w: msgpack: unexpected end at %d", ErrCorrupt, i)
		}
		c := b[i]
		i++
		var skip, items uint64
		container := false
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
			// fixint, nil, bool
		case c >= 0x80 && c <= 0x8f:
			items, container = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f:
			items, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			var n uint64
			var hdr int
			switch c {
			case 0xc4, 0xd9: // bin8, str8
				hdr = 1
			case 0xc5, 0xda: // bin16, str16
				hdr = 2
			case 0xc6, 0xdb: // bin32, str32
				hdr = 4
			case 0xc7: // ext8
				hdr, skip = 1, 1
			case 0xc8: // ext16
				hdr, skip = 2, 1
			case 0xc9: // ext32
				hdr, skip = 4, 1
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				skip = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				skip = 8
			case 0xcc, 0xd0: // uint8, int8
				skip = 1
			case 0xcd, 0xd1: // uint16, int16
				skip = 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1,2,4,8,16
				skip = 1 + 1<<(c-0xd4)
			case 0xdc: // array16
				hdr, container = 2, true
			case 0xdd: // array32
				hdr, container = 4, true
			case 0xde: // map16
				hdr, container = 2, true
			case 0xdf: // map32
				hdr, container = 4, true
			default: // 0xc1 is never used
				return fmt.Errorf("%w: msgpack: invalid code %#x at %d", ErrCorrupt, c, i-1)
			}
			if hdr > 0 {
				if err := need(uint64(hdr)); err != nil {
					return err
				}
				switch hdr {
				case 1:
					n = uint64(b[i])
				case 2:
					n = uint64(binary.BigEndian.Uint16(b[i:]))
				case 4:
					n = uint64(binary.BigEndian.Uint32(b[i:]))
				}
				i += hdr
				if container {
					items = n
					if c == 0xde || c == 0xdf {
						items = 2 * n
					}
				} else {
					skip += n
				}
			}
		}
		if container {
			if items == 0 {
				continue
			}
			// every item takes at least one byte
			if err := need(items); err != nil {
				return err
			}
			if len(stack) > maxDepth {
				return fmt.Errorf("%w: msgpack: nested deeper than %d", ErrCorrupt, maxDepth)
			}
			stack = append(stack, items)
			continue
		}
		if err := need(skip); err != nil {
			return err
		}
		i += int(skip)
	}
	if i != len(b) {
		return fmt.Errorf("%w: msgpack: %d trailing bytes", ErrCorrupt, len(b)-i)
	}
	return nil
}
