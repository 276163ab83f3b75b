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
	fw = frameWriter{w: &buf, cs: testCipher(1, 0)}
	_, _ = fw.finish(appendPayloads(fw.start(frameBatch), [][]byte{[]byte("x")}))
	_, _ = fw.finish(fw.start(framePing))
	f.Add(buf.Bytes(), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, false)
	f.Add([]byte{0, 0xff, 0xff, 0xff, 1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, data []byte, encrypted bool) {
		fr := frameReader{r: bytes.NewReader(data), max: 1 << 24}
		if encrypted {
			fr.cs = testCipher(1, 0)
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

// recordedHandshake runs a handshake and returns the bytes each side sent.
func recordedHandshake(t testing.TB, keyed bool) (client, server []byte) {
	p := func(name string) handshakeParams {
		hp := handshakeParams{name: name, label: "L", maxFrame: 1 << 20}
		if keyed {
			hp.keys = keysOf(key1)
		}
		return hp
	}
	a, b := tcpPair(t)
	rec := &tap{Conn: a}
	errc := make(chan error, 1)
	go func() {
		_, err := serverHandshake(b, p("s"))
		errc <- err
	}()
	if _, err := clientHandshake(rec, p("c")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	return slices.Clone(rec.out.Bytes()), slices.Clone(rec.in.Bytes())
}

func FuzzReadClientHello(f *testing.F) {
	keyedHello, _ := recordedHandshake(f, true)
	plainHello, _ := recordedHandshake(f, false)
	f.Add(keyedHello)
	f.Add(plainHello)
	f.Add([]byte("SHDS\x02\x00\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readClientHello(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What parses re-encodes to the bytes it was read from.
		again := appendBody(encodeClientHeader(h.keyed, h.keyID), h.body)
		again[4] = h.version
		if !bytes.HasPrefix(data, again) || !bytes.Equal(h.header, again[:len(h.header)]) {
			t.Fatalf("read %x, re-encoded %x", data[:min(len(data), len(again))], again)
		}
		if len(h.body) > maxHelloBody {
			t.Fatalf("body of %d bytes", len(h.body))
		}
	})
}

func FuzzReadServerHello(f *testing.F) {
	_, keyed := recordedHandshake(f, true)
	_, plain := recordedHandshake(f, false)
	f.Add(keyed)
	f.Add(plain)
	f.Add((&serverHello{version: protocolVersion, status: hsDuplicate}).encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readServerHello(bytes.NewReader(data))
		if err != nil {
			return
		}
		if again := h.encode(); !bytes.HasPrefix(data, again) {
			t.Fatalf("read %x, re-encoded %x", data, again)
		}
	})
}

func FuzzDecodeHelloPayload(f *testing.F) {
	f.Add(helloPayload{maxFrame: 1 << 20, label: "L", name: "n"}.encode(true), true)
	f.Add(helloPayload{maxFrame: 1 << 20, name: "s"}.encode(false), false)
	f.Fuzz(func(t *testing.T, data []byte, withLabel bool) {
		p, err := decodeHelloPayload(data, withLabel)
		if err != nil {
			return
		}
		if again := p.encode(withLabel); !bytes.Equal(again, data) {
			t.Fatalf("payload %x re-encodes to %x", data, again)
		}
	})
}

// rwPair reads from r and discards writes.
type rwPair struct {
	io.Reader
	io.Writer
}

// The server side of the handshake, fed any bytes: it never panics, and
// never accepts a keyed client (that would be forging the key proof; a
// recorded hello and finish replayed fail too, since the server's
// ephemeral key is new).
func FuzzServerHandshake(f *testing.F) {
	keyedHello, _ := recordedHandshake(f, true)
	plainHello, _ := recordedHandshake(f, false)
	f.Add(keyedHello, true)
	f.Add(plainHello, false)
	f.Add(append([]byte("SHDS\x01"), make([]byte, 40)...), false)
	f.Fuzz(func(t *testing.T, data []byte, keyed bool) {
		p := handshakeParams{name: "s", label: "L", maxFrame: 1 << 20}
		if keyed {
			p.keys = keysOf(key1, key2)
		}
		res, err := serverHandshake(rwPair{bytes.NewReader(data), io.Discard}, p)
		if err == nil && keyed {
			t.Fatalf("fuzzed client authenticated as %q", res.peer)
		}
	})
}

// The client side, reading any answer: it never panics, and never takes a
// fuzzed keyed answer for a server that holds the key.
func FuzzClientHandshake(f *testing.F) {
	_, keyed := recordedHandshake(f, true)
	_, plain := recordedHandshake(f, false)
	f.Add(keyed, true)
	f.Add(plain, false)
	f.Fuzz(func(t *testing.T, data []byte, keyed bool) {
		p := handshakeParams{name: "c", label: "L", maxFrame: 1 << 20}
		if keyed {
			p.keys = keysOf(key1)
		}
		res, err := clientHandshake(rwPair{bytes.NewReader(data), io.Discard}, p)
		if err == nil && keyed {
			t.Fatalf("fuzzed server authenticated as %q", res.peer)
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
