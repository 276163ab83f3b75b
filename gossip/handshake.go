package gossip

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// The data stream handshake (doc.go describes it step by step).
//
// client hello:
//
//	"SHDS" | version u8 | flags u8 (bit 0: keyed) | max frame u32 | nonce [32]
//	| key id [8] (keyed only) | label len u8 | label | name len u8 | name
//
// server hello:
//
//	"SHDS" | version u8 | status u8 | flags u8 | max frame u32 | nonce [32]
//	| name len u8 | name | MAC [32] (keyed and status OK only)
//
// client finish (keyed only): MAC [32]
//
// With a key K (the keyring key whose id the client named): salt = client
// nonce | server nonce, A = HKDF-SHA256(K, salt, "shoal/data/v1 auth"),
// T = SHA-256(client hello | server hello without its MAC), server MAC =
// HMAC-SHA256(A, "server" | T), client MAC = HMAC-SHA256(A, "client" | T).
// Each side thus proves it holds K, bound to both fresh nonces, the label and
// the names. The frames that follow are sealed with AES-256-GCM under
// HKDF-SHA256(K, salt, "shoal/data/v1 client->server") and "...server->client".
const (
	handshakeMagic = "SHDS"
	nonceLen       = 32
	keyIDLen       = 8
	macLen         = sha256.Size
	helloFlagKeyed = 1 << 0
)

// Handshake statuses. Explicit values: they are on the wire.
const (
	hsOK      uint8 = 0
	hsVersion uint8 = 1 // unsupported protocol version
	hsLabel   uint8 = 2 // cluster label differs
	hsKey     uint8 = 3 // key missing, unexpected or unknown
	hsName    uint8 = 4 // empty name, or our own name
	hsClosing uint8 = 5 // shutting down
	hsMax           = hsClosing
)

var hsStatusText = [...]string{
	hsOK:      "ok",
	hsVersion: "unsupported protocol version",
	hsLabel:   "cluster label mismatch",
	hsKey:     "key mismatch",
	hsName:    "bad node name",
	hsClosing: "peer shutting down",
}

type clientHello struct {
	version  uint8
	keyed    bool
	maxFrame uint32
	nonce    [nonceLen]byte
	keyID    [keyIDLen]byte
	label    string
	name     string
}

type serverHello struct {
	version  uint8
	status   uint8
	keyed    bool
	maxFrame uint32
	nonce    [nonceLen]byte
	name     string
	mac      [macLen]byte
}

func (h *clientHello) encode() []byte {
	b := append([]byte(handshakeMagic), h.version, 0)
	if h.keyed {
		b[5] |= helloFlagKeyed
	}
	b = binary.BigEndian.AppendUint32(b, h.maxFrame)
	b = append(b, h.nonce[:]...)
	if h.keyed {
		b = append(b, h.keyID[:]...)
	}
	b = append(b, byte(len(h.label)))
	b = append(b, h.label...)
	b = append(b, byte(len(h.name)))
	return append(b, h.name...)
}

// encode returns the server hello without its MAC (what the transcript covers).
func (h *serverHello) encode() []byte {
	b := append([]byte(handshakeMagic), h.version, h.status, 0)
	if h.keyed {
		b[6] |= helloFlagKeyed
	}
	b = binary.BigEndian.AppendUint32(b, h.maxFrame)
	b = append(b, h.nonce[:]...)
	b = append(b, byte(len(h.name)))
	return append(b, h.name...)
}

// readFull reads n bytes from r, appending them to *raw.
func readFull(r io.Reader, raw *[]byte, n int) ([]byte, error) {
	start := len(*raw)
	*raw = append(*raw, make([]byte, n)...)
	if _, err := io.ReadFull(r, (*raw)[start:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	return (*raw)[start:], nil
}

// readString reads a one-byte length and that many bytes.
func readString(r io.Reader, raw *[]byte) (string, error) {
	l, err := readFull(r, raw, 1)
	if err != nil {
		return "", err
	}
	s, err := readFull(r, raw, int(l[0]))
	return string(s), err
}

// readClientHello parses a client hello from the network and returns it with
// its raw bytes. It never panics and reads at most 555 bytes.
func readClientHello(r io.Reader) (clientHello, []byte, error) {
	var h clientHello
	raw := make([]byte, 0, 128)
	b, err := readFull(r, &raw, 4+1+1+4+nonceLen)
	if err != nil {
		return h, nil, err
	}
	if string(b[:4]) != handshakeMagic {
		return h, nil, fmt.Errorf("%w: not a shoal data stream", ErrHandshake)
	}
	h.version = b[4]
	if b[5]&^helloFlagKeyed != 0 {
		return h, nil, fmt.Errorf("%w: unknown flags %#x", ErrHandshake, b[5])
	}
	h.keyed = b[5]&helloFlagKeyed != 0
	h.maxFrame = binary.BigEndian.Uint32(b[6:10])
	copy(h.nonce[:], b[10:])
	if h.keyed {
		id, err := readFull(r, &raw, keyIDLen)
		if err != nil {
			return h, nil, err
		}
		copy(h.keyID[:], id)
	}
	if h.label, err = readString(r, &raw); err != nil {
		return h, nil, err
	}
	if h.name, err = readString(r, &raw); err != nil {
		return h, nil, err
	}
	return h, raw, nil
}

// readServerHello parses a server hello (including its MAC when keyed and
// accepted) and returns it with its raw bytes without the MAC.
func readServerHello(r io.Reader) (serverHello, []byte, error) {
	var h serverHello
	raw := make([]byte, 0, 128)
	b, err := readFull(r, &raw, 4+1+1+1+4+nonceLen)
	if err != nil {
		return h, nil, err
	}
	if string(b[:4]) != handshakeMagic {
		return h, nil, fmt.Errorf("%w: not a shoal data stream", ErrHandshake)
	}
	h.version, h.status = b[4], b[5]
	if h.status > hsMax {
		return h, nil, fmt.Errorf("%w: unknown status %d", ErrHandshake, h.status)
	}
	if b[6]&^helloFlagKeyed != 0 {
		return h, nil, fmt.Errorf("%w: unknown flags %#x", ErrHandshake, b[6])
	}
	h.keyed = b[6]&helloFlagKeyed != 0
	h.maxFrame = binary.BigEndian.Uint32(b[7:11])
	copy(h.nonce[:], b[11:])
	if h.name, err = readString(r, &raw); err != nil {
		return h, nil, err
	}
	if h.keyed && h.status == hsOK {
		var macRaw []byte
		m, err := readFull(r, &macRaw, macLen)
		if err != nil {
			return h, nil, err
		}
		copy(h.mac[:], m)
	}
	return h, raw, nil
}

// keyIDOf names a key on the wire without revealing it.
func keyIDOf(key []byte) [keyIDLen]byte {
	h := sha256.New()
	h.Write([]byte("shoal/data/v1 key id\x00"))
	h.Write(key)
	var id [keyIDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

// session keys derived from a handshake.
type sessionKeys struct {
	auth     []byte
	c2s, s2c cipher.AEAD
}

func deriveKeys(key []byte, cNonce, sNonce [nonceLen]byte) (sessionKeys, error) {
	salt := append(cNonce[:], sNonce[:]...)
	var sk sessionKeys
	var err error
	if sk.auth, err = hkdf.Key(sha256.New, key, salt, "shoal/data/v1 auth", 32); err != nil {
		return sk, err
	}
	mk := func(info string) (cipher.AEAD, error) {
		k, err := hkdf.Key(sha256.New, key, salt, info, 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	if sk.c2s, err = mk("shoal/data/v1 client->server"); err != nil {
		return sk, err
	}
	sk.s2c, err = mk("shoal/data/v1 server->client")
	return sk, err
}

func transcriptMAC(auth []byte, role string, cRaw, sRaw []byte) []byte {
	th := sha256.New()
	th.Write(cRaw)
	th.Write(sRaw)
	m := hmac.New(sha256.New, auth)
	m.Write([]byte(role))
	m.Write(th.Sum(nil))
	return m.Sum(nil)
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
}

// handshakeResult is an established stream's parameters.
type handshakeResult struct {
	peer     string
	maxFrame uint32 // the peer's frame limit
	send     cipher.AEAD
	recv     cipher.AEAD
	keyID    [keyIDLen]byte
	keyed    bool
}

// reject is a refused handshake: its status, and the error to report.
type rejectError struct {
	status uint8
	err    error
}

func (e *rejectError) Error() string { return e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

// clientHandshake runs the client side over rw.
func clientHandshake(rw io.ReadWriter, p handshakeParams) (handshakeResult, error) {
	var res handshakeResult
	ch := clientHello{version: protocolVersion, maxFrame: p.maxFrame, label: p.label, name: p.name}
	if _, err := rand.Read(ch.nonce[:]); err != nil {
		return res, err
	}
	var key []byte
	if p.keys != nil {
		keys := p.keys()
		if len(keys) == 0 {
			return res, fmt.Errorf("%w: empty keyring", ErrAuth)
		}
		key = keys[0]
		ch.keyed = true
		ch.keyID = keyIDOf(key)
	}
	cRaw := ch.encode()
	if _, err := rw.Write(cRaw); err != nil {
		return res, err
	}
	sh, sRaw, err := readServerHello(rw)
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
	if sh.version != protocolVersion {
		return res, fmt.Errorf("%w: peer speaks version %d", ErrHandshake, sh.version)
	}
	if sh.keyed != ch.keyed {
		return res, fmt.Errorf("%w: peer keyed=%v, we keyed=%v", ErrAuth, sh.keyed, ch.keyed)
	}
	if sh.name == "" {
		return res, fmt.Errorf("%w: peer sent no name", ErrHandshake)
	}
	res.peer = sh.name
	res.maxFrame = sh.maxFrame
	if !ch.keyed {
		return res, nil
	}
	sk, err := deriveKeys(key, ch.nonce, sh.nonce)
	if err != nil {
		return res, err
	}
	if !hmac.Equal(sh.mac[:], transcriptMAC(sk.auth, "server", cRaw, sRaw)) {
		return res, fmt.Errorf("%w: peer %q does not hold our key", ErrAuth, sh.name)
	}
	if _, err := rw.Write(transcriptMAC(sk.auth, "client", cRaw, sRaw)); err != nil {
		return res, err
	}
	res.send, res.recv, res.keyID, res.keyed = sk.c2s, sk.s2c, ch.keyID, true
	return res, nil
}

// serverHandshake runs the server side over rw. A refusal is answered with
// its status and returned as a *rejectError.
func serverHandshake(rw io.ReadWriter, p handshakeParams) (handshakeResult, error) {
	var res handshakeResult
	ch, cRaw, err := readClientHello(rw)
	if err != nil {
		return res, err
	}
	sh := serverHello{version: protocolVersion, maxFrame: p.maxFrame, name: p.name, keyed: p.keys != nil}
	refuse := func(status uint8, base error, format string, args ...any) (handshakeResult, error) {
		sh.status = status
		_, _ = rw.Write(sh.encode())
		return res, &rejectError{status: status, err: fmt.Errorf("%w: "+format, append([]any{base}, args...)...)}
	}
	var key []byte
	switch {
	case ch.version != protocolVersion:
		return refuse(hsVersion, ErrHandshake, "client %q speaks version %d", ch.name, ch.version)
	case ch.name == "":
		return refuse(hsName, ErrHandshake, "client sent no name")
	case ch.name == p.name:
		return refuse(hsName, ErrHandshake, "client uses our own name %q", ch.name)
	case ch.label != p.label:
		return refuse(hsLabel, ErrHandshake, "client %q has label %q, want %q", ch.name, ch.label, p.label)
	case ch.keyed != (p.keys != nil):
		return refuse(hsKey, ErrAuth, "client %q keyed=%v, we keyed=%v", ch.name, ch.keyed, p.keys != nil)
	case p.closing != nil && p.closing():
		return refuse(hsClosing, ErrClosed, "refusing %q", ch.name)
	}
	if ch.keyed {
		for _, k := range p.keys() {
			if keyIDOf(k) == ch.keyID {
				key = k
				break
			}
		}
		if key == nil {
			return refuse(hsKey, ErrAuth, "client %q uses a key not in our keyring", ch.name)
		}
	}
	if _, err := rand.Read(sh.nonce[:]); err != nil {
		return res, err
	}
	sRaw := sh.encode()
	res.peer, res.maxFrame = ch.name, ch.maxFrame
	if !ch.keyed {
		_, err := rw.Write(sRaw)
		return res, err
	}
	sk, err := deriveKeys(key, ch.nonce, sh.nonce)
	if err != nil {
		return res, err
	}
	msg := append(sRaw[:len(sRaw):len(sRaw)], transcriptMAC(sk.auth, "server", cRaw, sRaw)...)
	if _, err := rw.Write(msg); err != nil {
		return res, err
	}
	var finRaw []byte
	fin, err := readFull(rw, &finRaw, macLen)
	if err != nil {
		return res, fmt.Errorf("%w: client %q: %v", ErrAuth, ch.name, err)
	}
	if !hmac.Equal(fin, transcriptMAC(sk.auth, "client", cRaw, sRaw)) {
		return res, fmt.Errorf("%w: client %q does not hold the key it named", ErrAuth, ch.name)
	}
	res.send, res.recv, res.keyID, res.keyed = sk.s2c, sk.c2s, ch.keyID, true
	return res, nil
}
