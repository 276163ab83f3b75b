package gossip

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 16)
)

func withKeys(keys ...[]byte) func(*Config) {
	return func(c *Config) { c.SecretKeys = keys }
}

// clusterWorks checks that a write on from still reaches to.
func clusterWorks(t *testing.T, from, to *testNode) {
	t.Helper()
	p, err := from.store.write(from.g, []byte("still working"))
	if err != nil {
		t.Fatal(err)
	}
	origin, seq, _ := decodePayload(p)
	eventually(t, 10*time.Second, func() bool { return to.store.has(origin, seq) }, "write from %s did not reach %s", from.cfg.Name, to.cfg.Name)
}

func TestGarbageToGossipPortRejected(t *testing.T) {
	nodes := startCluster(t, 2, nil, nil)
	addr := nodes[0].g.LocalPeer().Addr
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for range 5 {
		if _, err := udp.Write([]byte{0xff, 0xde, 0xad, 0xbe, 0xef}); err != nil {
			t.Fatal(err)
		}
	}
	tcp, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = tcp.Write([]byte{0xfe, 1, 2, 3, 4, 5, 6, 7, 8})
	_, _ = io.Copy(io.Discard, tcp) // memberlist answers with an error, then closes
	tcp.Close()
	eventually(t, 10*time.Second, func() bool {
		return nodes[0].g.Stats().Rejected["gossip_malformed"] >= 6
	}, "garbage to the gossip port not counted: %v", nodes[0].g.Stats().Rejected)
	clusterWorks(t, nodes[1], nodes[0])
	clusterWorks(t, nodes[0], nodes[1])
}

func TestGarbageToDataPortRejected(t *testing.T) {
	nodes := startCluster(t, 2, nil, func(c *Config) { c.Label = "prod" })
	target := nodes[0]
	dataAddr := target.g.LocalPeer().DataAddr
	rejected := func(reason string) uint64 { return target.g.Stats().Rejected[reason] }

	// Not a shoal stream at all.
	c, err := net.Dial("tcp", dataAddr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n0123456789abcdef"))
	_, _ = io.Copy(io.Discard, c)
	c.Close()
	eventually(t, 5*time.Second, func() bool { return rejected("data_handshake") >= 1 }, "HTTP request not rejected")

	// Another cluster label.
	c, err = net.Dial("tcp", dataAddr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = clientHandshake(c, handshakeParams{name: "n1", label: "staging", maxFrame: 1 << 20})
	c.Close()
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("handshake with another label: %v", err)
	}
	eventually(t, 5*time.Second, func() bool { return rejected("data_label") >= 1 }, "label mismatch not counted")

	// A member (a ghost: no stream of its own) that sends garbage instead
	// of a frame.
	startGhost(t, "ghost", "127.0.0.1", nil, "prod", target)
	rc, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = rc.conn.Write([]byte{0, 0, 0, 5, 9, 9, 9, 9, 9})
	_, _ = io.Copy(io.Discard, rc.conn) // the node closes the stream
	eventually(t, 5*time.Second, func() bool { return rejected("data_frame") >= 1 }, "bad frame not counted")

	// A frame length beyond the limit is refused at once.
	eventually(t, 5*time.Second, func() bool { return len(sessionsWith(target, "ghost", true)) == 0 }, "the ghost's stream is still registered")
	rc, err = rawDial(t, target, "ghost", "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = rc.conn.Write([]byte{0xff, 0xff, 0xff, 0xff})
	_, _ = io.Copy(io.Discard, rc.conn)
	eventually(t, 5*time.Second, func() bool { return rejected("data_frame") >= 2 }, "oversized frame not counted")

	clusterWorks(t, nodes[1], nodes[0])
	clusterWorks(t, nodes[0], nodes[1])
}

func TestEncryptedClusterReplicates(t *testing.T) {
	nodes := startCluster(t, 3, nil, withKeys(key1))
	for _, nd := range nodes {
		for i := range 20 {
			if _, err := nd.store.write(nd.g, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitConverged(t, 10*time.Second, nodes, 60)
	for _, nd := range nodes {
		nd.g.mu.RLock()
		for s := range nd.g.sessions {
			if !s.res.keyed {
				t.Errorf("%s: session with %s is not encrypted", nd.cfg.Name, s.peer.Name)
			}
		}
		nd.g.mu.RUnlock()
	}
}

func TestWrongKeyRejected(t *testing.T) {
	nodes := startCluster(t, 2, nil, withKeys(key1))
	target := nodes[0]

	// A node with another key cannot join: memberlist refuses its packets.
	intruder := startNode(t, "intruder", nil, withKeys(key2))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := intruder.g.Join(ctx, target.g.LocalPeer().Addr); err == nil {
		t.Fatal("a node with the wrong key joined")
	}
	eventually(t, 5*time.Second, func() bool {
		return target.g.Stats().Rejected["gossip_decrypt"] >= 1
	}, "wrong-key gossip not counted: %v", target.g.Stats().Rejected)

	// Nor can it open a data stream to push deltas: wrong key, or no key
	// (here even under the name and from the address of a member).
	for _, keys := range [][][]byte{{key2}, nil} {
		c, err := net.Dial("tcp", target.g.LocalPeer().DataAddr)
		if err != nil {
			t.Fatal(err)
		}
		p := handshakeParams{name: "n1", maxFrame: 1 << 20}
		if keys != nil {
			p.keys = func() [][]byte { return keys }
		}
		_, err = clientHandshake(c, p)
		c.Close()
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("handshake with keys %v: %v, want ErrAuth", keys != nil, err)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		return target.g.Stats().Rejected["data_auth"] >= 2
	}, "wrong-key data streams not counted: %v", target.g.Stats().Rejected)

	// A client that names our key but cannot prove it holds it (its Noise
	// message is made with another key) is refused too.
	c, err := net.Dial("tcp", target.g.LocalPeer().DataAddr)
	if err != nil {
		t.Fatal(err)
	}
	header := encodeClientHeader(true, keyIDOf(key1))
	hs, err := newNoise(true, header, pskOf(key2))
	if err != nil {
		t.Fatal(err)
	}
	msg, _, _, err := hs.WriteMessage(nil, helloPayload{maxFrame: 1 << 20, name: "n1"}.encode(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(appendBody(header, msg)); err != nil {
		t.Fatal(err)
	}
	if sh, err := readServerHello(c); err != nil || sh.status != hsKey {
		t.Fatalf("forged key proof answered with %+v, %v", sh, err)
	}
	c.Close()
	eventually(t, 5*time.Second, func() bool {
		return target.g.Stats().Rejected["data_auth"] >= 3
	}, "forged key proof not counted: %v", target.g.Stats().Rejected)

	for _, m := range target.g.Members() {
		if m.Name == "intruder" {
			t.Fatalf("intruder listed as a member: %+v", m)
		}
	}
	clusterWorks(t, nodes[1], nodes[0])
}

func TestLabelSeparatesClusters(t *testing.T) {
	a := startNode(t, "a", nil, func(c *Config) { c.Label = "blue" })
	b := startNode(t, "b", nil, func(c *Config) { c.Label = "green" })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.g.Join(ctx, a.g.LocalPeer().Addr); err == nil {
		t.Fatal("nodes with different labels joined")
	}
	eventually(t, 5*time.Second, func() bool {
		return a.g.Stats().Rejected["gossip_label"] >= 1
	}, "label mismatch not counted: %v", a.g.Stats().Rejected)
}

// Rotating the key (install everywhere, use everywhere, remove the old one
// everywhere) keeps the cluster replicating, and afterwards a node holding
// only the new key can join.
func TestKeyRotation(t *testing.T) {
	nodes := startCluster(t, 3, nil, withKeys(key1))
	for _, nd := range nodes {
		if err := nd.g.InstallKey(key2); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		if err := nd.g.UseKey(key2); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		if err := nd.g.RemoveKey(key1); err != nil {
			t.Fatal(err)
		}
	}
	// Sessions keyed with the removed key are closed and leave the map in
	// their own time (finish): wait for the condition, not for a moment.
	oldKeySessions := func() string {
		var with []string
		for _, nd := range nodes {
			nd.g.mu.RLock()
			for s := range nd.g.sessions {
				if s.res.keyID != keyIDOf(key2) {
					with = append(with, nd.cfg.Name)
				}
			}
			nd.g.mu.RUnlock()
		}
		return strings.Join(with, ", ")
	}
	eventually(t, 20*time.Second, func() bool { return oldKeySessions() == "" },
		"sessions still use the removed key")
	waitConnected(t, nodes)
	if on := oldKeySessions(); on != "" {
		t.Fatalf("after reconnecting, sessions on %s use the removed key", on)
	}
	clusterWorks(t, nodes[0], nodes[2])
	late := startNode(t, "late", nil, withKeys(key2))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := late.g.Join(ctx, nodes[1].g.LocalPeer().Addr); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, append(nodes, late))
	clusterWorks(t, late, nodes[0])

	unkeyed := startNode(t, "plain", nil, nil)
	if err := unkeyed.g.InstallKey(key2); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("InstallKey without a keyring: %v", err)
	}
}
