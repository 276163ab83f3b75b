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
// # Data stream protocol (version 2)
//
// Version 2 is not compatible with version 1: the version is in the node
// metadata memberlist carries (a member of another version is not let in)
// and in the handshake, where a version 1 client is answered in its own
// layout with status "unsupported protocol version" (logged, counted as
// data_version) so that the old node says why it cannot connect.
//
// Who may open a stream: a current member, from its address, once. The
// listener reads the version (5 bytes), then refuses a connection from an
// address where no live member is (memberlist's address or the advertised
// data address); then, after the key check, a name that is no live member
// at that address, and a name that already has a live stream to us
// (data_not_member, data_duplicate). Dialers leave from their bound
// address so that the source checks out; a multi-homed node should bind
// the address it advertises. Keyed or not, this is what keeps a
// non-member from reading the store through a sync or pushing records;
// with a key, it also keeps a key holder from claiming another member's
// name (it would have to sit at that member's address).
//
// A second stream under a live name never tears the first down. It is
// refused, and the first is probed: a ping goes out on it at once. A live
// peer answers and keeps its stream; a stream whose peer is gone (the old
// connection of a restarted node, a host that vanished) is closed when the
// peer's host answers the ping with a reset, or PingTimeout later, and the
// reconnecting peer's next dial (it redials with backoff from 20 ms) gets
// in. Two dials under one name at once: the first admitted holds the name
// until its handshake ends, and the other is refused the same way (never
// told it is in and then dropped). A departed or failed member's streams
// are closed when memberlist reports it gone.
//
// The handshake, all integers big endian:
//
//	client hello   "SHDS" | version u8 (2) | flags u8 (bit 0: keyed)
//	               | key id [8] (keyed only) | body length u16 | body
//	server hello   "SHDS" | version u8 (2) | status u8 | flags u8
//	               | body length u16 | body (empty when status is not 0)
//	client finish  16 bytes (keyed only)
//
//	client payload  max frame u32 | label length u8 | label | name length u8 | name
//	server payload  max frame u32 | name length u8 | name
//
// Statuses: 0 ok, 1 unsupported version, 2 label mismatch, 3 key mismatch,
// 4 bad name, 5 shutting down, 6 not a member at this address, 7 a stream
// under this name is open, 8 too many streams. A body is at most 564 bytes
// (a longer length word is refused before anything is read). Without a key
// the bodies are the payloads in clear and the stream is neither
// authenticated nor encrypted: only the membership check applies, which is
// why an agent refuses that beyond loopback unless told otherwise.
//
// With a key (Config.SecretKeys, shared with memberlist's keyring), the
// client names its primary key by its id (the first 8 bytes of
// SHA-256("shoal/data/v2 key id\x00" | key)), the listener takes that key
// from its keyring (so keys rotate: InstallKey everywhere, UseKey
// everywhere, RemoveKey of the old one, which closes the streams opened
// with it), and the two run Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s
// (the Noise Protocol Framework, noiseprotocol.org) with the PSK HMAC-SHA256(key,
// "shoal/data/v2 noise psk") and the client hello's header (up to the key
// id) as prologue. The client's body is Noise message 1 (-> psk, e: a
// 32-byte ephemeral public key, then the sealed payload), the server's is
// message 2 (<- e, ee). The client finish is the first transport message
// of the client's CipherState with an empty payload (a 16-byte tag): only
// a client that took part in this handshake can send it, so a replayed
// hello gets no stream. The frames that follow are sealed by the two
// CipherStates Noise's Split gives.
//
// Why this Noise pattern and suite:
//
//   - The cluster shares one secret and nodes have no long-term key pairs:
//     the NN pattern with a PSK is the pattern for exactly that. Its keys
//     come from the ephemeral Diffie-Hellman (ee), so someone who records
//     streams and obtains the key later cannot decrypt them (forward
//     secrecy); version 1's keys were derived from the key and nonces sent
//     in clear. What a key holder can still do is what any member can:
//     connect from its own address under its own name.
//   - psk0 (the PSK mixed in before the first message) authenticates the
//     client hello itself: a listener learns that the client holds the key
//     from the first message, before it computes a Diffie-Hellman or
//     answers, so a flood without the key costs a hash and a failed AEAD
//     check each. The price is that the client payload (name, label and
//     frame limit, nothing secret) is sealed under the key alone.
//   - 25519, ChaCha20-Poly1305 and BLAKE2s are WireGuard's choices: fast
//     and constant-time in software on every platform shoal builds for,
//     including ARM devices without AES instructions. The key is never
//     used directly (memberlist uses it as an AES key): the PSK and the key
//     id are derived from it under their own labels.
//   - Frames may be longer than Noise's 65,535-byte message limit: that
//     limit is Noise's own framing, not the cipher's; ChaCha20-Poly1305
//     seals up to 256 GiB per nonce, and each frame has its own nonce (its
//     number in its direction).
//
// Frames: a 4-byte big-endian length, then version (2), type, body;
// encrypted streams seal version+type+body (ChaCha20-Poly1305, nonce = the
// frame's number in that direction) with the length bytes as additional
// data, so frames cannot be altered, dropped, reordered or replayed
// without the reader noticing. Types: batch (payload list: uvarint count,
// then uvarint length and bytes each), digest, sync request (uvarint id,
// uvarint window, digest), sync data (id, payload list), sync credit (id,
// count), sync end (id, status, message), sync cancel (id), hint, bye,
// ping and pong (empty). Anything malformed closes the stream and is
// counted.
//
// # Limits
//
// Everything a connection can make a node hold is bounded, and what a
// connection from an address where no member is can make it hold is a
// pending handshake for a short while:
//
//   - Handshakes: a pending handshake holds a goroutine and at most a
//     hello (nothing is allocated for a stream before its handshake is
//     over), for at most HandshakeTimeout (default 3 s, 2 s local): the
//     whole handshake, first byte included, must fit in it (data_timeout).
//     At most MaxPendingPerAddr (8) are pending from one address (an IPv4
//     address, an IPv6 /64); more are closed at once. At most
//     MaxPendingHandshakes (256) in all; at that bound, the oldest pending
//     handshake of the address with the most gives way to the newcomer, so
//     silent connections from a few addresses cannot keep a member's
//     handshake out (data_overload). Version 1 had one global bound of 64
//     with the dial timeout each: 64 silent connections locked every
//     member out.
//   - Streams: at most one inbound stream per member name,
//     MaxSessionsPerAddr (64) per address and MaxInboundSessions (512) in
//     all (data_session_limit). A stream on which nothing arrives for
//     IdleTimeout (30 s, 10 s local) is pinged and closed if nothing
//     arrives within PingTimeout (10 s, 5 s local) after that (counted in
//     Stats.IdleClosed); each side answers pings from its reader.
//   - Frames: at most MaxFrameBytes (default 16 MiB + 64 KiB: node's
//     largest record is its WAL's 16 MiB record limit; anti-entropy
//     transfers are chunked anyway). A frame's buffer grows 64 KiB at a
//     time as its bytes arrive, never from its length word alone: version
//     1 allocated the announced length at once, and 40 connections that
//     sent 5 bytes each held 1.35 GB.
//   - Anti-entropy: one request served per stream at a time (four more
//     may wait their turn, holding no slot and at most 4 MiB of digests;
//     more are answered "busy"), MaxConcurrentServes in all, and a serve whose
//     requester sends no credit for ServeCreditTimeout (30 s, 10 s local)
//     while the window is full is canceled, freeing its slot (counted in
//     Stats.ServeTimeouts). Answers waiting to be written are bounded; a
//     peer that sends requests faster than it reads the answers is cut off
//     (data_flood).
//   - memberlist: its inbound TCP streams open at once are bounded by the
//     same two numbers as pending handshakes (gossip_overload); memberlist
//     itself holds a goroutine per connection for TCPTimeout.
//   - Logs: refused traffic is logged at most once per LogInterval (10 s)
//     per source address and kind; the lines in between are counted
//     (Stats.LogSuppressed) and reported by the next line or a summary
//     line. memberlist's own warnings (one per garbage packet) go through
//     the same limit. Stats.Rejected counts every refusal by reason.
//
// # Goroutines and shutdown
//
// New starts: the data listener's accept loop (and a goroutine per pending
// handshake), the membership manager (the only caller of
// PeerJoined/PeerLeft, in event order), the anti-entropy scheduler, the
// rejoin loop, the log limiter's flush loop, and per live peer a link
// goroutine that keeps the outbound stream dialed. Each stream has a
// reader and a writer goroutine (the writer also keeps the stream alive);
// each served sync request runs Handler.Serve on its own goroutine. memberlist's callbacks never block and never call back into
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
