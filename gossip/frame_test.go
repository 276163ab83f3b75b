package gossip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"

	"github.com/flynn/noise"
)

// testCipher is a Noise CipherState with a key of bytes key, at frame
// number seq.
func testCipher(key byte, seq uint64) *noise.CipherState {
	var k [32]byte
	for i := range k {
		k[i] = key
	}
	return noise.UnsafeNewCipherState(noiseSuite, k, seq)
}

type frameCase struct {
	name string
	typ  frameType
	body func(b []byte) []byte
	want frame
}

var frameCases = []frameCase{
	{"batch", frameBatch, func(b []byte) []byte { return appendPayloads(b, [][]byte{[]byte("a"), {}, []byte("ccc")}) },
		frame{typ: frameBatch, payloads: [][]byte{[]byte("a"), {}, []byte("ccc")}}},
	{"empty batch", frameBatch, func(b []byte) []byte { return appendPayloads(b, nil) },
		frame{typ: frameBatch, payloads: [][]byte{}}},
	{"digest", frameDigest, func(b []byte) []byte { return append(b, "vv"...) },
		frame{typ: frameDigest, data: []byte("vv")}},
	{"sync request", frameSyncRequest, func(b []byte) []byte { return appendSyncRequest(b, 7, 4, []byte("d")) },
		frame{typ: frameSyncRequest, id: 7, n: 4, data: []byte("d")}},
	{"sync data", frameSyncData, func(b []byte) []byte {
		return appendPayloads(append(b, 9), [][]byte{[]byte("x")})
	}, frame{typ: frameSyncData, id: 9, payloads: [][]byte{[]byte("x")}}},
	{"sync credit", frameSyncCredit, func(b []byte) []byte { return appendSyncCredit(b, 300, 2) },
		frame{typ: frameSyncCredit, id: 300, n: 2}},
	{"sync end", frameSyncEnd, func(b []byte) []byte { return appendSyncEnd(b, 1, syncFailed, "boom") },
		frame{typ: frameSyncEnd, id: 1, status: syncFailed, data: []byte("boom")}},
	{"sync cancel", frameSyncCancel, func(b []byte) []byte { return appendSyncCancel(b, 5) },
		frame{typ: frameSyncCancel, id: 5}},
	{"hint", frameHint, func(b []byte) []byte { return b }, frame{typ: frameHint}},
	{"bye", frameBye, func(b []byte) []byte { return b }, frame{typ: frameBye}},
	{"ping", framePing, func(b []byte) []byte { return b }, frame{typ: framePing}},
	{"pong", framePong, func(b []byte) []byte { return b }, frame{typ: framePong}},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		for _, tc := range frameCases {
			t.Run(tc.name, func(t *testing.T) {
				var buf bytes.Buffer
				fw := frameWriter{w: &buf}
				fr := frameReader{r: &buf, max: 1 << 20}
				if encrypted {
					fw.cs, fr.cs = testCipher(1, 0), testCipher(1, 0)
					fr.max += sealOverhead
				}
				// Twice: the second frame uses the next nonce.
				for range 2 {
					n, err := fw.finish(tc.body(fw.start(tc.typ)))
					if err != nil {
						t.Fatal(err)
					}
					if n != buf.Len() {
						t.Fatalf("wire size %d, buffer %d", n, buf.Len())
					}
					typ, body, wire, err := fr.next()
					if err != nil {
						t.Fatal(err)
					}
					if typ != tc.typ || wire != n {
						t.Fatalf("type %v wire %d, want %v %d", typ, wire, tc.typ, n)
					}
					f, err := decodeFrame(typ, body)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(normalize(f), normalize(tc.want)) {
						t.Fatalf("decoded %+v, want %+v", f, tc.want)
					}
				}
			})
		}
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(f frame) frame {
	if len(f.data) == 0 {
		f.data = nil
	}
	return f
}

func TestFrameReaderRejects(t *testing.T) {
	sealed := func(key byte, seq uint64, content []byte) []byte {
		var buf bytes.Buffer
		fw := frameWriter{w: &buf, cs: testCipher(key, seq)}
		b := fw.start(frameType(content[1]))
		b = append(b[:4], content...)
		if _, err := fw.finish(b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	hint := []byte{protocolVersion, byte(frameHint)}
	cases := []struct {
		name      string
		encrypted bool
		in        []byte
	}{
		{"length below minimum", false, []byte{0, 0, 0, 1, 1}},
		{"length above maximum", false, []byte{0, 0x10, 0, 1}},
		{"huge length", false, []byte{0xff, 0xff, 0xff, 0xff}},
		{"old version", false, []byte{0, 0, 0, 2, 1, byte(frameHint)}},
		{"unknown version", false, []byte{0, 0, 0, 2, protocolVersion + 1, byte(frameHint)}},
		{"type zero", false, []byte{0, 0, 0, 2, protocolVersion, 0}},
		{"unknown type", false, []byte{0, 0, 0, 2, protocolVersion, 200}},
		{"plaintext on encrypted stream", true, []byte{0, 0, 0, 2, protocolVersion, byte(frameHint)}},
		{"wrong key", true, sealed(2, 0, hint)},
		{"replayed or reordered (wrong sequence)", true, sealed(1, 1, hint)},
		{"tampered ciphertext", true, func() []byte {
			b := sealed(1, 0, hint)
			b[5] ^= 1
			return b
		}()},
		{"tampered length", true, func() []byte {
			b := sealed(1, 0, append(hint[:2:2], 0))
			b = b[:len(b)-1]
			b[3]--
			return b
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fr := frameReader{r: bytes.NewReader(tc.in), max: 1 << 20}
			if tc.encrypted {
				fr.cs = testCipher(1, 0)
				fr.max += sealOverhead
			}
			if _, _, _, err := fr.next(); !errors.Is(err, ErrBadFrame) {
				t.Fatalf("next() = %v, want ErrBadFrame", err)
			}
		})
	}
	// A truncated frame is a stream error, not a panic.
	fr := frameReader{r: bytes.NewReader([]byte{0, 0, 0, 9, 1}), max: 1 << 20}
	if _, _, _, err := fr.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

func TestEncryptedFrameHidesPayload(t *testing.T) {
	var buf bytes.Buffer
	fw := frameWriter{w: &buf, cs: testCipher(1, 0)}
	secret := []byte("the secret payload")
	if _, err := fw.finish(appendPayloads(fw.start(frameBatch), [][]byte{secret})); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), secret) {
		t.Fatal("payload visible on an encrypted stream")
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	cases := []struct {
		name string
		typ  frameType
		body []byte
	}{
		{"batch count lies", frameBatch, []byte{200}},
		{"batch payload overruns", frameBatch, []byte{1, 5, 'a'}},
		{"batch trailing bytes", frameBatch, []byte{1, 1, 'a', 'b'}},
		{"batch bad varint", frameBatch, []byte{0xff}},
		{"request window zero", frameSyncRequest, []byte{1, 0}},
		{"request truncated", frameSyncRequest, []byte{1}},
		{"credit trailing", frameSyncCredit, []byte{1, 1, 1}},
		{"end without status", frameSyncEnd, []byte{1}},
		{"end unknown status", frameSyncEnd, []byte{1, 99}},
		{"end message too long", frameSyncEnd, append([]byte{1, 0}, make([]byte, maxEndMessage+1)...)},
		{"cancel trailing", frameSyncCancel, []byte{1, 2}},
		{"hint with body", frameHint, []byte{1}},
		{"unknown type", 77, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeFrame(tc.typ, tc.body); !errors.Is(err, ErrBadFrame) {
				t.Fatalf("decodeFrame = %v, want ErrBadFrame", err)
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []nodeMeta{
		{proto: 1, dataPort: 7947},
		{proto: 1, keyed: true, dataPort: 1, dataHost: "10.0.0.1"},
		{proto: 1, dataPort: 65535, dataHost: "::1"},
	} {
		got, err := decodeMeta(m.encode())
		if err != nil || got != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	for _, b := range [][]byte{nil, {1, 1, 0, 0, 0, 0}, {2, 1, 0, 0, 1, 0}, {1, 1, 0, 0, 1, 3, 'a'}, {1, 1, 0, 0, 1, 4, 'h', 'o', 's', 't'}} {
		if _, err := decodeMeta(b); !errors.Is(err, ErrBadFrame) {
			t.Fatalf("decodeMeta(%v) = %v, want ErrBadFrame", b, err)
		}
	}
	if a := (nodeMeta{dataPort: 5}).dataAddr(net.ParseIP("127.0.0.1")); a != "127.0.0.1:5" {
		t.Fatalf("dataAddr = %s", a)
	}
}
