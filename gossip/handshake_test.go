package gossip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"
)

func keysOf(ks ...[]byte) func() [][]byte { return func() [][]byte { return ks } }

// tcpPair returns both ends of a loopback TCP connection (unlike net.Pipe,
// writes do not wait for the reader, as on the network).
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	deadline := time.Now().Add(10 * time.Second)
	_ = client.SetDeadline(deadline)
	_ = server.SetDeadline(deadline)
	return client, server
}

// tap records what goes through a connection, both ways.
type tap struct {
	net.Conn
	mu      sync.Mutex
	out, in bytes.Buffer
}

func (c *tap) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tap) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// runHandshake runs both sides over a loopback connection; client and
// server may be wrapped (to record them).
func runHandshake(t *testing.T, client, server handshakeParams) (cres, sres handshakeResult, cerr, serr error) {
	t.Helper()
	a, b := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sres, serr = serverHandshake(b, server)
		if serr != nil {
			closeRefused(b, serr)
		}
	}()
	cres, cerr = clientHandshake(a, client)
	if cerr != nil {
		a.Close()
	}
	<-done
	return
}

func TestHandshake(t *testing.T) {
	base := func(name string) handshakeParams {
		return handshakeParams{name: name, label: "L", maxFrame: 1 << 20}
	}
	keyed := func(name string, ks ...[]byte) handshakeParams {
		p := base(name)
		p.keys = keysOf(ks...)
		return p
	}
	with := func(p handshakeParams, mod func(*handshakeParams)) handshakeParams {
		mod(&p)
		return p
	}
	refuseAdmit := func(status uint8, reason int) func(*handshakeParams) {
		return func(p *handshakeParams) {
			p.admit = func(string) error { return reject(status, reason, ErrHandshake, "test") }
		}
	}
	cases := []struct {
		name           string
		client, server handshakeParams
		wantC, wantS   error
		reason         int // the server's rejection reason
	}{
		{"plain", base("c"), base("s"), nil, nil, 0},
		{"keyed", keyed("c", key1), keyed("s", key1), nil, nil, 0},
		{"server accepts a secondary key", keyed("c", key2), keyed("s", key1, key2), nil, nil, 0},
		{"unknown key", keyed("c", key2), keyed("s", key1), ErrAuth, ErrAuth, rejectAuth},
		{"client has no key", base("c"), keyed("s", key1), ErrAuth, ErrAuth, rejectAuth},
		{"server has no key", keyed("c", key1), base("s"), ErrAuth, ErrAuth, rejectAuth},
		{"label", with(base("c"), func(p *handshakeParams) { p.label = "other" }), base("s"), ErrHandshake, ErrHandshake, rejectLabel},
		{"keyed label", with(keyed("c", key1), func(p *handshakeParams) { p.label = "other" }), keyed("s", key1), ErrHandshake, ErrHandshake, rejectLabel},
		{"own name", base("s"), base("s"), ErrHandshake, ErrHandshake, rejectName},
		{"empty name", base(""), base("s"), ErrHandshake, ErrHandshake, rejectName},
		{"closing", base("c"), with(base("s"), func(p *handshakeParams) { p.closing = func() bool { return true } }), ErrHandshake, ErrClosed, rejectClosing},
		{"source refused", keyed("c", key1), with(keyed("s", key1), func(p *handshakeParams) {
			p.precheck = func() error { return reject(hsNotMember, rejectNotMember, ErrHandshake, "test") }
		}), ErrHandshake, ErrHandshake, rejectNotMember},
		{"not a member", keyed("c", key1), with(keyed("s", key1), refuseAdmit(hsNotMember, rejectNotMember)), ErrHandshake, ErrHandshake, rejectNotMember},
		{"duplicate", base("c"), with(base("s"), refuseAdmit(hsDuplicate, rejectDuplicate)), ErrHandshake, ErrHandshake, rejectDuplicate},
		{"busy", keyed("c", key1), with(keyed("s", key1), refuseAdmit(hsBusy, rejectSessionLimit)), ErrHandshake, ErrHandshake, rejectSessionLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var admitted string
			if tc.server.admit == nil {
				tc.server.admit = func(name string) error { admitted = name; return nil }
			}
			cres, sres, cerr, serr := runHandshake(t, tc.client, tc.server)
			if tc.wantC == nil {
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v", cerr, serr)
				}
				if cres.peer != tc.server.name || sres.peer != tc.client.name || admitted != tc.client.name {
					t.Fatalf("peers %q %q, admitted %q", cres.peer, sres.peer, admitted)
				}
				if cres.keyed != (tc.client.keys != nil) || cres.keyed != sres.keyed || cres.keyID != sres.keyID {
					t.Fatalf("keyed %v/%v ids %x/%x", cres.keyed, sres.keyed, cres.keyID, sres.keyID)
				}
				if cres.maxFrame != tc.server.maxFrame || sres.maxFrame != tc.client.maxFrame {
					t.Fatalf("max frames %d %d", cres.maxFrame, sres.maxFrame)
				}
				return
			}
			if !errors.Is(cerr, tc.wantC) {
				t.Errorf("client error %v, want %v", cerr, tc.wantC)
			}
			if !errors.Is(serr, tc.wantS) {
				t.Errorf("server error %v, want %v", serr, tc.wantS)
			}
			if got := classifyHandshakeError(serr); got != tc.reason {
				t.Errorf("server reason %d, want %d (%v)", got, tc.reason, serr)
			}
			if admitted != "" && tc.reason != rejectNotMember && tc.reason != rejectDuplicate && tc.reason != rejectSessionLimit {
				t.Errorf("admit ran for a client refused before it (%q)", admitted)
			}
		})
	}
}

// The session CipherStates agree: what one side seals the other opens, and
// the two directions use different keys.
func TestHandshakeKeysAgree(t *testing.T) {
	p := func(name string) handshakeParams {
		return handshakeParams{name: name, maxFrame: 1 << 20, keys: keysOf(key1)}
	}
	cres, sres, cerr, serr := runHandshake(t, p("c"), p("s"))
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	msg := []byte("hello")
	for _, pair := range [][2]handshakeResult{{cres, sres}, {sres, cres}} {
		sealed, err := pair[0].send.Encrypt(nil, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pair[1].recv.Decrypt(nil, nil, sealed)
		if err != nil || string(got) != "hello" {
			t.Fatalf("open: %q %v", got, err)
		}
	}
	if cres.send.UnsafeKey() == cres.recv.UnsafeKey() {
		t.Fatal("both directions share a key")
	}
}

// An older (version 1) client is told, in its own layout, that the
// version is not supported: it reads a server hello of 44 bytes with
// status 1.
func TestHandshakeRefusesOldVersion(t *testing.T) {
	a, b := tcpPair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := serverHandshake(b, handshakeParams{name: "s", maxFrame: 1 << 20})
		closeRefused(b, err)
		errc <- err
	}()
	// A version 1 client hello: magic, version 1, flags, max frame, nonce,
	// label, name.
	old := append([]byte("SHDS\x01\x00"), make([]byte, 4+32)...)
	old = append(old, 0, 1, 'c')
	if _, err := a.Write(old); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(a)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if len(answer) != 44 || string(answer[:4]) != "SHDS" || answer[5] != hsVersion {
		t.Fatalf("answer to a version 1 client: %x", answer)
	}
	err = <-errc
	if classifyHandshakeError(err) != rejectVersion {
		t.Fatalf("server: %v", err)
	}
	// The other way round: a version 1 node's refusal of our hello.
	v1Refusal := append([]byte("SHDS\x01\x01\x00"), make([]byte, 4+32+1)...)
	_, err = clientHandshake(rwPair{bytes.NewReader(v1Refusal), io.Discard}, handshakeParams{name: "c", maxFrame: 1 << 20})
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "protocol version 1") {
		t.Fatalf("client answered by a version 1 node: %v", err)
	}
}

// A recorded client hello, replayed, does not open a stream: the replayer
// cannot send the finish that proves it took part in the handshake.
func TestHandshakeReplayedHelloCannotFinish(t *testing.T) {
	p := func(name string) handshakeParams {
		return handshakeParams{name: name, maxFrame: 1 << 20, keys: keysOf(key1)}
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
	hello := rec.out.Bytes()[:rec.out.Len()-tagLen]
	finish := rec.out.Bytes()[rec.out.Len()-tagLen:]

	for _, tail := range [][]byte{finish, make([]byte, tagLen), nil} {
		a, b := tcpPair(t)
		admitted := false
		sp := p("s")
		sp.admit = func(string) error { admitted = true; return nil }
		go func() {
			_, _ = a.Write(append(slicesClone(hello), tail...))
			if tail == nil {
				_ = a.(*net.TCPConn).CloseWrite()
			}
			_, _ = io.Copy(io.Discard, a)
		}()
		_, err := serverHandshake(b, sp)
		if !errors.Is(err, ErrAuth) || classifyHandshakeError(err) != rejectAuth {
			t.Fatalf("replayed hello with finish %x: %v", tail, err)
		}
		if !admitted {
			t.Fatal("the replayed hello did not even pass the key check")
		}
		b.Close()
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// Forward secrecy: someone who records a keyed stream and later obtains
// the cluster key still cannot read it. With the key they can open the
// client hello's payload (NNpsk0 encrypts it under the key alone: it holds
// only the name, label and frame limit), but every key that seals frames
// comes from the two ephemeral keys' Diffie-Hellman, whose private halves
// never leave the two ends. The test plays that attacker with the Noise
// state machine itself: as responder on the recorded client hello, and as
// initiator reading the recorded server hello; both fail. It also checks
// that the ephemeral keys are fresh on every stream (two streams with one
// key share no ephemeral key and no frame key).
func TestHandshakeForwardSecrecy(t *testing.T) {
	p := func(name string) handshakeParams {
		return handshakeParams{name: name, label: "L", maxFrame: 1 << 20, keys: keysOf(key1)}
	}
	secret := []byte("the secret payload")
	type recording struct {
		clientHello, serverHello, frame []byte
		send                            *noise.CipherState
	}
	record := func() recording {
		a, b := tcpPair(t)
		rec := &tap{Conn: a}
		errc := make(chan error, 1)
		var sres handshakeResult
		go func() {
			var err error
			sres, err = serverHandshake(b, p("s"))
			errc <- err
		}()
		cres, err := clientHandshake(rec, p("c"))
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		fw := frameWriter{w: rec, cs: cres.send}
		if _, err := fw.finish(appendPayloads(fw.start(frameBatch), [][]byte{secret})); err != nil {
			t.Fatal(err)
		}
		fr := frameReader{r: b, cs: sres.recv, max: 1 << 20}
		if _, body, _, err := fr.next(); err != nil || !bytes.Contains(body, secret) {
			t.Fatalf("the real peer cannot read the frame: %v", err)
		}
		out := rec.out.Bytes()
		ch, err := readClientHello(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		chLen := len(ch.header) + 2 + len(ch.body)
		return recording{
			clientHello: out[:chLen],
			serverHello: rec.in.Bytes(),
			frame:       out[chLen+tagLen:],
			send:        cres.send,
		}
	}
	r := record()
	if bytes.Contains(r.frame, secret) {
		t.Fatal("the frame is not encrypted")
	}
	ch, err := readClientHello(bytes.NewReader(r.clientHello))
	if err != nil {
		t.Fatal(err)
	}
	sh, err := readServerHello(bytes.NewReader(r.serverHello))
	if err != nil {
		t.Fatal(err)
	}
	opens := func(cs *noise.CipherState) bool {
		fr := frameReader{r: bytes.NewReader(r.frame), cs: cs, max: 1 << 20}
		_, _, _, err := fr.next()
		return err == nil
	}

	// The attacker, key in hand, as the responder to the recorded hello.
	resp, err := newNoise(false, ch.header, pskOf(key1))
	if err != nil {
		t.Fatal(err)
	}
	payload, _, _, err := resp.ReadMessage(nil, ch.body)
	if err != nil {
		t.Fatalf("the key does not open the client hello: %v", err)
	}
	if hp, err := decodeHelloPayload(payload, true); err != nil || hp.name != "c" || hp.label != "L" {
		t.Fatalf("client hello payload %+v, %v", hp, err)
	}
	if _, recv, _, err := resp.WriteMessage(nil, nil); err != nil {
		t.Fatal(err)
	} else if opens(recv) {
		t.Fatal("the attacker's responder keys open the recorded frame")
	}
	// As the initiator: its own ephemeral key cannot read the recorded
	// answer (bound to the real client's).
	init, err := newNoise(true, ch.header, pskOf(key1))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := init.WriteMessage(nil, payload); err != nil {
		t.Fatal(err)
	}
	if _, send, _, err := init.ReadMessage(nil, sh.body); err == nil {
		t.Fatal("the attacker's initiator read the recorded server hello")
	} else if send != nil && opens(send) {
		t.Fatal("the attacker's initiator keys open the recorded frame")
	}
	// Nor does the key itself, or the PSK made from it, seal frames.
	for _, k := range [][]byte{key1, pskOf(key1)} {
		var kk [32]byte
		copy(kk[:], k)
		for n := range uint64(3) {
			if opens(noise.UnsafeNewCipherState(noiseSuite, kk, n)) {
				t.Fatalf("a key made from the cluster key alone opens the frame")
			}
		}
	}

	// Fresh ephemeral keys on every stream.
	r2 := record()
	ch2, _ := readClientHello(bytes.NewReader(r2.clientHello))
	sh2, _ := readServerHello(bytes.NewReader(r2.serverHello))
	if bytes.Equal(ch.body[:dhLen], ch2.body[:dhLen]) || bytes.Equal(sh.body[:dhLen], sh2.body[:dhLen]) {
		t.Fatal("two streams use the same ephemeral key")
	}
	if r.send.UnsafeKey() == r2.send.UnsafeKey() {
		t.Fatal("two streams seal frames with the same key")
	}
}
