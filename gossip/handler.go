package gossip

import "context"

// Handler is the application side of gossip: the node implements it to
// receive payloads, to describe what it holds, and to serve what a peer
// lacks. gossip never looks inside payloads or digests.
//
// gossip never calls a Handler method from inside a memberlist callback, and
// never after Close has returned.
type Handler interface {
	// Deliver hands over payloads received from a peer, in the order the
	// peer sent them. src says whether they were pushed as new deltas
	// (SourcePush) or sent in answer to this node's anti-entropy request
	// (SourceSync).
	//
	// Deliver is called concurrently for different peers and streams, never
	// concurrently for one stream. It may block: the stream is read on
	// meanwhile, and the pushed batches that arrive wait (up to 8 MiB per
	// stream, then the stream is not read, which applies back-pressure to
	// the sender) to be delivered together by the next call. It must not
	// wait on the network (or on this Gossip), only on local work.
	//
	// The handler owns the payload slices: gossip does not touch them after
	// the call. An error is counted and logged; for SourceSync it also
	// aborts the transfer.
	Deliver(from Peer, src Source, payloads [][]byte) error

	// Digest returns a compact summary of what this node holds (the node
	// uses a version vector). gossip sends it with every anti-entropy request
	// and as the acknowledgement of delivered payloads, so it must reflect
	// every Deliver that has returned.
	//
	// Digest is called concurrently from many goroutines, must be fast and
	// must not block. gossip does not modify the returned slice.
	Digest() []byte

	// PeerDigest reports a digest a peer sent: as an acknowledgement of
	// payloads it received from us, or at the start of a sync request it
	// made. The node uses it for sync status (what the peer holds of our
	// writes) and to decide whether to pull (RequestSync).
	//
	// PeerDigest is called concurrently and must not block. The handler owns
	// the digest slice.
	PeerDigest(from Peer, digest []byte)

	// Serve answers a peer's anti-entropy request: it writes to w what the
	// peer lacks according to its digest, then returns. gossip sends the
	// final chunk and the end marker after Serve returns; an error is sent
	// to the peer as a refusal.
	//
	// Serve runs on its own goroutine, concurrently with everything else
	// (at most Config.MaxConcurrentServes at once). It may block; w.Write
	// blocks while the peer has not consumed earlier chunks (flow control).
	// ctx is canceled when the peer cancels, the stream breaks, or Close
	// begins; Serve must then return promptly.
	Serve(ctx context.Context, to Peer, digest []byte, w *SyncWriter) error

	// PeerJoined and PeerLeft report membership changes (a peer became
	// alive; a peer failed or left), in the order memberlist saw them. They
	// are called from one goroutine, never concurrently with each other, and
	// must not block for long: membership events queue up behind them.
	// Calling any Gossip method from them is safe.
	PeerJoined(p Peer)
	PeerLeft(p Peer)
}

// PullDigester is an optional extension of Handler. When the handler
// implements it, an anti-entropy request to a peer carries PullDigest(peer)
// instead of Digest(), so that one request can ask that peer for something
// specific (the node asks for the key ranges it found different). It has
// the same rules as Digest: fast, concurrent, never blocks.
type PullDigester interface {
	PullDigest(to Peer) []byte
}

// Peer names a cluster member as seen by this node.
type Peer struct {
	Name     string // unique node name (memberlist name)
	Addr     string // memberlist address, host:port
	DataAddr string // data stream address, host:port ("" when not known yet)
}

// Source says how a delivered payload travelled.
type Source uint8

// Sources. Explicit values: they are part of the Handler contract.
const (
	SourcePush Source = 1 // pushed by the peer as a new delta
	SourceSync Source = 2 // sent in answer to our anti-entropy request
)

func (s Source) String() string {
	switch s {
	case SourcePush:
		return "push"
	case SourceSync:
		return "sync"
	}
	return "unknown"
}
