package gossip_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shoaldb/shoal/gossip"
)

// printer is a minimal Handler: it prints what it receives. A real handler
// (shoal's node) makes payloads durable and answers anti-entropy requests.
type printer struct {
	name string
	got  chan string
}

func (p *printer) Deliver(from gossip.Peer, src gossip.Source, payloads [][]byte) error {
	for _, b := range payloads {
		p.got <- fmt.Sprintf("%s got %q from %s", p.name, b, from.Name)
	}
	return nil
}
func (p *printer) Digest() []byte                        { return nil }
func (p *printer) PeerDigest(from gossip.Peer, d []byte) {}
func (p *printer) PeerJoined(gossip.Peer)                {}
func (p *printer) PeerLeft(gossip.Peer)                  {}
func (p *printer) Serve(context.Context, gossip.Peer, []byte, *gossip.SyncWriter) error {
	return nil
}

func Example() {
	start := func(name string) (*gossip.Gossip, *printer) {
		cfg := gossip.DefaultLocalConfig() // 127.0.0.1, free ports
		cfg.Name = name
		h := &printer{name: name, got: make(chan string, 1)}
		g, err := gossip.New(cfg, h)
		if err != nil {
			panic(err)
		}
		return g, h
	}
	a, _ := start("a")
	defer a.Close()
	b, hb := start("b")
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Join(ctx, a.LocalPeer().Addr); err != nil {
		panic(err)
	}
	// Wait until a has a data stream to b, then push.
	for {
		ms := a.Members()
		if len(ms) == 2 && ms[1].Connected {
			break
		}
		select {
		case <-ctx.Done():
			panic("no stream")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := a.Broadcast("", []byte("hello")); err != nil {
		panic(err)
	}
	fmt.Println(<-hb.got)
	// Output: b got "hello" from a
}
