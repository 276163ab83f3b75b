package gossip

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these with the
// operation and the peer involved, so callers match them with errors.Is.
var (
	// ErrClosed is returned by every method once Close has begun.
	ErrClosed = errors.New("gossip: closed")

	// ErrLeft is returned by Join after Leave: memberlist cannot rejoin a
	// cluster it has left; open a new Gossip instead.
	ErrLeft = errors.New("gossip: left the cluster")

	// ErrInvalidConfig reports a Config that New cannot use.
	ErrInvalidConfig = errors.New("gossip: invalid config")

	// ErrTooLarge reports a payload that does not fit in one frame
	// (Config.MaxFrameBytes).
	ErrTooLarge = errors.New("gossip: payload too large")

	// ErrNotConnected reports that no data stream to the peer is established.
	ErrNotConnected = errors.New("gossip: peer not connected")

	// ErrBadFrame reports bytes on a data stream that are not a valid frame:
	// wrong length, version, type, body, or a frame that fails authentication.
	ErrBadFrame = errors.New("gossip: malformed frame")

	// ErrHandshake reports a data stream whose opening handshake was
	// malformed, or was refused for its version, cluster label or name.
	ErrHandshake = errors.New("gossip: handshake failed")

	// ErrAuth reports a data stream peer that could not prove it holds a key
	// of the keyring (or that sent no key while one is required).
	ErrAuth = errors.New("gossip: authentication failed")

	// ErrSyncRefused reports an anti-entropy request the peer refused or
	// aborted (busy, shutting down, or its handler failed).
	ErrSyncRefused = errors.New("gossip: sync refused by peer")

	// ErrNoKeyring is returned by the key management methods when the
	// instance was created without SecretKeys (encryption cannot be turned
	// on in a running cluster).
	ErrNoKeyring = errors.New("gossip: no keyring configured")
)
