package node

import (
	"errors"
	"fmt"
	"testing"
)

// Type conflicts between two nodes: concurrent first writes of different
// types to one key (or document field) show the type of highest
// precedence; once a node that has seen both empties the visible value,
// the key (field) is gone on both nodes, never the hidden value again.

// deliver hands the records from's node committed locally since the last
// call to to, the way replication does.
func deliver(t *testing.T, from *recorder, to *Node, name string) {
	t.Helper()
	for _, c := range from.take() {
		if c.From != "" {
			continue // forwarded: to has it, or gets it from its origin
		}
		must(t, to.applyRemote(c.Record, name))
	}
}

func TestTypeConflictLoserNeverReappears(t *testing.T) {
	tests := []struct {
		name   string
		a, b   func(n *Node) error // concurrent first writes on a and b
		before string              // fmt of Get's Data after the exchange
		empty  func(n *Node) error // empties the visible value
	}{
		{"counter hidden by a set",
			func(n *Node) error { _, err := n.Incr("k", 5); return err },
			func(n *Node) error { return n.SetAdd("k", "x") },
			"[x]",
			func(n *Node) error { return n.SetRemove("k", "x") }},
		{"register hidden by a set",
			func(n *Node) error { return n.Put("k", "stale") },
			func(n *Node) error { return n.SetAdd("k", "x") },
			"[x]",
			func(n *Node) error { return n.SetRemove("k", "x") }},
		{"document field: register hidden by a map",
			func(n *Node) error { return n.Update("k", Patch{Set: map[string]any{"f": "old"}}) },
			func(n *Node) error {
				return n.Update("k", Patch{Nested: map[string]Patch{"f": {Set: map[string]any{"g": 1}}}})
			},
			"map[f:map[g:1]]",
			func(n *Node) error {
				return n.Update("k", Patch{Nested: map[string]Patch{"f": {Delete: []string{"g"}}}})
			}},
	}
	for _, tt := range tests {
		for _, emptier := range []string{"a", "b"} {
			t.Run(tt.name+"/emptied on "+emptier, func(t *testing.T) {
				a, _ := openTest(t, nil)
				b, _ := openTest(t, nil)
				ra, rb := record(a), record(b)
				must(t, tt.a(a))
				must(t, tt.b(b))
				deliver(t, ra, b, "a")
				deliver(t, rb, a, "b")
				for _, n := range []*Node{a, b} {
					v, err := n.Get("k")
					must(t, err)
					if got := fmt.Sprint(v.Data); got != tt.before {
						t.Fatalf("after the exchange: %s, want %s", got, tt.before)
					}
				}
				on, other, rec := a, b, ra
				if emptier == "b" {
					on, other, rec = b, a, rb
				}
				must(t, tt.empty(on))
				deliver(t, rec, other, emptier)
				for _, n := range []*Node{a, b} {
					// The document's only field f was emptied, so the
					// key is gone as well.
					if v, err := n.Get("k"); !errors.Is(err, ErrNotFound) {
						t.Fatalf("the hidden value reappeared: %v (a %v), err %v", v.Data, v.Type, err)
					}
				}
				if a.Digest() != b.Digest() {
					t.Fatal("digests differ")
				}
				// The key takes any type again (before the fix, the
				// reappeared value refused the add with ErrWrongType).
				orec := rb
				if other == a {
					orec = ra
				}
				must(t, other.SetAdd("k", "y"))
				deliver(t, orec, on, "other")
				if v, err := on.Get("k"); err != nil || fmt.Sprint(v.Data) != "[y]" {
					t.Fatalf("after a new add: %v, %v", v.Data, err)
				}
			})
		}
	}
}
