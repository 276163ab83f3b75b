package crdt

// Timestamp is a hybrid logical clock reading: 48 bits of physical time in
// Unix milliseconds, then a 16-bit logical counter. Timestamps compare as
// integers. The clock is pure: callers pass the wall time in, so crdt never
// reads a clock.
type Timestamp uint64

const (
	maxPhysical = 1<<48 - 1
	maxLogical  = 1<<16 - 1
)

// MakeTimestamp builds a timestamp, clamping physical to 0..2^48-1.
func MakeTimestamp(physicalMillis int64, logical uint16) Timestamp {
	return Timestamp(uint64(clampPhysical(physicalMillis))<<16 | uint64(logical))
}

func clampPhysical(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	if ms > maxPhysical {
		return maxPhysical
	}
	return ms
}

// Physical returns the physical part in Unix milliseconds.
func (t Timestamp) Physical() int64 { return int64(t >> 16) }

// Logical returns the logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t) }

// NextTimestamp returns the timestamp of a local event: after last, and at
// least nowMillis. When the wall clock does not advance (or goes back), the
// logical counter does; when that overflows, the physical part moves on by a
// millisecond.
func NextTimestamp(last Timestamp, nowMillis int64) Timestamp {
	now := MakeTimestamp(nowMillis, 0)
	if now > last {
		return now
	}
	if last == Timestamp(maxPhysical<<16|maxLogical) {
		return last // the end of time: stay there rather than wrap
	}
	return last + 1 // logical+1, carrying into the physical part
}

// WitnessTimestamp folds a remote timestamp into the local clock and returns
// the next local timestamp, after both last and remote. A remote physical
// time more than maxDrift milliseconds ahead of nowMillis is accepted by the
// caller (registers keep such a write: convergence needs it), but the local
// clock only advances to nowMillis+maxDrift; ahead reports that this
// happened, so the node can count it.
func WitnessTimestamp(last, remote Timestamp, nowMillis int64, maxDrift int64) (next Timestamp, ahead bool) {
	if maxDrift < 0 {
		maxDrift = 0
	}
	limit := MakeTimestamp(nowMillis+maxDrift, 0)
	if nowMillis > maxPhysical-maxDrift {
		limit = MakeTimestamp(maxPhysical, 0)
	}
	if remote.Physical() > limit.Physical() {
		remote, ahead = limit, true
	}
	if remote > last {
		last = remote
	}
	return NextTimestamp(last, nowMillis), ahead
}
