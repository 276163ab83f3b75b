package crdt_test

import (
	"fmt"

	"github.com/shoaldb/shoal/crdt"
)

// Two replicas write concurrently while apart, exchange their deltas in
// opposite orders, and converge to the same state.
func Example() {
	alice, bob := crdt.NewKeyspace(), crdt.NewKeyspace()
	const aliceID, bobID crdt.ReplicaID = 0xa, 0xb
	var aliceSeq, bobSeq uint64

	// write runs one operation on a replica, applies its delta there and
	// returns the delta to ship to the other replica.
	write := func(ks *crdt.Keyspace, id crdt.ReplicaID, seq *uint64, op func(*crdt.Tx) (*crdt.Delta, error)) *crdt.Delta {
		tx := ks.Begin(id, *seq)
		d, err := op(tx)
		if err != nil {
			panic(err)
		}
		*seq = tx.LastSeq()
		ks.Apply(d)
		return d
	}
	now := int64(1_700_000_000_000)

	// Alice and Bob both start from the same shopping list.
	start := write(alice, aliceID, &aliceSeq, func(tx *crdt.Tx) (*crdt.Delta, error) {
		return tx.SetAdd("list", "milk", "eggs")
	})
	bob.Apply(start)

	// Apart: Alice buys the milk and renames the list; Bob adds bread and
	// renames it too, one millisecond later; both count a visit.
	var fromAlice, fromBob []*crdt.Delta
	fromAlice = append(fromAlice,
		write(alice, aliceID, &aliceSeq, func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.SetRemove("list", "milk") }),
		write(alice, aliceID, &aliceSeq, func(tx *crdt.Tx) (*crdt.Delta, error) {
			return tx.Put("title", []byte(`"Groceries"`), crdt.NextTimestamp(0, now))
		}),
		write(alice, aliceID, &aliceSeq, func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Incr("visits", 1) }),
	)
	fromBob = append(fromBob,
		write(bob, bobID, &bobSeq, func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.SetAdd("list", "bread") }),
		write(bob, bobID, &bobSeq, func(tx *crdt.Tx) (*crdt.Delta, error) {
			return tx.Put("title", []byte(`"Shopping"`), crdt.NextTimestamp(0, now+1))
		}),
		write(bob, bobID, &bobSeq, func(tx *crdt.Tx) (*crdt.Delta, error) { return tx.Incr("visits", 1) }),
	)
	fmt.Println("apart:", alice.Digest() == bob.Digest())

	// Together again: deltas arrive in any order, some twice.
	for i := len(fromAlice) - 1; i >= 0; i-- {
		bob.Apply(fromAlice[i])
	}
	for _, d := range append(fromBob, fromBob...) {
		alice.Apply(d)
	}
	fmt.Println("together:", alice.Digest() == bob.Digest())

	for _, ks := range []*crdt.Keyspace{alice, bob} {
		list, _ := ks.Get("list", 0)
		title, _ := ks.Get("title", 0)
		visits, _ := ks.Get("visits", 0)
		fmt.Println(list.Set, string(title.Register), visits.Counter)
	}
	siblings, _ := alice.Siblings("title", 0)
	fmt.Println("concurrent titles:", len(siblings))
	// Output:
	// apart: false
	// together: true
	// [bread eggs] "Shopping" 2
	// [bread eggs] "Shopping" 2
	// concurrent titles: 2
}
