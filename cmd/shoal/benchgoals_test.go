package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestGoalsTable prints each goal beside its figure, met or not.
func TestGoalsTable(t *testing.T) {
	var b bytes.Buffer
	goals := []goalCheck{newGoal("a ratio", 0.43, ">=", 0.5, ""), newGoal("a p99", 8.2, "<=", 10, "ms"), newGoal("a rate", 4990, ">=", 4900, "/s")}
	if goals[0].Met || !goals[1].Met || !goals[2].Met {
		t.Fatalf("verdicts %+v", goals)
	}
	if err := printGoals(&b, goals); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) != 5 {
		t.Fatalf("goals table:\n%s", b.String())
	}
	for i, want := range [][]string{{"a ratio", "0.43", "goal >= 0.50", "NOT MET"}, {"a p99", "8.20ms", "goal <= 10.0ms", " met"}, {"a rate", "4,990/s", "goal >= 4,900/s", " met"}} {
		for _, s := range want {
			if !strings.Contains(lines[i+1], s) {
				t.Errorf("goal line %q lacks %q", lines[i+1], s)
			}
		}
	}
	if err := printGoals(io.Discard, nil); err != nil {
		t.Fatal(err)
	}
}
