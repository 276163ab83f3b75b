package gossip

import (
	"math/rand/v2"
	"sync"
	"time"
)

// scheduler runs anti-entropy pulls: one from a random connected peer every
// AntiEntropyInterval (jittered), plus those asked for with RequestSync (a
// hint from a peer, a new stream, the node). At most MaxConcurrentPulls run
// at once; a peer asked for while its pull runs is pulled again afterwards.
type scheduler struct {
	g       *Gossip
	mu      sync.Mutex
	wanted  map[string]bool // peers to pull from
	running map[string]bool
	signal  chan struct{} // capacity 1
}

func (s *scheduler) init(g *Gossip) {
	s.g = g
	s.wanted = make(map[string]bool)
	s.running = make(map[string]bool)
	s.signal = make(chan struct{}, 1)
}

func (s *scheduler) want(peer string) {
	s.mu.Lock()
	s.wanted[peer] = true
	s.mu.Unlock()
	s.poke()
}

func (s *scheduler) forget(peer string) {
	s.mu.Lock()
	delete(s.wanted, peer)
	s.mu.Unlock()
}

func (s *scheduler) poke() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *scheduler) loop() {
	g := s.g
	defer g.wg.Done()
	tick := newJitterTimer(g.cfg.AntiEntropyInterval)
	defer tick.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-s.signal:
		case <-tick.C:
			tick.reset()
			if p := g.randomConnectedPeer(); p != "" {
				s.mu.Lock()
				s.wanted[p] = true
				s.mu.Unlock()
			}
		}
		s.launch()
	}
}

// launch starts the wanted pulls that can run now.
func (s *scheduler) launch() {
	g := s.g
	s.mu.Lock()
	defer s.mu.Unlock()
	for peer := range s.wanted {
		if len(s.running) >= g.cfg.MaxConcurrentPulls {
			return
		}
		if s.running[peer] {
			continue
		}
		g.mu.RLock()
		l := g.links[peer]
		g.mu.RUnlock()
		if l == nil {
			delete(s.wanted, peer) // not a live peer
			continue
		}
		if l.session() == nil {
			continue // pulled when its stream comes up
		}
		delete(s.wanted, peer)
		s.running[peer] = true
		g.wg.Add(1)
		go s.run(peer)
	}
}

func (s *scheduler) run(peer string) {
	g := s.g
	defer g.wg.Done()
	err := g.Sync(g.ctx, peer)
	switch {
	case err == nil:
		g.stats.pulls[0].Add(1)
	case g.ctx.Err() != nil:
	default:
		g.stats.pulls[1].Add(1)
		g.log.Debug("gossip: anti-entropy pull failed", "peer", peer, "err", err)
	}
	s.mu.Lock()
	delete(s.running, peer)
	s.mu.Unlock()
	s.poke()
}

// idle reports that no pull is wanted or running (for tests).
func (s *scheduler) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.wanted) == 0 && len(s.running) == 0
}

// randomConnectedPeer picks a peer with an established stream ("" if none).
func (g *Gossip) randomConnectedPeer() string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var names []string
	for name, l := range g.links {
		if l.session() != nil {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return names[rand.N(len(names))]
}

// jitterTimer fires at jittered intervals around a mean period.
type jitterTimer struct {
	*time.Timer
	d time.Duration
}

func newJitterTimer(d time.Duration) *jitterTimer {
	return &jitterTimer{Timer: time.NewTimer(jitter(d)), d: d}
}

// reset schedules the next firing; call it after receiving from C.
func (t *jitterTimer) reset() { t.Reset(jitter(t.d)) }
