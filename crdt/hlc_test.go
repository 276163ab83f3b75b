package crdt

import (
	"testing"

	"pgregory.net/rapid"
)

func TestTimestampParts(t *testing.T) {
	ts := MakeTimestamp(1_700_000_000_123, 7)
	if ts.Physical() != 1_700_000_000_123 || ts.Logical() != 7 {
		t.Fatalf("parts: %d %d", ts.Physical(), ts.Logical())
	}
	if MakeTimestamp(-5, 0).Physical() != 0 || MakeTimestamp(1<<60, 0).Physical() != maxPhysical {
		t.Fatal("physical time is not clamped to 48 bits")
	}
}

func TestNextTimestamp(t *testing.T) {
	tests := []struct {
		name string
		last Timestamp
		now  int64
		want Timestamp
	}{
		{"clock moves on", MakeTimestamp(100, 5), 101, MakeTimestamp(101, 0)},
		{"same millisecond", MakeTimestamp(100, 5), 100, MakeTimestamp(100, 6)},
		{"clock went back", MakeTimestamp(100, 5), 90, MakeTimestamp(100, 6)},
		{"logical overflow carries", MakeTimestamp(100, maxLogical), 100, MakeTimestamp(101, 0)},
		{"end of time", MakeTimestamp(maxPhysical, maxLogical), 0, MakeTimestamp(maxPhysical, maxLogical)},
	}
	for _, tt := range tests {
		if got := NextTimestamp(tt.last, tt.now); got != tt.want {
			t.Errorf("%s: %d.%d, want %d.%d", tt.name, got.Physical(), got.Logical(), tt.want.Physical(), tt.want.Logical())
		}
	}
}

func TestWitnessTimestamp(t *testing.T) {
	const now = 1_000_000
	tests := []struct {
		name      string
		last, rem Timestamp
		want      Timestamp
		ahead     bool
	}{
		{"remote behind", MakeTimestamp(now, 3), MakeTimestamp(now-10, 9), MakeTimestamp(now, 4), false},
		{"remote ahead within drift", MakeTimestamp(now, 3), MakeTimestamp(now+500, 9), MakeTimestamp(now+500, 10), false},
		{"remote too far ahead is clamped", MakeTimestamp(now, 3), MakeTimestamp(now+1_000_000, 9), MakeTimestamp(now+1000, 1), true},
	}
	for _, tt := range tests {
		got, ahead := WitnessTimestamp(tt.last, tt.rem, now, 1000)
		if got != tt.want || ahead != tt.ahead {
			t.Errorf("%s: %d.%d ahead=%v, want %d.%d ahead=%v", tt.name, got.Physical(), got.Logical(), ahead,
				tt.want.Physical(), tt.want.Logical(), tt.ahead)
		}
	}
}

// The clock never goes backwards and always moves past what it witnessed
// (unless clamped).
func TestClockMonotonic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var last Timestamp
		for i := 0; i < 50; i++ {
			now := rapid.Int64Range(0, 1<<40).Draw(t, "now")
			var next Timestamp
			if rapid.Bool().Draw(t, "witness") {
				remote := Timestamp(rapid.Uint64Range(0, 1<<56).Draw(t, "remote"))
				var ahead bool
				next, ahead = WitnessTimestamp(last, remote, now, 5000)
				if !ahead && next <= remote {
					t.Fatalf("witnessed %v, next %v", remote, next)
				}
				if ahead && next.Physical() > max(last.Physical(), now+5000)+1 {
					t.Fatalf("clamped clock ran to %d (now %d)", next.Physical(), now)
				}
			} else {
				next = NextTimestamp(last, now)
			}
			if next <= last {
				t.Fatalf("clock went back: %v after %v", next, last)
			}
			last = next
		}
	})
}
