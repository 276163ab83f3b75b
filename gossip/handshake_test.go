package gossip

import (
	"errors"
	"net"
	"testing"
)

func keysOf(ks ...[]byte) func() [][]byte { return func() [][]byte { return ks } }

// runHandshake runs both sides over an in-memory connection.
func runHandshake(t *testing.T, client, server handshakeParams) (cres, sres handshakeResult, cerr, serr error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sres, serr = serverHandshake(b, server)
		if serr != nil {
			b.Close()
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
	cases := []struct {
		name           string
		client, server handshakeParams
		wantC, wantS   error
	}{
		{"plain", base("c"), base("s"), nil, nil},
		{"keyed", keyed("c", key1), keyed("s", key1), nil, nil},
		{"server accepts a secondary key", keyed("c", key2), keyed("s", key1, key2), nil, nil},
		{"unknown key", keyed("c", key2), keyed("s", key1), ErrAuth, ErrAuth},
		{"client has no key", base("c"), keyed("s", key1), ErrAuth, ErrAuth},
		{"server has no key", keyed("c", key1), base("s"), ErrAuth, ErrAuth},
		{"label", func() handshakeParams { p := base("c"); p.label = "other"; return p }(), base("s"), ErrHandshake, ErrHandshake},
		{"own name", base("s"), base("s"), ErrHandshake, ErrHandshake},
		{"empty name", base(""), base("s"), ErrHandshake, ErrHandshake},
		{"closing", base("c"), func() handshakeParams { p := base("s"); p.closing = func() bool { return true }; return p }(), ErrHandshake, ErrClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cres, sres, cerr, serr := runHandshake(t, tc.client, tc.server)
			if tc.wantC == nil {
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v", cerr, serr)
				}
				if cres.peer != tc.server.name || sres.peer != tc.client.name {
					t.Fatalf("peers %q %q", cres.peer, sres.peer)
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
		})
	}
}

// The session keys agree: what one side seals the other opens.
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
		sealed := pair[0].send.Seal(nil, gcmNonce(0), msg, nil)
		got, err := pair[1].recv.Open(nil, gcmNonce(0), sealed, nil)
		if err != nil || string(got) != "hello" {
			t.Fatalf("open: %q %v", got, err)
		}
	}
	// The two directions use different keys.
	sealed := cres.send.Seal(nil, gcmNonce(0), msg, nil)
	if _, err := cres.recv.Open(nil, gcmNonce(0), sealed, nil); err == nil {
		t.Fatal("both directions share a key")
	}
}
