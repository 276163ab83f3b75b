package node

import (
	"errors"
	"fmt"

	"github.com/shoaldb/shoal/wal"
)

// Sentinel errors. Methods wrap them with %w, the operation and the key, so
// test them with errors.Is.
var (
	// ErrNotFound: the key does not exist (never written, or deleted).
	ErrNotFound = errors.New("node: not found")

	// ErrWrongType: an operation of one type on a key (or document field)
	// that holds another type, e.g. Incr on a register.
	ErrWrongType = errors.New("node: wrong type")

	// ErrInvalidKey: a key that is empty, longer than MaxKeyBytes or not
	// valid UTF-8. Document field names follow the same rule.
	ErrInvalidKey = errors.New("node: invalid key")

	// ErrInvalidValue: a value Put cannot store as JSON (a Go type outside
	// the JSON data model, NaN or ±Inf, a string that is not UTF-8, nesting
	// deeper than MaxDepth), or an empty or malformed argument such as a
	// set member that is not UTF-8.
	ErrInvalidValue = errors.New("node: invalid value")

	// ErrTooLarge: a value, member list, patch or batch whose encoding
	// exceeds Options.MaxValueBytes or the WAL's record limit.
	ErrTooLarge = errors.New("node: too large")

	// ErrOverflow: a counter increment that would overflow this replica's
	// int64 contribution to the counter.
	ErrOverflow = errors.New("node: counter overflow")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("node: closed")

	// ErrReadOnly: a write to a node whose WAL failed (a write or fsync
	// error). The node keeps serving reads; the wrapped error says why.
	// It never becomes writable again: reopen it.
	ErrReadOnly = errors.New("node: read-only")

	// ErrSlowSubscriber ends a Subscription whose reader fell more than
	// Options.SubscriberBuffer events behind. Writers never wait for readers.
	ErrSlowSubscriber = errors.New("node: slow subscriber")

	// ErrOffsetUnavailable: a resume offset the WAL no longer holds (a
	// snapshot allowed it to be truncated) or has not reached yet.
	ErrOffsetUnavailable = errors.New("node: offset unavailable")

	// ErrCorrupt: bytes read from disk or received from a peer that do not
	// decode (an op record, a snapshot, the identity file).
	ErrCorrupt = errors.New("node: corrupt")

	// ErrLocked: the data directory is held open by another Node (in this
	// process or another).
	ErrLocked = errors.New("node: data directory in use")
)

// damagedError adds to an Open failure caused by damaged files what the
// operator can do about it.
func damagedError(dir string, err error) error {
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, wal.ErrCorrupt) {
		return err
	}
	if !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return fmt.Errorf("%w (refusing to open %s rather than lose acknowledged writes; `shoal wal repair %s` sets the damage aside and takes a new replica identity, and peers then send back what they hold)", err, dir, dir)
}

// readOnlyError reports why a node turned read-only.
func readOnlyError(cause error) error {
	return fmt.Errorf("%w: %w", ErrReadOnly, cause)
}
