package node

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Sync status for offline-first apps: how far each peer has acknowledged
// this node's writes. A peer's digest (sent as the acknowledgement of pushed
// records, and with each of its anti-entropy requests) carries the set of
// operations it has applied; the writes of this replica it holds are its
// version vector's entry for our replica ID.

// PeerSync is one peer's view of this node's writes.
type PeerSync struct {
	Name    string    // gossip node name
	Replica string    // its replica ID ("" until a digest arrived)
	State   string    // "alive", "dead" or "left"
	Acked   uint64    // how many of this node's writes (by sequence number) it holds
	Synced  bool      // it holds every write this node has made
	Updated time.Time // when its last digest arrived (zero: never)
}

// SyncStatus is the state of this node's writes in the cluster.
type SyncStatus struct {
	Replica string // this node's replica ID
	Local   uint64 // sequence number of this node's last write
	Peers   []PeerSync
}

// ownSeq returns the sequence number of this replica's last applied write.
func (n *Node) ownSeq() uint64 { return n.appliedSet().VV[n.replica] }

// SyncStatus reports, for every member, how many of this node's writes it
// holds. ErrOffline without gossip.
func (n *Node) SyncStatus() (SyncStatus, error) {
	r, err := n.replication()
	if err != nil {
		return SyncStatus{}, err
	}
	st := SyncStatus{Replica: n.replica.String(), Local: n.ownSeq()}
	ms := r.gossip().Members()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		if m.Self {
			continue
		}
		ps := PeerSync{Name: m.Name, State: m.State.String()}
		if p := r.peers[m.Name]; p != nil {
			ps.Replica, ps.Acked, ps.Updated = p.replica.String(), p.applied.VV[n.replica], p.updated
		}
		ps.Synced = ps.Acked >= st.Local
		st.Peers = append(st.Peers, ps)
	}
	return st, nil
}

// WaitSynced returns once the named peers (default: every member alive at
// the call) hold every write this node made before the call, or with ctx's
// error (wrapped) when they do not in time: a partitioned or failed peer
// makes it wait until ctx is done. ErrOffline without gossip.
func (n *Node) WaitSynced(ctx context.Context, peers ...string) error {
	r, err := n.replication()
	if err != nil {
		return err
	}
	target := n.ownSeq()
	g := r.gossip()
	if len(peers) == 0 {
		for _, m := range g.Members() {
			if !m.Self && m.State.String() == "alive" {
				peers = append(peers, m.Name)
			}
		}
	}
	if target == 0 || len(peers) == 0 {
		return nil
	}
	// Peers we have no fresh digest from are nudged (they pull from us, and
	// their request carries their digest), now and then periodically.
	nudge := time.NewTicker(r.repairDelay)
	defer nudge.Stop()
	nudgeNow := true
	for {
		r.mu.Lock()
		changed := r.notify
		var behind []string
		for _, name := range peers {
			if p := r.peers[name]; p == nil || p.applied.VV[n.replica] < target {
				behind = append(behind, name)
			}
		}
		r.mu.Unlock()
		if len(behind) == 0 {
			return nil
		}
		if nudgeNow {
			for _, name := range behind {
				g.Nudge(name)
			}
			nudgeNow = false
		}
		select {
		case <-changed:
		case <-nudge.C:
			nudgeNow = true
		case <-n.closing:
			return ErrClosed
		case <-ctx.Done():
			slices.Sort(behind)
			return fmt.Errorf("node: wait synced: peers %v lack writes up to %d: %w", behind, target, ctx.Err())
		}
	}
}
