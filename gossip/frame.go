package gossip

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/flynn/noise"
)

// protocolVersion is the data stream protocol version: it is in the handshake,
// in every frame, and (as memberlist's delegate protocol version) in the
// membership protocol. Version 2: Noise handshake, membership check,
// keepalive frames.
const protocolVersion = 2

// Frame layout on a data stream, after the handshake (doc.go has the whole
// protocol):
//
//	length  uint32, big endian: bytes that follow (content, plus the
//	        16-byte tag when the stream is encrypted)
//	content version (1 byte) | type (1 byte) | body
//
// On an encrypted stream the content is sealed by the handshake's Noise
// CipherState of that direction (ChaCha20-Poly1305, nonce = the frame's
// number in that direction, counted by the CipherState), with the length
// bytes as additional data, so frames cannot be altered, dropped, reordered
// or replayed without the reader noticing.
const (
	frameLenSize = 4
	sealOverhead = tagLen
	// readStep is how much a frame's buffer grows at a time: memory follows
	// the bytes that arrived, never the length word alone.
	readStep = 64 << 10
)

type frameType uint8

// Frame types. Explicit values: they are on the wire.
const (
	frameBatch       frameType = 1  // pushed payloads: uvarint count, then (uvarint len, bytes)*
	frameDigest      frameType = 2  // acknowledgement: the sender's digest
	frameSyncRequest frameType = 3  // uvarint id, uvarint window, digest
	frameSyncData    frameType = 4  // uvarint id, then payloads as in a batch
	frameSyncCredit  frameType = 5  // uvarint id, uvarint chunks consumed
	frameSyncEnd     frameType = 6  // uvarint id, status byte, message
	frameSyncCancel  frameType = 7  // uvarint id
	frameHint        frameType = 8  // empty: "you may have missed data, pull from me"
	frameBye         frameType = 9  // empty: "I am leaving the cluster on purpose"
	framePing        frameType = 10 // empty: "are you there?" (keepalive); answered by a pong
	framePong        frameType = 11 // empty: the answer to a ping
	frameTypeMax               = framePong
)

var frameTypeNames = [...]string{
	0:                "unknown",
	frameBatch:       "batch",
	frameDigest:      "digest",
	frameSyncRequest: "sync_request",
	frameSyncData:    "sync_data",
	frameSyncCredit:  "sync_credit",
	frameSyncEnd:     "sync_end",
	frameSyncCancel:  "sync_cancel",
	frameHint:        "hint",
	frameBye:         "bye",
	framePing:        "ping",
	framePong:        "pong",
}

func (t frameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return "unknown"
}

// Sync end statuses. Explicit values: they are on the wire.
const (
	syncOK      uint8 = 0
	syncBusy    uint8 = 1
	syncFailed  uint8 = 2
	syncClosing uint8 = 3
)

// maxEndMessage caps the error text of a sync end frame.
const maxEndMessage = 1024

// frameReader reads frames from one stream. Not safe for concurrent use.
type frameReader struct {
	r   io.Reader
	cs  *noise.CipherState // nil: plaintext stream
	max int                // largest length field accepted
	hdr [frameLenSize]byte
	// got counts the bytes of the frame being read that have arrived (for
	// tests: memory must follow it).
	got atomic.Int64
}

// next reads one frame. It checks the length against the limit, and grows
// the frame's buffer readStep at a time as its bytes arrive, so a length
// word alone never makes it allocate more than readStep. It returns an
// error wrapping ErrBadFrame for anything malformed or unauthenticated;
// stream errors (io.EOF, timeouts) are returned as they are. wire is the
// frame's size on the wire.
func (fr *frameReader) next() (t frameType, body []byte, wire int, err error) {
	fr.got.Store(0)
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, 0, err
	}
	n := int(binary.BigEndian.Uint32(fr.hdr[:]))
	minLen := 2
	if fr.cs != nil {
		minLen += sealOverhead
	}
	if n < minLen || n > fr.max {
		return 0, nil, frameLenSize, fmt.Errorf("%w: frame length %d outside [%d, %d]", ErrBadFrame, n, minLen, fr.max)
	}
	buf := make([]byte, 0, min(n, readStep))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), readStep))
		}
		k, err := fr.r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		fr.got.Store(int64(len(buf)))
		if err != nil && len(buf) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, frameLenSize, err
		}
	}
	wire = frameLenSize + n
	content := buf
	if fr.cs != nil {
		seq := fr.cs.Nonce()
		content, err = fr.cs.Decrypt(buf[:0], fr.hdr[:], buf)
		if err != nil {
			return 0, nil, wire, fmt.Errorf("%w: frame %d fails authentication", ErrBadFrame, seq)
		}
	}
	if content[0] != protocolVersion {
		return 0, nil, wire, fmt.Errorf("%w: frame version %d", ErrBadFrame, content[0])
	}
	t = frameType(content[1])
	if t == 0 || t > frameTypeMax {
		return 0, nil, wire, fmt.Errorf("%w: frame type %d", ErrBadFrame, content[1])
	}
	return t, content[2:], wire, nil
}

// frameWriter writes frames to one stream. Not safe for concurrent use.
type frameWriter struct {
	w   io.Writer
	cs  *noise.CipherState // nil: plaintext stream
	buf []byte
}

// start returns a buffer holding the header of a frame of type t: append the
// body to it, then pass it to finish. The buffer is reused by the next start.
func (fw *frameWriter) start(t frameType) []byte {
	return append(fw.buf[:0], 0, 0, 0, 0, protocolVersion, byte(t))
}

// finish seals (on encrypted streams) and writes a frame built with start,
// and returns its size on the wire.
func (fw *frameWriter) finish(b []byte) (int, error) {
	n := len(b) - frameLenSize
	if fw.cs != nil {
		b = slices.Grow(b, sealOverhead)
		binary.BigEndian.PutUint32(b[:frameLenSize], uint32(n+sealOverhead))
		sealed, err := fw.cs.Encrypt(b[frameLenSize:frameLenSize], b[:frameLenSize], b[frameLenSize:])
		if err != nil {
			return 0, err
		}
		b = b[:frameLenSize+len(sealed)]
	} else {
		binary.BigEndian.PutUint32(b[:frameLenSize], uint32(n))
	}
	// Keep a moderate buffer for the next frame; let a huge one go.
	if cap(b) <= 1<<20 {
		fw.buf = b[:0]
	} else {
		fw.buf = nil
	}
	_, err := fw.w.Write(b)
	return len(b), err
}

// payloadsSize is the encoded size of a payload list.
func payloadsSize(ps [][]byte) int {
	n := binary.MaxVarintLen64
	for _, p := range ps {
		n += uvarintLen(uint64(len(p))) + len(p)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendPayloads(b []byte, ps [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// decodePayloads parses a payload list that fills all of b. The payloads
// alias b.
func decodePayloads(b []byte) ([][]byte, error) {
	count, b, err := readUvarint(b, "payload count")
	if err != nil {
		return nil, err
	}
	// Each payload takes at least its one-byte length: a larger count is a lie
	// and must not size an allocation.
	if count > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d payloads in %d bytes", ErrBadFrame, count, len(b))
	}
	ps := make([][]byte, 0, count)
	for i := uint64(0); i < count; i++ {
		var n uint64
		n, b, err = readUvarint(b, "payload length")
		if err != nil {
			return nil, err
		}
		if n > uint64(len(b)) {
			return nil, fmt.Errorf("%w: payload %d of %d bytes, %d left", ErrBadFrame, i, n, len(b))
		}
		ps = append(ps, b[:n:n])
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after payloads", ErrBadFrame, len(b))
	}
	return ps, nil
}

func readUvarint(b []byte, what string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, fmt.Errorf("%w: bad %s", ErrBadFrame, what)
	}
	return v, b[n:], nil
}

// frame is a decoded frame body; which fields are set depends on typ.
type frame struct {
	typ      frameType
	id       uint64   // sync frames: request id
	n        uint64   // sync request: window; sync credit: chunks
	status   uint8    // sync end
	payloads [][]byte // batch, sync data
	data     []byte   // digest (digest, sync request) or message (sync end)
}

// decodeFrame parses the body of a frame of type t. It never panics; slices
// in the result alias body.
func decodeFrame(t frameType, body []byte) (frame, error) {
	f := frame{typ: t}
	var err error
	switch t {
	case frameBatch:
		f.payloads, err = decodePayloads(body)
	case frameDigest:
		f.data = body
	case frameSyncRequest:
		if f.id, body, err = readUvarint(body, "request id"); err != nil {
			break
		}
		if f.n, body, err = readUvarint(body, "window"); err != nil {
			break
		}
		if f.n == 0 {
			err = fmt.Errorf("%w: sync request with window 0", ErrBadFrame)
			break
		}
		f.data = body
	case frameSyncData:
		if f.id, body, err = readUvarint(body, "request id"); err != nil {
			break
		}
		f.payloads, err = decodePayloads(body)
	case frameSyncCredit:
		if f.id, body, err = readUvarint(body, "request id"); err != nil {
			break
		}
		if f.n, body, err = readUvarint(body, "credit"); err != nil {
			break
		}
		if len(body) != 0 {
			err = fmt.Errorf("%w: trailing bytes in credit", ErrBadFrame)
		}
	case frameSyncEnd:
		if f.id, body, err = readUvarint(body, "request id"); err != nil {
			break
		}
		if len(body) < 1 {
			err = fmt.Errorf("%w: sync end without status", ErrBadFrame)
			break
		}
		f.status, body = body[0], body[1:]
		if f.status > syncClosing {
			err = fmt.Errorf("%w: sync end status %d", ErrBadFrame, f.status)
			break
		}
		if len(body) > maxEndMessage {
			err = fmt.Errorf("%w: sync end message of %d bytes", ErrBadFrame, len(body))
			break
		}
		f.data = body
	case frameSyncCancel:
		if f.id, body, err = readUvarint(body, "request id"); err != nil {
			break
		}
		if len(body) != 0 {
			err = fmt.Errorf("%w: trailing bytes in cancel", ErrBadFrame)
		}
	case frameHint, frameBye, framePing, framePong:
		if len(body) != 0 {
			err = fmt.Errorf("%w: trailing bytes in %s", ErrBadFrame, t)
		}
	default:
		err = fmt.Errorf("%w: frame type %d", ErrBadFrame, t)
	}
	if err != nil {
		return frame{}, err
	}
	return f, nil
}

func appendSyncRequest(b []byte, id, window uint64, digest []byte) []byte {
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, window)
	return append(b, digest...)
}

func appendSyncCredit(b []byte, id, n uint64) []byte {
	b = binary.AppendUvarint(b, id)
	return binary.AppendUvarint(b, n)
}

func appendSyncEnd(b []byte, id uint64, status uint8, msg string) []byte {
	if len(msg) > maxEndMessage {
		msg = msg[:maxEndMessage]
	}
	b = binary.AppendUvarint(b, id)
	b = append(b, status)
	return append(b, msg...)
}

func appendSyncCancel(b []byte, id uint64) []byte {
	return binary.AppendUvarint(b, id)
}
