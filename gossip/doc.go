// Package gossip is shoal's cluster layer: membership and failure detection
// on hashicorp/memberlist, and replication of opaque payloads over direct,
// persistent data streams between peers. It knows nothing of storage or
// CRDTs: the node hands it payloads (encoded operations) and digests
// (version vectors) as bytes, through the Handler interface.
//
// # What travels where
//
// memberlist (SWIM with Lifeguard, UDP and TCP on the gossip port) carries
// membership only, plus each node's metadata: the data stream address and
// protocol version. Nothing else rides on it: its piggyback broadcasts were
// measured to lose messages, to cap out near 100 small messages/s, and to
// drop anything above ~1,360 bytes; its SendReliable dials a connection per
// message and reports success for dropped messages.
//
// Payloads travel on data streams: each node dials one TCP stream to each
// live peer (full mesh; fine for the tens of nodes shoal targets) and
// accepts theirs. The stream a node dialed carries its pushes and its
// anti-entropy requests; the answers come back on the same stream.
//
//   - Push: Broadcast queues a payload for every live peer except the one it
//     came from, if a stream to that peer is up (otherwise the pull made when
//     the stream comes up brings the peer what it missed, read from the
//     node's log; queuing it too would send it twice). Each peer has a
//     bounded queue (QueueBytes) drained by its stream's writer: the first
//     payload waits FlushInterval for company, then batches go out back to
//     back until the queue is empty. A payload that does not fit in the queue
//     is dropped for that peer (counted), and once the queue drains the peer
//     gets a hint frame that makes it pull; a stream that breaks takes its
//     queue with it. Broadcast never blocks the caller; back-pressure comes
//     from TCP (a slow reader fills its socket, the queue fills, payloads are
//     dropped and later repaired), and from Handler.Deliver, which runs on the
//     stream's reader and may block.
//   - Acknowledgement: after delivering batches, the receiver sends its
//     Handler.Digest back (at most once per AckInterval); the sender's
//     Handler.PeerDigest learns exactly what the peer holds. This is what
//     sync status is computed from.
//   - Anti-entropy: every AntiEntropyInterval a node pulls from one random
//     connected peer, and it pulls at once when a stream to a peer comes up,
//     when a peer hints, or on RequestSync. A pull sends our digest (or
//     PullDigest(peer) when the Handler is a PullDigester); the
//     peer's Handler.Serve writes what we lack into a SyncWriter, which cuts
//     it into chunks of SyncChunkBytes with at most SyncWindow chunks
//     unacknowledged (the requester credits a chunk after delivering it), so
//     a large transfer never outruns the receiver.
//   - Partitions: memberlist does not re-merge halves that declared each
//     other dead, so every RejoinInterval a node re-joins a few failed peers
//     it remembers, and its seeds while none of them is a live member.
//
// # Data stream protocol (version 1)
//
// The dialer sends a client hello, the listener a server hello; both name
// the node, the protocol version, the cluster label and the largest frame
// they accept (the hello types document the bytes). Without a key that is
// all. With a key (Config.SecretKeys, shared with memberlist's keyring) the client
// names its primary key by a hash, and the listener picks that key from its
// keyring; each side then proves possession with an HMAC over both hellos
// (which include a fresh 32-byte nonce from each side), and frames are
// sealed with AES-256-GCM under per-stream, per-direction keys derived with
// HKDF-SHA256. A peer without the key can neither read nor inject frames,
// and recorded frames cannot be replayed (every stream has fresh keys, and
// each frame's nonce is its sequence number).
//
// Frames: a 4-byte big-endian length, then version (1), type, body;
// encrypted streams seal version+type+body and authenticate the length.
// A frame longer than the receiver's MaxFrameBytes is refused before any
// allocation. Types: batch (payload list: uvarint count, then uvarint length
// and bytes each), digest, sync request (uvarint id, uvarint window,
// digest), sync data (id, payload list), sync credit (id, count), sync end
// (id, status, message), sync cancel (id), hint (empty). Anything malformed
// closes the stream and is counted.
//
// # Goroutines and shutdown
//
// New starts: the data listener's accept loop, the membership manager (the
// only caller of PeerJoined/PeerLeft, in event order), the anti-entropy
// scheduler, the rejoin loop, and per live peer a link goroutine that keeps
// the outbound stream dialed. Each stream has a reader and a writer
// goroutine; each served sync request runs Handler.Serve on its own
// goroutine. memberlist's callbacks never block and never call back into
// memberlist: they update our own peer table and queue an event.
//
// Close cancels everything, shuts memberlist down, closes the data
// listener and streams, and waits for all of the above, including Handler
// calls in progress. Leave first to depart gracefully.
//
// # Tests
//
// FaultNet (Config.Faults) wraps the real transports of the nodes of one
// process to drop memberlist packets and cut memberlist traffic and data
// streams between named nodes; tests run real clusters on 127.0.0.1.
package gossip
