package gossip

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileKind is one way of abusing a data port.
type hostileKind int

const (
	hostileSilent     hostileKind = iota // connect and say nothing
	hostileGarbage                       // random bytes
	hostileHugeHello                     // a hello header announcing the largest body, then nothing
	hostileHalfHello                     // a hello cut short
	hostileOldVersion                    // a version 1 hello
	hostileNoiseStall                    // (member address, key held) a complete client hello, no finish
	hostileWrongKey                      // (member address) a hello made with another key
	hostileHugeFrame                     // (member address, key held) a full handshake, then a maximal frame's length word
	numHostileKinds
)

var hostileNames = [numHostileKinds]string{"silent", "garbage", "huge hello", "half hello", "old version", "noise stall", "wrong key", "huge frame"}

// hostile runs one hostile connection from ip to the target's data port
// until ctx is done: it connects, misbehaves, waits for the node to close
// the connection, and connects again (after 0.5-1 s).
func hostile(ctx context.Context, kind hostileKind, ip, addr, ghost string, opened *atomic.Int64) {
	buf := make([]byte, 512)
	for ctx.Err() == nil {
		c, err := dialFrom(ip, addr)
		if err == nil {
			opened.Add(1)
			stop := context.AfterFunc(ctx, func() { c.Close() })
			misbehave(c, kind, ghost)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			stop()
			c.Close()
		}
		if !waitCtx(ctx, 500*time.Millisecond+rand.N(500*time.Millisecond)) {
			return
		}
	}
}

func misbehave(c net.Conn, kind hostileKind, ghost string) {
	keyed := encodeClientHeader(true, keyIDOf(key1))
	switch kind {
	case hostileSilent:
	case hostileGarbage:
		junk := make([]byte, 64+rand.N(512))
		for i := range junk {
			junk[i] = byte(rand.N(256))
		}
		_, _ = c.Write(junk)
	case hostileHugeHello:
		_, _ = c.Write(binary.BigEndian.AppendUint16(keyed, 0xffff))
	case hostileHalfHello:
		_, _ = c.Write(append(binary.BigEndian.AppendUint16(keyed, maxHelloBody), make([]byte, 40)...))
	case hostileOldVersion:
		_, _ = c.Write(append([]byte("SHDS\x01\x01"), make([]byte, 60)...))
	case hostileNoiseStall, hostileWrongKey:
		key := key1
		if kind == hostileWrongKey {
			key = key2
		}
		hs, err := newNoise(true, keyed, pskOf(key))
		if err != nil {
			return
		}
		msg, _, _, err := hs.WriteMessage(nil, helloPayload{maxFrame: 1 << 20, name: ghost}.encode(true))
		if err != nil {
			return
		}
		_, _ = c.Write(appendBody(keyed, msg))
	case hostileHugeFrame:
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		res, err := clientHandshake(c, handshakeParams{name: ghost, maxFrame: 1 << 20, keys: keysOf(key1)})
		_ = c.SetDeadline(time.Time{})
		if err != nil {
			return
		}
		fw := frameWriter{w: c, cs: res.send}
		b := fw.start(frameBatch)
		b = append(b, make([]byte, 1000)...)
		// The length word of a maximal sealed frame, then one frame's worth
		// of bytes short of it: the node waits for the rest.
		word := binary.BigEndian.AppendUint32(nil, uint32(DefaultLANConfig().MaxFrameBytes))
		_, _ = c.Write(append(word, b[frameLenSize:]...))
	}
}

// A keyed node under 1,000 hostile connections (silent, garbage, huge
// length words, half handshakes, and with the key from a member's address:
// stalled Noise handshakes and stalled maximal frames; every one reconnects
// when closed) keeps its heap bounded, keeps delivering pushes between
// real peers, and lets a new keyed peer join and catch up.
func TestHostileConnectionsStress(t *testing.T) {
	duration := 20 * time.Second
	if testing.Short() {
		duration = 5 * time.Second
	}
	nodes := startCluster(t, 2, nil, func(c *Config) {
		c.SecretKeys = [][]byte{key1}
		if c.Name == "n0" { // logging on, so that the rate limit works under load
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
	})
	target, peer := nodes[0], nodes[1]
	// A member on an address of its own, whose data streams the attackers
	// impersonate (they hold the key): they get past the address check.
	const ghostIP = "127.0.3.1"
	startGhost(t, "ghost", ghostIP, [][]byte{key1}, "", target)
	ghostAt(t, target, "ghost", ghostIP)

	base := heapInuse()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var opened atomic.Int64
	defer func() {
		cancel()
		wg.Wait()
	}()
	const connections = 1000
	for i := range connections {
		// Five in twelve are silent (from 40 addresses: more than the
		// pending bounds hold), the rest of each other kind.
		kind := hostileSilent
		if k := i % 12; k >= 5 {
			kind = hostileKind(k - 4)
		}
		ip := "127.0.2." + strconv.Itoa(1+i%40)
		if kind >= hostileNoiseStall {
			ip = ghostIP
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Open in waves of 100 over the first second.
			if !waitCtx(ctx, time.Duration(i/100)*100*time.Millisecond) {
				return
			}
			hostile(ctx, kind, ip, target.g.LocalPeer().DataAddr, "ghost", &opened)
		}()
	}

	// Pushes between the real peers, both ways, every 10 ms.
	var written atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			for _, nd := range nodes {
				if _, err := nd.store.write(nd.g, fmt.Appendf(nil, "stress-%d", i)); err != nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
					return
				}
			}
			written.Add(1)
		}
	}()

	// While the attack lasts: the heap stays bounded, and every write
	// reaches the other peer within 5 s.
	var maxGrowth int64
	start := time.Now()
	joined := false
	var late *testNode
	for time.Since(start) < duration {
		if w := uint64(written.Load()); w > 0 {
			eventually(t, 5*time.Second, func() bool {
				return target.store.has("n1", w) && peer.store.has("n0", w)
			}, "write %d not delivered during the attack", w)
		}
		if g := int64(heapInuse()) - int64(base); g > maxGrowth {
			maxGrowth = g
		}
		if !joined && time.Since(start) > duration/2 {
			joined = true
			late = startNode(t, "late", nil, withKeys(key1))
			jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := late.g.Join(jctx, peer.g.LocalPeer().Addr); err != nil {
				t.Fatal(err)
			}
			jcancel()
			waitConnected(t, []*testNode{target, peer, late})
		}
		waitCtx(context.Background(), 250*time.Millisecond)
	}
	st := target.g.Stats()
	cancel()
	wg.Wait()
	t.Logf("%d hostile connections opened in %v (%d at once); heap in use grew by at most %d MiB; %d writes each way delivered; target stats: pending %d, sessions %d, refused %v, log lines suppressed %d",
		opened.Load(), duration, connections, maxGrowth>>20, written.Load(), st.PendingHandshakes, st.Sessions, st.Rejected, st.LogSuppressed)
	if maxGrowth > 256<<20 {
		t.Fatalf("heap in use grew by %d MiB under attack", maxGrowth>>20)
	}
	if st.PendingHandshakes > int64(target.g.cfg.MaxPendingHandshakes) {
		t.Fatalf("%d handshakes pending", st.PendingHandshakes)
	}
	// The late peer holds everything.
	defer func() {
		if t.Failed() {
			for _, nd := range []*testNode{target, peer, late} {
				st := nd.g.Stats()
				t.Logf("%s: pulls %d/%d failed, serves %d/%d failed, dropped %d, unconnected %d, idle closed %d, serve timeouts %d, sched idle %v",
					nd.cfg.Name, st.PullsCompleted, st.PullsFailed, st.ServesCompleted, st.ServesFailed, st.QueueDropped, st.Unconnected, st.IdleClosed, st.ServeTimeouts, nd.g.sched.idle())
			}
		}
	}()
	waitConverged(t, 30*time.Second, []*testNode{target, peer, late}, 2*int(written.Load()))
	if late.store.count() < 2*int(written.Load()) {
		t.Fatalf("the late peer holds %d payloads of %d", late.store.count(), 2*written.Load())
	}
}

// ghostAt waits until node sees the member name at ip.
func ghostAt(t testing.TB, nd *testNode, name, ip string) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		for _, m := range nd.g.Members() {
			if m.Name == name && peerAt(m.Peer, net.ParseIP(ip)) {
				return true
			}
		}
		return false
	}, "%s does not see %s at %s", nd.cfg.Name, name, ip)
}
