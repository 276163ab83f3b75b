package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The tests in this file play an attacker against a node's data port and
// gossip port, one finding each: what a client that is not a member can do
// (nothing), what a key holder can claim (only its own name), and what the
// node holds for anyone (bounded).

// keyedMod returns a Config change: the cluster key when keyed, and mod.
func keyedMod(keyed bool, mod func(*Config)) func(*Config) {
	return func(c *Config) {
		if keyed {
			c.SecretKeys = [][]byte{key1}
		}
		if mod != nil {
			mod(c)
		}
	}
}

func clusterKeys(keyed bool) [][]byte {
	if keyed {
		return [][]byte{key1}
	}
	return nil
}

// A client that is no member gets no data stream, keyed cluster or not,
// even holding the key: it can neither push nor pull, and the refusal is
// counted and logged. A member's name from another address is no better.
func TestNonMemberCannotSyncOrPush(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			logs := newLogCapture()
			nodes := startCluster(t, 3, nil, keyedMod(keyed, func(c *Config) {
				if c.Name == "n0" {
					c.Logger = slog.New(logs)
				}
			}))
			target := nodes[0]
			// n2 departs: its name is no longer a member's.
			lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer lcancel()
			if err := nodes[2].g.Leave(lctx); err != nil {
				t.Fatal(err)
			}
			_ = nodes[2].g.Close()
			nodes = nodes[:2]
			eventually(t, 10*time.Second, func() bool {
				for _, m := range target.g.Members() {
					if m.Name == "n2" {
						return m.State != StateAlive && len(sessionsWith(target, "n2", true)) == 0
					}
				}
				return false
			}, "n0 does not see n2 gone")
			for _, nd := range nodes {
				eventually(t, 10*time.Second, func() bool { return nd.g.sched.idle() }, "connect-time pulls did not finish")
			}
			servesBefore := target.g.Stats().ServesCompleted + target.g.Stats().ServesFailed
			for _, a := range []struct{ name, from string }{
				{"intruder", "127.0.0.1"}, // no member of that name
				{"n2", "127.0.0.1"},       // a departed member's name, from its address
				{"n1", "127.0.0.2"},       // a member's name, not at its address
			} {
				conn, err := dialFrom(a.from, target.g.LocalPeer().DataAddr)
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				p := handshakeParams{name: a.name, maxFrame: 1 << 20}
				if keyed {
					p.keys = keysOf(key1)
				}
				_, err = clientHandshake(conn, p)
				if !errors.Is(err, ErrHandshake) {
					t.Fatalf("%s from %s: handshake %v, want a refusal", a.name, a.from, err)
				}
				// Push and pull anyway, as an old peer would: nothing is
				// delivered, and nothing comes back but the end of the stream.
				fw := frameWriter{w: conn}
				_, _ = fw.finish(appendPayloads(fw.start(frameBatch), [][]byte{encodePayload("intruder", 1, []byte("evil"))}))
				_, _ = fw.finish(appendSyncRequest(fw.start(frameSyncRequest), 1, 4, nil))
				fr := frameReader{r: conn, max: 1 << 20}
				if typ, _, _, err := fr.next(); err == nil {
					t.Fatalf("%s from %s got a %s frame", a.name, a.from, typ)
				}
				conn.Close()
			}
			eventually(t, 10*time.Second, func() bool { return target.g.Stats().Rejected["data_not_member"] >= 3 },
				"refusals not counted: %v", target.g.Stats().Rejected)
			st := target.g.Stats()
			if target.store.has("intruder", 1) {
				t.Fatal("the push was delivered")
			}
			if n := st.ServesCompleted + st.ServesFailed; n != servesBefore {
				t.Fatalf("%d sync requests served", n-servesBefore)
			}
			if len(sessionsWith(target, "intruder", true)) != 0 {
				t.Fatal("a session with the intruder exists")
			}
			refusalLogs := func() int {
				return len(logs.matching(func(l logLine) bool {
					return l.msg == "gossip: data stream refused" && l.attrs["reason"] == "data_not_member" && l.attrs["remote"] == "127.0.0.2"
				}))
			}
			eventually(t, 10*time.Second, func() bool { return refusalLogs() == 1 }, "refusal from 127.0.0.2 logged %d times, want once", refusalLogs())
			clusterWorks(t, nodes[1], nodes[0])
		})
	}
}

// A client under a live peer's name, from that peer's address (holding
// the key, in a keyed cluster), is refused and does not close the peer's
// stream: the stream is probed, answers, and keeps carrying pushes.
func TestImpostorDoesNotCloseLiveStream(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			nodes := startCluster(t, 2, nil, keyedMod(keyed, func(c *Config) { c.IdleTimeout = time.Hour }))
			target := nodes[0]
			// n1 counts its stream as up once it sent its finish; n0 once it
			// read it.
			eventually(t, 10*time.Second, func() bool { return len(sessionsWith(target, "n1", true)) == 1 }, "no inbound stream from n1")
			before := sessionsWith(target, "n1", true)
			pongs := func() uint64 { return target.g.Stats().BytesReceived["pong"] }
			pongsBefore := pongs()
			for range 5 {
				if _, err := rawDial(t, target, "n1", "127.0.0.1", clusterKeys(keyed)); !errors.Is(err, ErrHandshake) {
					t.Fatalf("impostor handshake: %v, want a refusal", err)
				}
			}
			eventually(t, 10*time.Second, func() bool { return target.g.Stats().Rejected["data_duplicate"] >= 5 },
				"duplicate refusals not counted: %v", target.g.Stats().Rejected)
			// The probe went out and n1 answered it.
			eventually(t, 10*time.Second, func() bool { return pongs() > pongsBefore }, "the live stream was not probed")
			after := sessionsWith(target, "n1", true)
			if len(after) != 1 || after[0] != before[0] || after[0].ctx.Err() != nil {
				t.Fatal("n1's stream was replaced or closed")
			}
			if n := target.g.Stats().IdleClosed; n != 0 {
				t.Fatalf("%d streams closed as idle", n)
			}
			clusterWorks(t, nodes[1], nodes[0])
			if after := sessionsWith(target, "n1", true); len(after) != 1 || after[0] != before[0] {
				t.Fatal("n1's stream was replaced")
			}
		})
	}
}

// A peer that reconnects while its old stream looks open (a restarted
// node whose old connection was never closed) gets in once the old stream
// fails the probe its new attempt triggers; a live one stays.
func TestStaleStreamGivesWayToReconnect(t *testing.T) {
	target := startNode(t, "n0", nil, func(c *Config) {
		c.IdleTimeout = time.Hour // only probes ping
		c.PingTimeout = 300 * time.Millisecond
	})
	startGhost(t, "ghost", "127.0.0.1", nil, "", target)

	// A live stream (it answers pings) is not displaced.
	live, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := live.next(time.Hour); err != nil {
				return
			}
		}
	}()
	pongs := func() uint64 { return target.g.Stats().BytesReceived["pong"] }
	// The server answers the handshake before it registers the stream.
	registered := func() {
		eventually(t, 10*time.Second, func() bool { return len(sessionsWith(target, "ghost", true)) == 1 }, "the stream was not registered")
	}
	registered()
	if _, err := rawDial(t, target, "ghost", "127.0.0.1", nil); !errors.Is(err, ErrHandshake) {
		t.Fatalf("second stream under a live name: %v", err)
	}
	eventually(t, 10*time.Second, func() bool { return pongs() >= 1 }, "the live stream was not probed")
	if got := sessionsWith(target, "ghost", true); len(got) != 1 || got[0].ctx.Err() != nil {
		t.Fatal("the live stream was closed")
	}
	live.conn.Close()
	<-done
	eventually(t, 10*time.Second, func() bool { return len(sessionsWith(target, "ghost", true)) == 0 }, "closed stream still registered")

	// A stale one (it never reads again) is closed after PingTimeout, and
	// the reconnecting peer gets in.
	stale, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = stale
	registered()
	if _, err := rawDial(t, target, "ghost", "127.0.0.1", nil); !errors.Is(err, ErrHandshake) {
		t.Fatalf("second stream: %v", err)
	}
	eventually(t, 10*time.Second, func() bool { return target.g.Stats().IdleClosed >= 1 }, "the stale stream was not closed")
	eventually(t, 10*time.Second, func() bool {
		c, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
		if err == nil {
			c.conn.Close()
		}
		return err == nil
	}, "the reconnecting peer does not get in")
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	return n, err
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Forty streams that each send the length word of a maximal frame and one
// byte of it do not make the node allocate forty maximal frames: a frame's
// buffer grows with the bytes that arrive. (Such streams can only come from
// members now; the test opens them below the handshake.)
func TestHugeLengthWordsDoNotGrowHeap(t *testing.T) {
	nd := startNode(t, "n0", nil, nil)
	const streams = 40
	var clients []net.Conn
	var readers []*session
	for i := range streams {
		a, b := tcpPair(t)
		_ = a.SetDeadline(time.Time{})
		_ = b.SetDeadline(time.Time{})
		name := "p" + strconv.Itoa(i)
		s := nd.g.newSession(b, Peer{Name: name}, handshakeResult{peer: name, maxFrame: 1 << 20}, false)
		s.addrKey = name
		if err := nd.g.register(s); err != nil {
			t.Fatal(err)
		}
		s.start(nil)
		clients = append(clients, a)
		readers = append(readers, s)
	}
	before := heapInuse()
	word := []byte{0, 0, 0, 0, protocolVersion}
	putUint32 := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	putUint32(word, uint32(nd.g.cfg.MaxFrameBytes))
	for _, c := range clients {
		if _, err := c.Write(word); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool {
		for _, s := range readers {
			if s.fr.got.Load() < 1 {
				return false
			}
		}
		return true
	}, "the streams' readers did not take the frames' first byte")
	after := heapInuse()
	growth := int64(after) - int64(before)
	t.Logf("heap in use grew by %d KiB for %d streams each announcing a %d-byte frame", growth>>10, streams, nd.g.cfg.MaxFrameBytes)
	if limit := int64(streams) * 512 << 10; growth > limit {
		t.Fatalf("heap grew by %d MiB (limit %d MiB)", growth>>20, limit>>20)
	}
	for _, c := range clients {
		c.Close()
	}
	eventually(t, 10*time.Second, func() bool { return nd.g.Stats().Sessions == 0 }, "sessions not closed")
}

// Connections that open and say nothing, refreshed as the node closes
// them, do not keep a real peer from connecting: they hold a pending
// handshake for HandshakeTimeout at most, eight per address, and at the
// total bound the busiest address gives way.
func TestSilentConnectionsDoNotBlockHandshakes(t *testing.T) {
	nodes := startCluster(t, 2, nil, withKeys(key1))
	target := nodes[0]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const attackers, addrs = 300, 60
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			silentAttacker(ctx, "127.0.1."+strconv.Itoa(1+i%addrs), target.g.LocalPeer().DataAddr)
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	eventually(t, 20*time.Second, func() bool {
		return target.g.Stats().PendingHandshakes >= int64(target.g.cfg.MaxPendingHandshakes)*9/10
	}, "the attack does not fill the pending handshakes: %d", target.g.Stats().PendingHandshakes)

	late := startNode(t, "late", nil, withKeys(key1))
	jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer jcancel()
	if _, err := late.g.Join(jctx, nodes[1].g.LocalPeer().Addr); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, append(nodes, late))
	clusterWorks(t, late, target)
	clusterWorks(t, target, late)
	st := target.g.Stats()
	t.Logf("pending %d, refused %v", st.PendingHandshakes, st.Rejected)
	if st.PendingHandshakes > int64(target.g.cfg.MaxPendingHandshakes) {
		t.Fatalf("%d handshakes pending, bound %d", st.PendingHandshakes, target.g.cfg.MaxPendingHandshakes)
	}
	if st.Rejected["data_overload"] == 0 {
		t.Fatal("no connection was refused or evicted")
	}
}

// silentAttacker keeps a connection from ip to addr open, saying nothing,
// and opens a new one (at most every 300 ms) when the node closes it.
func silentAttacker(ctx context.Context, ip, addr string) {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		if c, err := dialFrom(ip, addr); err == nil {
			stop := context.AfterFunc(ctx, func() { c.Close() })
			_, _ = io.Copy(io.Discard, c)
			stop()
			c.Close()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// The session bounds hold: in all, and per source address.
func TestSessionBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"total", func(c *Config) { c.MaxInboundSessions = 1 }},
		{"per address", func(c *Config) { c.MaxSessionsPerAddr = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := startNode(t, "n0", nil, tc.mod)
			others := []*testNode{startNode(t, "n1", nil, nil), startNode(t, "n2", nil, nil)}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, o := range others {
				if _, err := o.g.Join(ctx, target.g.LocalPeer().Addr); err != nil {
					t.Fatal(err)
				}
			}
			inbound := func() int {
				target.g.mu.RLock()
				defer target.g.mu.RUnlock()
				return len(target.g.inbound)
			}
			// Both peers keep dialing; one gets in, the other is refused
			// again and again.
			eventually(t, 20*time.Second, func() bool {
				return inbound() == 1 && target.g.Stats().Rejected["data_session_limit"] >= 3
			}, "inbound %d, refused %v", inbound(), target.g.Stats().Rejected)
			if n := inbound(); n != 1 {
				t.Fatalf("%d inbound streams, bound 1", n)
			}
		})
	}
}

// An idle stream whose peer answers pings stays up; one whose peer went
// silent is closed after IdleTimeout + PingTimeout.
func TestIdleStreams(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		nodes := startCluster(t, 2, nil, func(c *Config) {
			c.IdleTimeout = 100 * time.Millisecond
			c.PingTimeout = 5 * time.Second
			c.AntiEntropyInterval = time.Hour
		})
		before := [2][]*session{sessionsWith(nodes[0], "n1", false), sessionsWith(nodes[1], "n0", false)}
		// Ping and pong frames are 6 bytes. On each stream, the side whose
		// timer fires first pings (the other then hears from it).
		eventually(t, 20*time.Second, func() bool {
			var pings, pongs uint64
			for _, nd := range nodes {
				st := nd.g.Stats()
				pings += st.BytesSent["ping"] / 6
				pongs += st.BytesReceived["pong"] / 6
			}
			return pings >= 10 && pongs >= 10
		}, "idle streams not pinged")
		after := [2][]*session{sessionsWith(nodes[0], "n1", false), sessionsWith(nodes[1], "n0", false)}
		for i := range before {
			if len(after[i]) != 1 || after[i][0] != before[i][0] || nodes[i].g.Stats().IdleClosed != 0 {
				t.Fatalf("%s: a pinged stream was closed", nodes[i].cfg.Name)
			}
		}
	})
	t.Run("silent", func(t *testing.T) {
		target := startNode(t, "n0", nil, func(c *Config) {
			c.IdleTimeout = 200 * time.Millisecond
			c.PingTimeout = 200 * time.Millisecond
		})
		startGhost(t, "ghost", "127.0.0.1", nil, "", target)
		c, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c // never reads again
		eventually(t, 10*time.Second, func() bool {
			return target.g.Stats().IdleClosed == 1 && len(sessionsWith(target, "ghost", true)) == 0
		}, "the silent stream is still open")
	})
}

// A requester gets one serve per stream at a time (a few more requests
// wait their turn, more are refused), so one peer cannot take every serve
// slot; and a serve whose requester stops crediting is canceled after
// ServeCreditTimeout, freeing its slot for the next.
func TestServeBounds(t *testing.T) {
	nodes := startCluster(t, 2, nil, func(c *Config) {
		c.AntiEntropyInterval = time.Hour
		c.MaxConcurrentServes = 2
		c.ServeCreditTimeout = 500 * time.Millisecond
		c.SyncChunkBytes = 4 << 10
	})
	target := nodes[0]
	for _, nd := range nodes {
		eventually(t, 10*time.Second, func() bool { return nd.g.sched.idle() }, "connect-time pulls did not finish")
	}
	// n0 holds 100 payloads of 1 KiB that nobody else has.
	for i := range 100 {
		s := target.store
		s.mu.Lock()
		s.seq++
		s.put("n0", s.seq, encodePayload("n0", s.seq, make([]byte, 1000+i)))
		s.mu.Unlock()
	}
	startGhost(t, "ghost", "127.0.0.1", nil, "", target)
	c, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Requests on one stream, window 1, and never a credit: the first is
	// served, the next maxWaitingServes wait, the last is refused.
	const requests = 2 + maxWaitingServes
	for id := uint64(1); id <= requests; id++ {
		if err := c.send(t, frameSyncRequest, appendSyncRequest(nil, id, 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	ended := map[uint64]uint8{}
	current := uint64(1) // the request being served
	for current <= 2 {
		f, err := c.next(10 * time.Second)
		if err != nil {
			t.Fatalf("ended %v: %v", ended, err)
		}
		switch f.typ {
		case frameSyncEnd:
			ended[f.id] = f.status
			if f.id == current {
				current++
			}
		case frameSyncData:
			if f.id != current {
				t.Fatalf("data for request %d while %d is served", f.id, current)
			}
			if f.id == 1 {
				// That serve holds one slot, waiting for credit (the
				// requests behind it hold none): another peer still gets
				// served.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := nodes[1].g.Sync(ctx, "n0")
				cancel()
				if err != nil {
					t.Fatalf("another peer's sync while one stream waits for credit: %v", err)
				}
			}
		}
	}
	if ended[requests] != syncBusy || ended[1] != syncFailed || ended[2] != syncFailed {
		t.Fatalf("ends %v: want %d refused as busy, 1 and 2 canceled for want of credit", ended, requests)
	}
	if n := target.g.Stats().ServeTimeouts; n != 2 {
		t.Fatalf("%d serve credit timeouts, want 2", n)
	}
	// The rest is canceled while waiting: the slot comes back.
	for id := uint64(3); id < requests; id++ {
		if err := c.send(t, frameSyncCancel, appendSyncCancel(nil, id)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool { return target.g.serves.Load() == 0 }, "the serve slot was not freed")
	if !nodes[1].store.has("n0", 100) {
		t.Fatal("the other peer's sync did not deliver")
	}
}

// Two Syncs with one peer at once are both served, one after the other.
func TestConcurrentSyncsServedInTurn(t *testing.T) {
	nodes := startCluster(t, 2, nil, func(c *Config) { c.AntiEntropyInterval = time.Hour })
	for _, nd := range nodes {
		eventually(t, 10*time.Second, func() bool { return nd.g.sched.idle() }, "connect-time pulls did not finish")
	}
	for range 50 {
		if _, err := nodes[1].store.write(nodes[1].g, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 3)
	for range 3 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errc <- nodes[0].g.Sync(ctx, "n1")
		}()
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// Refused traffic is logged once per source and kind per LogInterval,
// with the count of what was left out, and counted every time: garbage
// UDP to the gossip port (memberlist's own lines), and data streams from
// an address where no member is.
func TestRefusedTrafficLogsRateLimited(t *testing.T) {
	logs := newLogCapture()
	nodes := startCluster(t, 2, nil, func(c *Config) {
		c.LogInterval = 300 * time.Millisecond
		if c.Name == "n0" {
			c.Logger = slog.New(logs)
		}
	})
	target := nodes[0]
	udp, err := net.Dial("udp", target.g.LocalPeer().Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	malformed := func() uint64 { return target.g.Stats().Rejected["gossip_malformed"] }
	base := malformed()
	const packets = 500
	for i := range packets {
		if _, err := udp.Write([]byte{0xff, byte(i), 0xad, 0xbe, 0xef}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%50 == 0 { // let the node keep up: UDP drops what overflows
			eventually(t, 10*time.Second, func() bool { return malformed()-base >= uint64(i+1) }, "packets not counted")
		}
	}
	const streams = 100
	for range streams {
		c, err := dialFrom("127.0.0.2", target.g.LocalPeer().DataAddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = clientHandshake(c, handshakeParams{name: "x", maxFrame: 1 << 20})
		c.Close()
		if !errors.Is(err, ErrHandshake) {
			t.Fatalf("handshake from a non-member address: %v", err)
		}
	}

	// account sums what a set of lines reports: one each, plus what each
	// says it left out.
	account := func(lines []logLine) (n uint64) {
		for _, l := range lines {
			if !isSummary(l) {
				n++
			}
			s, _ := strconv.ParseUint(l.attrs["suppressed"], 10, 64)
			n += s
		}
		return n
	}
	garbageLines := func() []logLine {
		return logs.matching(func(l logLine) bool {
			return l.attrs["kind"] == "gossip_malformed" || l.attrs["component"] == "memberlist"
		})
	}
	refusalLines := func() []logLine {
		return logs.matching(func(l logLine) bool {
			return l.attrs["remote"] == "127.0.0.2" || l.attrs["source"] == "127.0.0.2"
		})
	}
	eventually(t, 10*time.Second, func() bool {
		return account(garbageLines()) == malformed() && account(refusalLines()) == streams
	}, "the log does not account for every refusal: %d garbage lines for %d, %d refusal lines for %d",
		account(garbageLines()), malformed(), account(refusalLines()), streams)
	g, r := garbageLines(), refusalLines()
	t.Logf("%d garbage packets in %d log lines, %d refused streams in %d lines; %d lines suppressed",
		malformed(), len(g), streams, len(r), target.g.Stats().LogSuppressed)
	if len(g) > 5 || len(r) > 5 {
		t.Fatalf("%d and %d log lines", len(g), len(r))
	}
	for _, l := range g {
		if l.level > slog.LevelWarn {
			t.Fatalf("refused traffic logged as %v: %s", l.level, l.msg)
		}
	}
}

func isSummary(l logLine) bool { return l.attrs["kind"] != "" }

// memberlist starts a goroutine for every TCP connection to the gossip port
// and holds it for TCPTimeout: connections that say nothing are bounded
// per address (and in all) before memberlist sees them.
func TestGossipPortStreamsBounded(t *testing.T) {
	nodes := startCluster(t, 2, nil, func(c *Config) { c.TCPTimeout = time.Minute })
	target := nodes[0]
	const conns = 50
	var open []net.Conn
	for range conns {
		c, err := dialFrom("127.0.0.2", target.g.LocalPeer().Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	overload := func() uint64 { return target.g.Stats().Rejected["gossip_overload"] }
	want := uint64(conns - target.g.cfg.MaxPendingPerAddr)
	eventually(t, 10*time.Second, func() bool { return overload() == want }, "%d streams refused, want %d", overload(), want)
	// Those refused are closed by the node; the others wait in memberlist.
	closed := 0
	for _, c := range open {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			closed++
		}
	}
	if closed != int(want) {
		t.Fatalf("%d of %d connections closed, want %d", closed, conns, want)
	}
	// Memberlist streams from members still get through.
	for _, c := range open {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nodes[1].g.Join(ctx, target.g.LocalPeer().Addr); err != nil {
		t.Fatalf("push/pull with the target: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A member that sends requests faster than it reads the answers is cut
// off before the answers pile up: here its socket is full (it reads
// nothing of a large transfer) while it keeps asking.
func TestRequestFloodCutOff(t *testing.T) {
	target := startNode(t, "n0", nil, func(c *Config) {
		c.WriteTimeout = time.Minute
		c.IdleTimeout = time.Hour
	})
	for i := range 100 {
		s := target.store
		s.mu.Lock()
		s.seq++
		s.put("n0", s.seq, encodePayload("n0", s.seq, make([]byte, 64<<10+i)))
		s.mu.Unlock()
	}
	startGhost(t, "ghost", "127.0.0.1", nil, "", target)
	c, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if err := c.send(t, frameSyncRequest, appendSyncRequest(nil, 1, maxWindow, nil)); err != nil {
		t.Fatal(err)
	}
	flood := func() uint64 { return target.g.Stats().Rejected["data_flood"] }
	eventually(t, 20*time.Second, func() bool {
		for id := uint64(2); flood() == 0 && id < 100; id++ {
			if err := c.send(t, frameSyncRequest, appendSyncRequest(nil, id, 1, nil)); err != nil {
				break // cut off
			}
		}
		return flood() == 1
	}, "the flood was not cut off")
	eventually(t, 10*time.Second, func() bool { return len(sessionsWith(target, "ghost", true)) == 0 }, "the stream is still open")
}

// Simultaneous dials under one name: exactly one gets in, and it stays in.
// The others are refused in the handshake; none is told it is in and then
// dropped (the name is reserved from admission until the stream is
// registered or the handshake fails).
func TestSimultaneousDialsUnderOneName(t *testing.T) {
	target := startNode(t, "n0", nil, func(c *Config) { c.IdleTimeout = time.Hour })
	startGhost(t, "ghost", "127.0.0.1", nil, "", target)
	const dials = 8
	type result struct {
		c   *rawClient
		err error
	}
	results := make(chan result, dials)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range dials {
		wg.Go(func() {
			<-start
			c, err := rawDial(t, target, "ghost", "127.0.0.1", nil)
			results <- result{c, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	var in []*rawClient
	for r := range results {
		switch {
		case r.err == nil:
			in = append(in, r.c)
		case !errors.Is(r.err, ErrHandshake):
			t.Fatalf("a dial failed otherwise: %v", r.err)
		}
	}
	if len(in) != 1 {
		t.Fatalf("%d dials were let in, want 1", len(in))
	}
	eventually(t, 10*time.Second, func() bool { return len(sessionsWith(target, "ghost", true)) == 1 }, "the stream let in was not registered")
	// It stays open: a read sees no end of stream.
	if _, err := in[0].next(200 * time.Millisecond); err != nil && !isTimeout(err) {
		t.Fatalf("the stream let in ended: %v", err)
	}
}
