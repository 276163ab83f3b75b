package gossip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
)

var errFaultBlocked = errors.New("gossip: traffic blocked by fault injection")

// FaultNet injects network faults between the nodes of one process that share
// it through Config.Faults, for tests and demos (examples/board's offline
// switch isolates one replica): random loss of memberlist packets, and
// cuts between named nodes of memberlist traffic, data streams, or both. A
// cut closes the data streams between the two nodes at once and makes new
// dials fail, and drops memberlist packets and stream dials between them in
// both directions (each node's transport wrapper filters what it sends and
// what it receives). It is safe for concurrent use. Nodes of one FaultNet
// must have distinct names.
type FaultNet struct {
	mu       sync.Mutex
	nodes    map[string]*Gossip
	addrs    map[string]string // memberlist address -> node name
	cuts     map[[2]string]cut // (from, to) -> what is cut
	dropRate float64
}

type cut uint8

const (
	cutGossip cut = 1 << 0
	cutData   cut = 1 << 1
)

// NewFaultNet returns a FaultNet with no faults.
func NewFaultNet() *FaultNet {
	return &FaultNet{
		nodes: make(map[string]*Gossip),
		addrs: make(map[string]string),
		cuts:  make(map[[2]string]cut),
	}
}

func (f *FaultNet) attach(g *Gossip) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.nodes[g.cfg.Name]; o != nil && o != g {
		return fmt.Errorf("%w: FaultNet already has a node named %q", ErrInvalidConfig, g.cfg.Name)
	}
	f.nodes[g.cfg.Name] = g
	f.addrs[g.self.Addr] = g.cfg.Name
	return nil
}

func (f *FaultNet) detach(g *Gossip) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes[g.cfg.Name] == g {
		delete(f.nodes, g.cfg.Name)
	}
	if f.addrs[g.self.Addr] == g.cfg.Name {
		delete(f.addrs, g.self.Addr)
	}
}

// Partition splits the named nodes into groups that cannot reach each other
// (memberlist and data). Nodes within a group, and nodes not named, are not
// affected. It adds to the cuts already in place.
func (f *FaultNet) Partition(groups ...[]string) {
	for i, ga := range groups {
		for _, gb := range groups[i+1:] {
			for _, a := range ga {
				for _, b := range gb {
					f.cut(a, b, cutGossip|cutData)
				}
			}
		}
	}
}

// Cut blocks all traffic between nodes a and b, both ways.
func (f *FaultNet) Cut(a, b string) { f.cut(a, b, cutGossip|cutData) }

// CutData closes the data streams between nodes a and b and keeps them
// closed; memberlist still sees both alive.
func (f *FaultNet) CutData(a, b string) { f.cut(a, b, cutData) }

func (f *FaultNet) cut(a, b string, c cut) {
	f.mu.Lock()
	f.cuts[[2]string{a, b}] |= c
	f.cuts[[2]string{b, a}] |= c
	ga, gb := f.nodes[a], f.nodes[b]
	f.mu.Unlock()
	if c&cutData != 0 {
		if ga != nil {
			ga.dropSessions(b)
		}
		if gb != nil {
			gb.dropSessions(a)
		}
	}
}

// Isolate cuts node name off from every other node of the FaultNet
// (memberlist and data), as if its network went down: it keeps working
// alone. Nodes that attach later are not cut. Reconnect undoes it.
func (f *FaultNet) Isolate(name string) {
	f.mu.Lock()
	var others []string
	for other := range f.nodes {
		if other != name {
			others = append(others, other)
		}
	}
	f.mu.Unlock()
	for _, other := range others {
		f.cut(name, other, cutGossip|cutData)
	}
}

// Reconnect removes every cut between node name and the other nodes; cuts
// between other nodes stay (unlike Heal). The node finds its peers again
// by the rejoin loop and re-dials its data streams.
func (f *FaultNet) Reconnect(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.cuts {
		if k[0] == name || k[1] == name {
			delete(f.cuts, k)
		}
	}
}

// Heal removes every cut (not the drop rate).
func (f *FaultNet) Heal() {
	f.mu.Lock()
	clear(f.cuts)
	f.mu.Unlock()
}

// SetDropRate makes every memberlist packet sent between nodes of this
// FaultNet get lost with probability p (0 = none).
func (f *FaultNet) SetDropRate(p float64) {
	f.mu.Lock()
	f.dropRate = p
	f.mu.Unlock()
}

// blocked reports whether data streams from node from to node to are cut.
func (f *FaultNet) blocked(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cuts[[2]string{from, to}]&cutData != 0
}

// blockedAddr reports whether memberlist streams from node from to the
// memberlist address addr are cut.
func (f *FaultNet) blockedAddr(from, addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	to, ok := f.addrs[addr]
	return ok && f.cuts[[2]string{from, to}]&cutGossip != 0
}

// dropPacket decides the fate of a memberlist packet node from sends to addr.
func (f *FaultNet) dropPacket(from, addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if to, ok := f.addrs[addr]; ok && f.cuts[[2]string{from, to}]&cutGossip != 0 {
		return true
	}
	return f.dropRate > 0 && rand.Float64() < f.dropRate
}

// dropPacketFrom decides the fate of a memberlist packet node to receives
// from the address addr.
func (f *FaultNet) dropPacketFrom(addr, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	from, ok := f.addrs[addr]
	return ok && f.cuts[[2]string{from, to}]&cutGossip != 0
}

// dropSessions closes every data stream with the named peer.
func (g *Gossip) dropSessions(peer string) {
	g.mu.RLock()
	var doomed []*session
	for s := range g.sessions {
		if s.peer.Name == peer {
			doomed = append(doomed, s)
		}
	}
	g.mu.RUnlock()
	for _, s := range doomed {
		s.close(errFaultBlocked)
	}
}
