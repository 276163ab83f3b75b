package node

import (
	"fmt"
	"time"

	"github.com/shoaldb/shoal/crdt"
)

// MaxTTL is the longest time to live a key may be given. It is far below
// what the clock can represent; beyond it a TTL is more likely a unit
// mistake than an intent.
const MaxTTL = 10 * 365 * 24 * time.Hour

// DefaultSweepInterval is how often an idle node looks for keys that
// expired, to report and reclaim them (Options.SweepInterval).
const DefaultSweepInterval = 250 * time.Millisecond

// A sweep step reports and reclaims keys sweepChunk at a time, until it
// has held the state lock for sweepBudget, handled sweepLimit keys of
// either kind, or writes wait for it (then it gives way after the chunk
// at hand): writes never wait for a whole pass, and a step's length does
// not depend on how warm the caches are (a key costs 1-3 µs).
const (
	sweepChunk  = 8
	sweepLimit  = 256
	sweepBudget = 50 * time.Microsecond
)

// While writes arrive, the sweep paces itself by the age of its backlog (the
// oldest expiry it has not dealt with). A young one (under sweepCatchUp) is
// swept gently: a step due while writes wait for the applier is put off to
// the next tick (SweepInterval), and one that ran rests at least
// sweepGentleRest, about 1% of the applier. What slows writes down is the
// number of steps, and of the timers that wake the loop for them, more than
// the steps' length (each takes the state lock and, after reclaiming, makes
// the loop drain the pipeline for a fresh transaction): in
// BenchmarkPutWhileExpiring's open load (100,000 keys expired, Puts at a
// steady rate) a rest of 3× the step put the p99 ratio at 0.9-4.5, a floor
// of 2 ms at 1.4-3.1, 5 ms at 0.8-1.6, and under the closed load retrying a
// put-off step 5 ms later instead of at the tick at 1.5-2.4 instead of
// 0.8-1.3 (PERFORMANCE.md). The price is the pace while writes keep the
// cores busy: ~2,000 keys a second at 12,000 Puts/s, a few hundred when the
// writes saturate the node. A backlog older than sweepCatchUp (expiries
// coming faster than that) is swept at up to a quarter of the applier,
// resting sweepRest times as long as a step held the lock whether or not
// writes wait (Redis's active expiry cycle stops at 25% of the CPU for the
// same reason): memory is freed within a bounded lag, at the cost of that
// tail. An idle node sweeps without rest. Reads hide an expired key at once
// whatever the pace; the pace decides when memory is freed and watchers hear
// of it.
const (
	sweepGentleRest = 5 * time.Millisecond
	sweepCatchUp    = 10 * time.Second
	sweepRest       = 3
)

// sweepIdle is how long without a write makes the node idle for the
// sweep, which then does not rest.
const sweepIdle = 10 * time.Millisecond

// WriteOptions modify a write (PutWith, UpdateWith). The zero value is a
// plain write.
type WriteOptions struct {
	// TTL, when positive, makes the key expire TTL after the write (in
	// the same record): the key's expiry is replaced, as Expire does. 0
	// keeps the expiry the key has: a write never clears one (Persist
	// does). Negative or above MaxTTL: ErrInvalidValue.
	TTL time.Duration
}

// CheckTTL returns an error wrapping ErrInvalidValue, naming the limit,
// unless 0 < ttl <= MaxTTL.
func CheckTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxTTL {
		return fmt.Errorf("%w: ttl %v: must be positive and at most %v (MaxTTL)", ErrInvalidValue, ttl, MaxTTL)
	}
	return nil
}

// expiryAt is the expiry of a key given ttl by an operation at ts: the
// physical time plus ttl, rounded up to the clock's millisecond.
func expiryAt(ts crdt.Timestamp, ttl time.Duration) crdt.Timestamp {
	ms := (ttl + time.Millisecond - 1) / time.Millisecond
	return crdt.MakeTimestamp(ts.Physical()+int64(ms), 0)
}

// PutWith is Put with options: with o.TTL, the key expires o.TTL after
// the write, on every replica (see Expire).
func (n *Node) PutWith(key string, value any, o WriteOptions) error {
	_, err := n.exec(withTTL(newPut(key, value))(o))
	return err
}

// UpdateWith is Update with options (see PutWith).
func (n *Node) UpdateWith(key string, p Patch, o WriteOptions) error {
	_, err := n.exec(withTTL(newUpdate(key, p))(o))
	return err
}

// withTTL applies o to a request built by a new* function.
func withTTL(r *request, err error) func(WriteOptions) (*request, error) {
	return func(o WriteOptions) (*request, error) {
		if err != nil || o.TTL == 0 {
			return r, err
		}
		if err := CheckTTL(o.TTL); err != nil {
			putRequest(r)
			return nil, fmt.Errorf("%s %q: %w", r.kind, r.key, err)
		}
		r.ttl = o.TTL
		return r, nil
	}
}

// Expire makes key expire ttl from now (the node's hybrid logical clock),
// whatever its type, replacing the expiry it had: from then on every read
// on every replica finds it absent, and a later write creates a fresh
// value. Among concurrent Expires of one key the latest expiry wins; a
// concurrent Persist wins over both. A write without a TTL keeps the
// key's expiry. Errors: ErrInvalidValue unless 0 < ttl <= MaxTTL,
// ErrNotFound when the key does not exist (or has expired).
func (n *Node) Expire(key string, ttl time.Duration) error {
	_, err := n.exec(newExpire(key, ttl))
	return err
}

func newExpire(key string, ttl time.Duration) (*request, error) {
	if !validKey(key) {
		return nil, keyError("expire", key)
	}
	if err := CheckTTL(ttl); err != nil {
		return nil, fmt.Errorf("expire %q: %w", key, err)
	}
	r := getRequest(reqExpire)
	r.key, r.ttl = key, ttl
	return r, nil
}

// Persist removes key's expiry: it no longer expires (until an Expire or a
// write with a TTL). ErrNotFound when the key does not exist (or has
// expired).
func (n *Node) Persist(key string) error {
	_, err := n.exec(newPersist(key))
	return err
}

func newPersist(key string) (*request, error) {
	if !validKey(key) {
		return nil, keyError("persist", key)
	}
	r := getRequest(reqPersist)
	r.key = key
	return r, nil
}

// PutWith adds a register write with options (see Node.PutWith).
func (b *Batch) PutWith(key string, value any, o WriteOptions) {
	b.add(withTTL(newPut(key, value))(o))
}

// UpdateWith adds a document update with options (see Node.UpdateWith).
func (b *Batch) UpdateWith(key string, p Patch, o WriteOptions) {
	b.add(withTTL(newUpdate(key, p))(o))
}

// Expire adds an expiry (see Node.Expire).
func (b *Batch) Expire(key string, ttl time.Duration) { b.add(newExpire(key, ttl)) }

// Persist adds the removal of an expiry (see Node.Persist).
func (b *Batch) Persist(key string) { b.add(newPersist(key)) }

// Reclaiming. Reads hide an expired key at once (they compare its expiry
// with the node's clock); the sweep then reports it to subscribers
// (EventExpired) and, once every replica within MaxClockDrift finds it
// expired too, drops it from memory, and so from the next snapshot and,
// through WAL truncation, from disk. Nothing is written: every replica
// reclaims by itself (see the crdt package doc, "Reclaiming expired
// keys").
//
// The loop marks a group for a sweep step every SweepInterval, and again
// while a step found more to do (sweepAgain): at once when the node is
// idle, else after a rest (sweepPause), on the next group that writes
// bring; the applier runs the step after applying the group and
// answering its writers, under the state lock, within the bounds above.
// A step that reclaimed keys changed the state under the loop's rolling
// transaction, so the loop begins a fresh one (swept), as after a peer's
// records.

// sweepStep is one bounded step of the sweep, run by the applier; it
// returns how many keys it reported expired and how many it reclaimed.
func (n *Node) sweepStep() (expiredKeys, reclaimedKeys int) {
	now := n.readTime()
	horizon := crdt.MakeTimestamp(now.Physical()-n.opts.MaxClockDrift.Milliseconds(), 0)
	sh := n.mu.rlock()
	lag := n.ks.SweepLag(now, horizon)
	n.mu.runlock(sh)
	if lag < sweepCatchUp && n.writesWaiting() {
		// A young backlog waits for a moment when no write does (see
		// sweepGentleRest): even a short step then delays them. The
		// next tick tries again; a timer to try sooner, armed 200 times a
		// second under a saturating load, was itself what writes felt.
		return 0, 0
	}
	var evs []Event
	n.mu.Lock()
	locked := time.Now()
	var expired, reclaimed []string
	more := false
	for len(expired) < sweepLimit && len(reclaimed) < sweepLimit {
		e, r := n.ks.Sweep(now, horizon, sweepChunk)
		expired, reclaimed = append(expired, e...), append(reclaimed, r...)
		more = len(e) == sweepChunk || len(r) == sweepChunk
		if !more || n.writesWaiting() || time.Since(locked) >= sweepBudget {
			break
		}
	}
	if len(expired) > 0 && n.hub.active() {
		at := max(n.applied, 1) - 1 // the last record applied: resuming after it misses nothing
		for _, key := range expired {
			if n.hub.interested(key) {
				evs = append(evs, Event{Kind: EventExpired, Key: key, Deleted: true, Offset: at})
			}
		}
	}
	if len(reclaimed) > 0 {
		n.keys.Store(int64(n.ks.Len()))
	}
	n.mu.Unlock()
	held := time.Since(locked)
	n.m.keysExpired.Add(float64(len(expired)))
	if len(reclaimed) > 0 {
		n.m.keysReclaimed.Add(float64(len(reclaimed)))
		n.m.keys.Set(float64(n.keys.Load()))
		n.swept.Store(true)
	}
	n.hub.publish(evs)
	if more {
		select {
		case n.sweepAgain <- sweepPause(held, lag):
		default:
		}
	}
	return len(expired), len(reclaimed)
}

// sweepPause is the rest after a step that held the state lock for held
// and left a backlog lag old, while writes arrive (see sweepRest).
func sweepPause(held, lag time.Duration) time.Duration {
	if lag < sweepCatchUp {
		return max(sweepRest*held, sweepGentleRest)
	}
	return sweepRest * held
}

// expiring returns how many keys wait for the sweep to report their expiry,
// and how many were reported and wait to be reclaimed.
func (n *Node) expiring() (waiting, expired int) {
	sh := n.mu.rlock()
	defer n.mu.runlock(sh)
	return n.ks.Expiring()
}
