package gossip

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// pullDigestStore asks each peer for something of its own: its pull
// digest names the peer.
type pullDigestStore struct{ *testStore }

func (s *pullDigestStore) PullDigest(to Peer) []byte {
	s.mu.Lock()
	v := s.vv()
	s.mu.Unlock()
	v["for-"+to.Name] = 1
	return encodeVV(v)
}

// servedStore records the digests of the requests it serves.
type servedStore struct {
	*testStore
	mu2  sync.Mutex
	seen []map[string]uint64
}

func (s *servedStore) Serve(ctx context.Context, to Peer, digest []byte, w *SyncWriter) error {
	s.mu2.Lock()
	s.seen = append(s.seen, decodeVV(digest))
	s.mu2.Unlock()
	return s.testStore.Serve(ctx, to, digest, w)
}

// A handler that implements PullDigester sends PullDigest(peer), not
// Digest, with its pulls.
func TestPullDigester(t *testing.T) {
	mod := func(c *Config) { c.AntiEntropyInterval = time.Hour }
	start := func(name string, h func(*testStore) Handler) *testNode {
		c := testConfig(name, nil)
		mod(c)
		st := newTestStore(name)
		g, err := New(c, h(st))
		if err != nil {
			t.Fatalf("New(%s): %v", name, err)
		}
		t.Cleanup(func() { _ = g.Close() })
		return &testNode{g: g, store: st, cfg: c}
	}
	server := &servedStore{}
	nodes := []*testNode{
		start("n0", func(st *testStore) Handler { return &pullDigestStore{st} }),
		start("n1", func(st *testStore) Handler { server.testStore = st; return server }),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nodes[1].g.Join(ctx, nodes[0].g.LocalPeer().Addr); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, nodes)
	if err := nodes[0].g.Sync(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	server.mu2.Lock()
	defer server.mu2.Unlock()
	if len(server.seen) == 0 {
		t.Fatal("n1 served no request")
	}
	for _, d := range server.seen {
		if d["for-n1"] != 1 {
			t.Fatalf("n1 served a request with digest %v, not n0's PullDigest(n1)", fmt.Sprint(d))
		}
	}
}
