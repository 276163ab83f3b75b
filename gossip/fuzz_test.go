package gossip

import (
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"slices"
	"testing"
)

// Every decoder of bytes from the network: none may panic, and none may
// allocate beyond its limits.

func FuzzDecodeFrame(f *testing.F) {
	for _, tc := range frameCases {
		b := tc.body(nil)
		f.Add(byte(tc.typ), b)
	}
	f.Add(byte(frameBatch), []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		fr, err := decodeFrame(frameType(typ), body)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes (with the package's own encoders) to
		// a body that decodes to the same frame, and encodes the same again.
		again := encodeFrameBody(fr)
		fr2, err := decodeFrame(fr.typ, again)
		if err != nil {
			t.Fatalf("re-encoded %s frame does not decode: %v", fr.typ, err)
		}
		if !reflect.DeepEqual(normalize(fr2), normalize(fr)) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, fr2)
		}
		if third := encodeFrameBody(fr2); !bytes.Equal(third, again) {
			t.Fatalf("encoding is not stable: %x then %x", again, third)
		}
	})
}

// encodeFrameBody is decodeFrame's inverse, from the senders' encoders.
func encodeFrameBody(f frame) []byte {
	switch f.typ {
	case frameBatch:
		return appendPayloads(nil, f.payloads)
	case frameDigest:
		return slices.Clone(f.data)
	case frameSyncRequest:
		return appendSyncRequest(nil, f.id, f.n, f.data)
	case frameSyncData:
		return appendPayloads(binary.AppendUvarint(nil, f.id), f.payloads)
	case frameSyncCredit:
		return appendSyncCredit(nil, f.id, f.n)
	case frameSyncEnd:
		return appendSyncEnd(nil, f.id, f.status, string(f.data))
	case frameSyncCancel:
		return appendSyncCancel(nil, f.id)
	}
	return nil // hint, bye: empty bodies
}

func FuzzFrameReader(f *testing.F) {
	var buf bytes.Buffer
	fw := frameWriter{w: &buf}
	_, _ = fw.finish(appendPayloads(fw.start(frameBatch), [][]byte{[]byte("x")}))
	f.Add(buf.Bytes(), false)
	buf.Reset()
	fw = frameWriter{w: &buf, aead: testAEAD(f, 1)}
	_, _ = fw.finish(appendPayloads(fw.start(frameBatch), [][]byte{[]byte("x")}))
	f.Add(buf.Bytes(), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, false)
	aead := testAEAD(f, 1)
	f.Fuzz(func(t *testing.T, data []byte, encrypted bool) {
		fr := frameReader{r: bytes.NewReader(data), max: 1 << 16}
		if encrypted {
			fr.aead = aead
		}
		for range 8 {
			typ, body, _, err := fr.next()
			if err != nil {
				return
			}
			_, _ = decodeFrame(typ, body)
		}
	})
}

func FuzzReadClientHello(f *testing.F) {
	ch := clientHello{version: 1, keyed: true, maxFrame: 1 << 20, keyID: keyIDOf(key1), label: "L", name: "n"}
	f.Add(ch.encode())
	ch.keyed = false
	f.Add(ch.encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, raw, err := readClientHello(bytes.NewReader(data))
		if err != nil {
			return
		}
		if !bytes.Equal(raw, h.encode()) {
			t.Fatalf("raw %x, re-encoded %x", raw, h.encode())
		}
	})
}

func FuzzReadServerHello(f *testing.F) {
	sh := serverHello{version: 1, keyed: true, maxFrame: 1 << 20, name: "s"}
	f.Add(append(sh.encode(), make([]byte, macLen)...))
	sh.keyed = false
	f.Add(sh.encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = readServerHello(bytes.NewReader(data))
	})
}

// rwPair reads from r and discards writes.
type rwPair struct {
	io.Reader
	io.Writer
}

func FuzzServerHandshake(f *testing.F) {
	ch := clientHello{version: 1, keyed: true, maxFrame: 1 << 20, keyID: keyIDOf(key1), name: "c"}
	f.Add(append(ch.encode(), make([]byte, macLen)...), true)
	ch.keyed = false
	f.Add(ch.encode(), false)
	f.Fuzz(func(t *testing.T, data []byte, keyed bool) {
		p := handshakeParams{name: "s", maxFrame: 1 << 20}
		if keyed {
			p.keys = keysOf(key1, key2)
		}
		res, err := serverHandshake(rwPair{bytes.NewReader(data), io.Discard}, p)
		if err == nil && keyed {
			// Passing the key proof with fuzzed bytes would mean forgery.
			t.Fatalf("fuzzed client authenticated as %q", res.peer)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(nodeMeta{proto: 1, dataPort: 7947, dataHost: "10.0.0.1"}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMeta(data)
		if err != nil {
			return
		}
		// Unknown flag bits are ignored (forward compatible); the rest
		// round-trips.
		if again, err := decodeMeta(m.encode()); err != nil || again != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, again, err)
		}
	})
}
