package gossip

import (
	"math/rand/v2"
	"net"
	"slices"
	"time"
)

// maxRejoinTargets bounds the addresses one rejoin round contacts:
// memberlist's Join tries them one after the other, TCPTimeout each.
const maxRejoinTargets = 3

// rejoinLoop heals partitions. memberlist never re-merges two halves that
// have declared each other dead (measured: they stay apart), so every
// RejoinInterval (jittered, so that nodes do not all dial at once) we Join a
// few failed peers we remember, and our seeds when none of them is a live
// member. Joining a live member is harmless: a push/pull exchange.
func (g *Gossip) rejoinLoop() {
	defer g.wg.Done()
	t := newJitterTimer(g.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			t.reset()
		}
		if g.left.Load() {
			continue
		}
		targets := g.rejoinTargets(time.Now())
		if len(targets) == 0 {
			continue
		}
		n, err := g.ml.Join(targets)
		if err != nil && n == 0 {
			g.log.Debug("gossip: rejoin failed", "targets", targets, "err", err)
		} else {
			g.log.Debug("gossip: rejoined", "targets", targets, "contacted", n)
		}
	}
}

// rejoinTargets picks the addresses for one rejoin round, and forgets failed
// peers older than DeadPeerTimeout.
func (g *Gossip) rejoinTargets(now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	alive := map[string]bool{g.self.Addr: true}
	var dead []string
	for name, p := range g.peers {
		switch {
		case p.state == StateAlive:
			alive[p.Addr] = true
		case now.Sub(p.since) > g.cfg.DeadPeerTimeout:
			delete(g.peers, name)
		case p.state == StateDead:
			dead = append(dead, p.Addr)
		}
	}
	var targets []string
	for _, s := range g.seeds {
		if !alive[s] {
			targets = append(targets, s)
		}
	}
	// A seed given by host name never matches a member address: contact it
	// only while we are alone, not every round.
	if len(alive) > 1 {
		targets = slices.DeleteFunc(targets, func(s string) bool { return !isIPPort(s) })
	}
	targets = append(targets, dead...)
	slices.Sort(targets)
	targets = slices.Compact(targets)
	rand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	if len(targets) > maxRejoinTargets {
		targets = targets[:maxRejoinTargets]
	}
	return targets
}

func isIPPort(s string) bool {
	host, _, err := net.SplitHostPort(s)
	return err == nil && net.ParseIP(host) != nil
}
