package node

import (
	"bytes"

	"github.com/shoaldb/shoal/crdt"
)

// Hooks for replication (node/repl*.go). They are unexported: the
// replication code lives in this package.
//
//   - applyRemote: a record received from a peer goes through the commit
//     loop like a local write: decoded and validated (ErrCorrupt otherwise),
//     dropped if every dot of its delta is already in the state (counted as
//     a duplicate), else appended to the local WAL as the same bytes,
//     applied, published to subscribers and passed to the commit hook with
//     From set, so it is never sent back to that peer.
//   - setCommitHook: fn receives every committed group, in WAL order, from
//     the commit loop after the records are durable and applied. It must not
//     block or call back into the Node: copy what you need and queue it.
//   - appliedSet: the Own dots of every delta this replica has applied: what
//     anti-entropy compares (a peer lacks mine.Missing(theirs)). Not the
//     causal context, which also holds dots of operations not yet received.
//   - stateContext: the causal context, for state transfers (JoinRange and
//     an OpContext record at the end, carrying Ctx and Applied).
//   - dotIndex (n.index): which WAL records hold a replica's dot seqs, for
//     resending exactly what a peer lacks; lookup reports when some were
//     truncated away (send key state instead).

// applyRemote commits a record received from peer from. raw is copied.
func (n *Node) applyRemote(raw []byte, from string) error {
	if n.closed.Load() {
		return ErrClosed
	}
	op, err := DecodeOp(raw)
	if err != nil {
		n.m.remoteInvalid.Inc()
		return err
	}
	r := getRequest(reqRemote)
	r.raw, r.op, r.from = bytes.Clone(raw), op, from
	_, err = n.do(r)
	return err
}

// setCommitHook installs (or, with nil, removes) the commit hook.
func (n *Node) setCommitHook(fn func([]committed)) {
	if fn == nil {
		n.commitHook.Store(nil)
		return
	}
	n.commitHook.Store(&fn)
}

// stateContext returns a copy of the causal context.
func (n *Node) stateContext() *crdt.Context {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.ks.Context()
}

// appliedSet returns a copy of the applied set.
func (n *Node) appliedSet() *crdt.Context {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.ks.Applied()
}
