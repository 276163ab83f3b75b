package gossip

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/flynn/noise"
)

// The data stream handshake, protocol version 2 (doc.go explains the
// choices). All integers are big endian.
//
// client hello:
//
//	"SHDS" | version u8 (2) | flags u8 (bit 0: keyed) | key id [8] (keyed only)
//	| body length u16 | body
//
// server hello:
//
//	"SHDS" | version u8 (2) | status u8 | flags u8 (bit 0: keyed)
//	| body length u16 | body (empty unless status is OK)
//
// client finish (keyed only): 16 bytes, the first transport message of the
// client's CipherState (an empty payload: only its tag).
//
// The bodies carry a payload, in clear without a key, and as the payload of
// a Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s message with one: the client's
// body is Noise message 1 (psk, e: its 32-byte ephemeral key, then the
// sealed payload), the server's is Noise message 2 (e, ee). The Noise
// prologue is the client hello's header (everything before the body
// length), so both sides agree on version, flags and key id; the PSK is
// pskOf(the keyring key the id names).
//
// client payload: max frame u32 | label length u8 | label | name length u8 | name
// server payload: max frame u32 | name length u8 | name
const (
	handshakeMagic = "SHDS"
	keyIDLen       = 8
	helloFlagKeyed = 1 << 0
	// clientHeaderLen and serverHeaderLen are the fixed parts before the
	// body (the client's key id comes on top when keyed).
	clientHeaderLen = 4 + 1 + 1
	serverHeaderLen = 4 + 1 + 1 + 1 + 2
	// dhLen is the size of an X25519 public key; tagLen of an AEAD tag.
	dhLen  = 32
	tagLen = 16
	// maxHelloBody bounds a hello's body: the largest client payload (two
	// 255-byte strings), an ephemeral key and a tag. A longer length word is
	// refused before anything is read or allocated.
	maxHelloBody = dhLen + 4 + 1 + 255 + 1 + 255 + tagLen
)

// noiseSuite is the Noise cipher suite of keyed data streams.
var noiseSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// Handshake statuses. Explicit values: they are on the wire.
const (
	hsOK        uint8 = 0
	hsVersion   uint8 = 1 // unsupported protocol version
	hsLabel     uint8 = 2 // cluster label differs
	hsKey       uint8 = 3 // key missing, unexpected or unknown, or key proof failed
	hsName      uint8 = 4 // empty name, or our own name
	hsClosing   uint8 = 5 // shutting down
	hsNotMember uint8 = 6 // the name is no live member at the connection's address
	hsDuplicate uint8 = 7 // a stream under that name is open
	hsBusy      uint8 = 8 // too many streams or handshakes
	hsMax             = hsBusy
)

var hsStatusText = [...]string{
	hsOK:        "ok",
	hsVersion:   "unsupported protocol version",
	hsLabel:     "cluster label mismatch",
	hsKey:       "key mismatch",
	hsName:      "bad node name",
	hsClosing:   "peer shutting down",
	hsNotMember: "not a member at this address",
	hsDuplicate: "a stream under this name is already open",
	hsBusy:      "too many streams",
}

// clientHello is a parsed client hello: the header fields and the raw body
// (a Noise message when keyed). header is the header as received (the
// Noise prologue).
type clientHello struct {
	version uint8
	keyed   bool
	keyID   [keyIDLen]byte
	header  []byte
	body    []byte
}

func encodeClientHeader(keyed bool, id [keyIDLen]byte) []byte {
	b := append([]byte(handshakeMagic), protocolVersion, 0)
	if keyed {
		b[5] |= helloFlagKeyed
		b = append(b, id[:]...)
	}
	return b
}

// appendBody appends a length word and body.
func appendBody(b, body []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func hsErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrHandshake}, args...)...)
}

// readExactly reads n bytes into a new slice; a short read is a handshake
// error.
func readExactly(r io.Reader, n int, what string) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, hsErr("reading %s: %w", what, err)
	}
	return b, nil
}

// readBody reads a length word and that many bytes, at most maxHelloBody.
func readBody(r io.Reader) ([]byte, error) {
	l, err := readExactly(r, 2, "body length")
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l))
	if n > maxHelloBody {
		return nil, hsErr("hello body of %d bytes, limit %d", n, maxHelloBody)
	}
	return readExactly(r, n, "hello body")
}

// readClientVersion reads the magic and version of a client hello. A
// wrong magic is ErrHandshake; the version is returned for the caller to
// judge (an older client gets an answer it can read, see refuseOld).
func readClientVersion(r io.Reader) (uint8, []byte, error) {
	b, err := readExactly(r, 5, "hello")
	if err != nil {
		return 0, nil, err
	}
	if string(b[:4]) != handshakeMagic {
		return 0, nil, hsErr("not a shoal data stream")
	}
	return b[4], b, nil
}

// readClientHelloRest reads what follows the version: flags, key id and
// body. start is what readClientVersion returned.
func readClientHelloRest(r io.Reader, start []byte) (clientHello, error) {
	h := clientHello{version: start[4]}
	f, err := readExactly(r, 1, "flags")
	if err != nil {
		return h, err
	}
	if f[0]&^helloFlagKeyed != 0 {
		return h, hsErr("unknown flags %#x", f[0])
	}
	h.keyed = f[0]&helloFlagKeyed != 0
	h.header = append(start[:5:5], f[0])
	if h.keyed {
		id, err := readExactly(r, keyIDLen, "key id")
		if err != nil {
			return h, err
		}
		copy(h.keyID[:], id)
		h.header = append(h.header, id...)
	}
	h.body, err = readBody(r)
	return h, err
}

// readClientHello parses a whole client hello from the network. It never
// panics and reads at most clientHeaderLen + keyIDLen + 2 + maxHelloBody
// bytes.
func readClientHello(r io.Reader) (clientHello, error) {
	_, start, err := readClientVersion(r)
	if err != nil {
		return clientHello{}, err
	}
	return readClientHelloRest(r, start)
}

// serverHello is a parsed server hello.
type serverHello struct {
	version uint8
	status  uint8
	keyed   bool
	body    []byte
}

func (h *serverHello) encode() []byte {
	b := append([]byte(handshakeMagic), h.version, h.status, 0)
	if h.keyed {
		b[6] |= helloFlagKeyed
	}
	return appendBody(b, h.body)
}

// readServerHello parses a server hello from the network. It never panics
// and reads at most serverHeaderLen + maxHelloBody bytes.
func readServerHello(r io.Reader) (serverHello, error) {
	var h serverHello
	b, err := readExactly(r, serverHeaderLen-2, "server hello")
	if err != nil {
		return h, err
	}
	if string(b[:4]) != handshakeMagic {
		return h, hsErr("not a shoal data stream")
	}
	h.version, h.status = b[4], b[5]
	if h.version != protocolVersion {
		// Another layout may follow: say what we know.
		return h, hsErr("peer speaks protocol version %d, this node %d", h.version, protocolVersion)
	}
	if h.status > hsMax {
		return h, hsErr("unknown status %d", h.status)
	}
	if b[6]&^helloFlagKeyed != 0 {
		return h, hsErr("unknown flags %#x", b[6])
	}
	h.keyed = b[6]&helloFlagKeyed != 0
	if h.body, err = readBody(r); err != nil {
		return h, err
	}
	if h.status != hsOK && len(h.body) != 0 {
		return h, hsErr("refusal with a body")
	}
	return h, nil
}

// helloPayload is what a hello body carries (the server's has no label).
type helloPayload struct {
	maxFrame uint32
	label    string
	name     string
}

func (p helloPayload) encode(withLabel bool) []byte {
	b := binary.BigEndian.AppendUint32(nil, p.maxFrame)
	if withLabel {
		b = append(b, byte(len(p.label)))
		b = append(b, p.label...)
	}
	b = append(b, byte(len(p.name)))
	return append(b, p.name...)
}

// decodeHelloPayload parses a payload that fills all of b. It never panics.
func decodeHelloPayload(b []byte, withLabel bool) (helloPayload, error) {
	var p helloPayload
	if len(b) < 4 {
		return p, hsErr("payload of %d bytes", len(b))
	}
	p.maxFrame, b = binary.BigEndian.Uint32(b), b[4:]
	str := func(what string) (string, error) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return "", hsErr("truncated %s", what)
		}
		s := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return s, nil
	}
	var err error
	if withLabel {
		if p.label, err = str("label"); err != nil {
			return p, err
		}
	}
	if p.name, err = str("name"); err != nil {
		return p, err
	}
	if len(b) != 0 {
		return p, hsErr("%d trailing bytes in payload", len(b))
	}
	return p, nil
}

// keyIDOf names a key on the wire without revealing it.
func keyIDOf(key []byte) [keyIDLen]byte {
	h := sha256.New()
	h.Write([]byte("shoal/data/v2 key id\x00"))
	h.Write(key)
	var id [keyIDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

// pskOf turns a keyring key (16, 24 or 32 bytes, which memberlist uses as
// an AES key) into the 32-byte Noise PSK: a key is never used directly by
// two algorithms.
func pskOf(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("shoal/data/v2 noise psk"))
	return m.Sum(nil)
}

// newNoise starts a Noise_NNpsk0 handshake (ephemeral keys from
// crypto/rand).
func newNoise(initiator bool, prologue, psk []byte) (*noise.HandshakeState, error) {
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:           noiseSuite,
		Pattern:               noise.HandshakeNN,
		Initiator:             initiator,
		Prologue:              prologue,
		PresharedKey:          psk,
		PresharedKeyPlacement: 0,
	})
}

// handshakeParams is what one side brings to a handshake.
type handshakeParams struct {
	name     string
	label    string
	maxFrame uint32
	// keys returns the keyring (primary first); nil when not keyed.
	keys func() [][]byte
	// closing reports that the server is shutting down.
	closing func() bool
	// precheck runs on the server once the version is known, before
	// anything else is read; admit once the client is authenticated and
	// its name known, before the server answers. Either refuses with a
	// *rejectError. nil = accept.
	precheck func() error
	admit    func(name string) error
}

// handshakeResult is an established stream's parameters.
type handshakeResult struct {
	peer     string
	maxFrame uint32 // the peer's frame limit
	send     *noise.CipherState
	recv     *noise.CipherState
	keyID    [keyIDLen]byte
	keyed    bool
}

// rejectError is a refused handshake: the status sent (if any), the
// rejection reason it is counted under, and the error to report.
type rejectError struct {
	status uint8
	reason int
	err    error
}

func (e *rejectError) Error() string { return e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

func reject(status uint8, reason int, base error, format string, args ...any) *rejectError {
	return &rejectError{status: status, reason: reason, err: fmt.Errorf("%w: "+format, append([]any{base}, args...)...)}
}

// clientHandshake runs the client side over rw.
func clientHandshake(rw io.ReadWriter, p handshakeParams) (handshakeResult, error) {
	var res handshakeResult
	payload := helloPayload{maxFrame: p.maxFrame, label: p.label, name: p.name}.encode(true)
	var hs *noise.HandshakeState
	var header, body []byte
	if p.keys != nil {
		keys := p.keys()
		if len(keys) == 0 {
			return res, fmt.Errorf("%w: empty keyring", ErrAuth)
		}
		res.keyed, res.keyID = true, keyIDOf(keys[0])
		header = encodeClientHeader(true, res.keyID)
		var err error
		if hs, err = newNoise(true, header, pskOf(keys[0])); err != nil {
			return res, err
		}
		if body, _, _, err = hs.WriteMessage(nil, payload); err != nil {
			return res, err
		}
	} else {
		header, body = encodeClientHeader(false, res.keyID), payload
	}
	if _, err := rw.Write(appendBody(header, body)); err != nil {
		return res, err
	}
	sh, err := readServerHello(rw)
	if err != nil {
		return res, err
	}
	if sh.status != hsOK {
		base := ErrHandshake
		if sh.status == hsKey {
			base = ErrAuth
		}
		return res, fmt.Errorf("%w: refused by peer: %s", base, hsStatusText[sh.status])
	}
	if sh.keyed != res.keyed {
		return res, fmt.Errorf("%w: peer keyed=%v, we keyed=%v", ErrAuth, sh.keyed, res.keyed)
	}
	body = sh.body
	if res.keyed {
		// The initiator's Split gives (initiator→responder, responder→initiator).
		body, res.send, res.recv, err = hs.ReadMessage(nil, sh.body)
		if err != nil || res.send == nil {
			return res, fmt.Errorf("%w: peer does not hold our key (%v)", ErrAuth, err)
		}
	}
	sp, err := decodeHelloPayload(body, false)
	if err != nil {
		return res, err
	}
	if sp.name == "" {
		return res, hsErr("peer sent no name")
	}
	res.peer, res.maxFrame = sp.name, sp.maxFrame
	if res.keyed {
		fin, err := res.send.Encrypt(nil, nil, nil)
		if err != nil {
			return res, err
		}
		if _, err := rw.Write(fin); err != nil {
			return res, err
		}
	}
	return res, nil
}

// oldRefusal is a refusal an older (version 1) client can parse: its
// server hello layout with status "unsupported protocol version", and an
// empty name.
func oldRefusal() []byte {
	b := append([]byte(handshakeMagic), protocolVersion, hsVersion, 0)
	b = append(b, make([]byte, 4+32)...) // max frame, nonce
	return append(b, 0)                  // name length
}

// serverHandshake runs the server side over rw. A refusal is answered with
// its status (where the client can be told) and returned as a
// *rejectError; anything else that fails is a malformed or incomplete
// handshake.
func serverHandshake(rw io.ReadWriter, p handshakeParams) (handshakeResult, error) {
	var res handshakeResult
	keyed := p.keys != nil
	refuse := func(rj *rejectError) (handshakeResult, error) {
		sh := serverHello{version: protocolVersion, status: rj.status, keyed: keyed}
		_, _ = rw.Write(sh.encode())
		return res, rj
	}
	version, start, err := readClientVersion(rw)
	if err != nil {
		return res, err
	}
	if version != protocolVersion {
		rj := reject(hsVersion, rejectVersion, ErrHandshake, "client speaks protocol version %d, this node %d", version, protocolVersion)
		if version < protocolVersion {
			_, _ = rw.Write(oldRefusal())
			return res, rj
		}
		return refuse(rj)
	}
	if p.precheck != nil {
		if err := p.precheck(); err != nil {
			var rj *rejectError
			if errors.As(err, &rj) {
				return refuse(rj)
			}
			return res, err
		}
	}
	ch, err := readClientHelloRest(rw, start)
	if err != nil {
		return res, err
	}
	if ch.keyed != keyed {
		return refuse(reject(hsKey, rejectAuth, ErrAuth, "client keyed=%v, we keyed=%v", ch.keyed, keyed))
	}
	var hs *noise.HandshakeState
	payload := ch.body
	if keyed {
		var key []byte
		for _, k := range p.keys() {
			if keyIDOf(k) == ch.keyID {
				key = k
				break
			}
		}
		if key == nil {
			return refuse(reject(hsKey, rejectAuth, ErrAuth, "client uses a key not in our keyring"))
		}
		if hs, err = newNoise(false, ch.header, pskOf(key)); err != nil {
			return res, err
		}
		if payload, _, _, err = hs.ReadMessage(nil, ch.body); err != nil {
			return refuse(reject(hsKey, rejectAuth, ErrAuth, "client does not hold the key it names (%v)", err))
		}
		res.keyed, res.keyID = true, ch.keyID
	}
	cp, err := decodeHelloPayload(payload, true)
	if err != nil {
		return res, err
	}
	switch {
	case cp.name == "":
		return refuse(reject(hsName, rejectName, ErrHandshake, "client sent no name"))
	case cp.name == p.name:
		return refuse(reject(hsName, rejectName, ErrHandshake, "client uses our own name %q", cp.name))
	case cp.label != p.label:
		return refuse(reject(hsLabel, rejectLabel, ErrHandshake, "client %q has label %q, want %q", cp.name, cp.label, p.label))
	case p.closing != nil && p.closing():
		return refuse(reject(hsClosing, rejectClosing, ErrClosed, "refusing %q", cp.name))
	}
	if p.admit != nil {
		if err := p.admit(cp.name); err != nil {
			var rj *rejectError
			if errors.As(err, &rj) {
				return refuse(rj)
			}
			return res, err
		}
	}
	res.peer, res.maxFrame = cp.name, cp.maxFrame
	body := helloPayload{maxFrame: p.maxFrame, name: p.name}.encode(false)
	if keyed {
		var recv, send *noise.CipherState
		// The responder's Split gives (initiator→responder, responder→initiator).
		body, recv, send, err = hs.WriteMessage(nil, body)
		if err != nil {
			return res, err
		}
		res.send, res.recv = send, recv
	}
	sh := serverHello{version: protocolVersion, status: hsOK, keyed: keyed, body: body}
	if _, err := rw.Write(sh.encode()); err != nil {
		return res, err
	}
	if keyed {
		// The client proves it took part in this handshake (a replayed
		// client hello cannot): only then is the stream established.
		fin, err := readExactly(rw, tagLen, "client finish")
		if err != nil {
			return res, reject(hsOK, rejectAuth, ErrAuth, "client %q sent no finish: %v", cp.name, err)
		}
		if _, err := res.recv.Decrypt(nil, nil, fin); err != nil {
			return res, reject(hsOK, rejectAuth, ErrAuth, "client %q failed the key confirmation", cp.name)
		}
	}
	return res, nil
}
