package gossip

import (
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// The peer table is ours, not memberlist's: memberlist's callbacks update it
// under our own lock and queue an event, then return at once. Nothing here
// calls back into memberlist (Members() from a callback deadlocks), blocks, or
// calls the Handler; the manager goroutine does that, in event order.

type peerEntry struct {
	Peer
	state   State
	since   time.Time // last state change
	leaving time.Time // when it said bye on its data stream
}

// byeValidity is how long a bye makes the next failure of that peer count as
// a departure. memberlist's NotifyLeave does not say whether a node left or
// failed (the state in the Node it passes is stale), so the leaving node
// says so on its data streams first.
const byeValidity = time.Minute

type eventKind uint8

const (
	evJoin   eventKind = 1
	evUpdate eventKind = 2
	evLeave  eventKind = 3
)

type event struct {
	kind eventKind
	peer Peer
}

// events is the queue between memberlist's callbacks and the manager. It is
// bounded by membership churn (one entry per state change), not by traffic.
type events struct {
	mu     sync.Mutex
	list   []event
	signal chan struct{} // capacity 1
}

func (e *events) push(ev event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
}

func (e *events) take() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.list
	e.list = nil
	return l
}

// observe records a memberlist callback in the table. Called from memberlist
// goroutines, with memberlist's locks held: copy, update, queue, return.
func (g *Gossip) observe(n *memberlist.Node, kind eventKind) {
	if g.closing.Load() || n.Name == g.cfg.Name {
		return
	}
	p := Peer{Name: n.Name, Addr: n.Address()}
	if m, err := decodeMeta(n.Meta); err == nil {
		p.DataAddr = m.dataAddr(n.Addr)
	}
	g.mu.Lock()
	e := g.peers[n.Name]
	if e == nil {
		e = &peerEntry{}
		g.peers[n.Name] = e
	}
	state := StateAlive
	if kind == evLeave {
		state = StateDead
		if !e.leaving.IsZero() && time.Since(e.leaving) < byeValidity {
			state = StateLeft
		}
	} else {
		e.leaving = time.Time{}
	}
	if p.DataAddr == "" {
		p.DataAddr = e.DataAddr
	}
	e.Peer = p
	if e.state != state {
		e.state, e.since = state, time.Now()
	}
	g.mu.Unlock()
	g.events.push(event{kind: kind, peer: p})
}

// markLeaving records a peer's bye. If memberlist already reported it
// gone, it is now known to have left rather than failed.
func (g *Gossip) markLeaving(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.peers[name]
	if e == nil {
		return
	}
	e.leaving = time.Now()
	if e.state == StateDead {
		e.state = StateLeft
	}
}

// manageLoop applies membership events: it starts and stops peer links and
// tells the Handler, one event at a time, in order.
func (g *Gossip) manageLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-g.events.signal:
		}
		for _, ev := range g.events.take() {
			if g.ctx.Err() != nil {
				return
			}
			g.apply(ev)
		}
	}
}

func (g *Gossip) apply(ev event) {
	name := ev.peer.Name
	switch ev.kind {
	case evJoin, evUpdate:
		if g.left.Load() {
			return
		}
		g.mu.Lock()
		e := g.peers[name]
		if e == nil || e.state != StateAlive {
			g.mu.Unlock()
			return // a later event superseded this one
		}
		l := g.links[name]
		started := false
		if l == nil {
			l = newLink(g, name)
			g.links[name] = l
			started = true
		}
		g.mu.Unlock()
		if started {
			g.wg.Add(1)
			go l.run()
		} else if ev.kind == evUpdate {
			l.redial() // the data address may have changed
		}
		if ev.kind == evJoin {
			g.h.PeerJoined(ev.peer)
		}
	case evLeave:
		g.mu.Lock()
		l := g.links[name]
		delete(g.links, name)
		var inbound []*session
		for s := range g.sessions {
			if !s.outbound && s.peer.Name == name {
				inbound = append(inbound, s)
			}
		}
		g.mu.Unlock()
		if l != nil {
			l.stop()
		}
		for _, s := range inbound {
			s.close(errPeerGone)
		}
		g.sched.forget(name)
		g.h.PeerLeft(ev.peer)
	}
}

// peer returns what the table knows of a peer (only the name if nothing).
func (g *Gossip) peer(name string) Peer {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if e := g.peers[name]; e != nil {
		return e.Peer
	}
	return Peer{Name: name}
}

// delegate is memberlist's Delegate. memberlist carries membership and our
// node metadata only: deltas travel on data streams, so there are no user
// messages, broadcasts or push/pull state.
type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

func (d *delegate) NotifyMsg(b []byte) {
	// Nobody in a shoal cluster sends user messages: count and drop.
	(*Gossip)(d).stats.reject(rejectGossipUserMsg)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate is memberlist's EventDelegate.
type eventDelegate Gossip

func (d *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Gossip)(d).observe(n, evJoin) }
func (d *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Gossip)(d).observe(n, evLeave) }
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Gossip)(d).observe(n, evUpdate) }

// aliveDelegate is memberlist's AliveDelegate: a member whose metadata we
// cannot read (another program, another protocol version) is not let in.
type aliveDelegate Gossip

func (d *aliveDelegate) NotifyAlive(n *memberlist.Node) error {
	m, err := decodeMeta(n.Meta)
	if err == nil && m.proto != protocolVersion {
		err = errProto(m.proto)
	}
	if err != nil && n.Name != d.cfg.Name {
		(*Gossip)(d).stats.reject(rejectGossipMeta)
		return err
	}
	return nil
}
