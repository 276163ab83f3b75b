package crdt

// Entry is the state of one key or one map field: a dot store per type.
// Normally one store is in use; after concurrent first writes of different
// types several are (a type conflict), and the view shows the one of
// highest precedence (map > set > counter > register > flag). The join
// keeps them all; the first operation on the entry by a replica that has
// seen them removes, in its delta, the values of the other types it has
// seen, so that a hidden value never shows again once the visible one is
// emptied (see the package doc, "Type conflicts").
//
// Merge rule, the same for every store: a dotted value is kept when both
// sides hold it, or when one side holds it and the other side's context has
// not seen its dot; a value one side holds and the other has seen but
// dropped was removed, and stays removed. Per type:
//
//   - Register (Reg): a multi-value register. A write adds a sibling under a
//     fresh dot and drops the siblings its replica has seen; concurrent
//     writes stay siblings. Read: the sibling with the highest (Time, replica
//     ID, seq); value bytes are never compared.
//   - Counter (Cnt): each replica's cumulative contribution under its latest
//     dot; an increment replaces its replica's previous contribution. Value:
//     the sum (wrapping like int64).
//   - Set (Set): add-wins observed-remove set. Each add of a member gets a
//     fresh dot; a remove drops the member's dots its replica has seen, so a
//     concurrent add survives. A member with no dot is absent: no tombstones.
//   - Map (Map): observed-remove map of fields, each an Entry joined by these
//     same rules; a field with no dot is absent.
//   - Flag (Flag): enable-wins flag. Enable adds a fresh dot and drops the
//     seen ones; disable drops the seen ones; enabled while any dot remains.
//   - Expiry (Exp, keys only, never map fields): a multi-value register of
//     expiry times. Setting one adds an item under a fresh dot and drops
//     the items its replica has seen; concurrent items stay. The key's
//     expiry is the latest At among them, or none when an item has At 0
//     (a Persist) or there is no item (see Expiry and the package doc,
//     "Expiry"). Expiry items are not a value: an entry holding only them
//     is a key that does not exist (it is kept, invisible, until the sweep
//     reclaims it or the next write removes them).
//
// Laws: with contexts, the join of entries is commutative, associative and
// idempotent (tested by name per type: TestJoinIdempotent and friends).
//
// In a delta an Entry also marks which paths the delta touches: a member or
// field listed with no dots says "the dots of this path in my context are
// removed", and All says the same of every path under the entry (a delete).
// Keyspace.Apply visits only the paths a delta lists, which makes applying a
// delta cost O(size of the delta). Register, counter and flag stores are
// small and always joined whole when their entry is listed.
type Entry struct {
	Reg  []RegValue        `msgpack:"r,omitempty"` // register siblings, sorted by dot
	Cnt  []CountValue      `msgpack:"n,omitempty"` // counter contributions, sorted by dot
	Set  map[string][]Dot  `msgpack:"s,omitempty"` // set: member -> dots of its adds, sorted
	Map  map[string]*Entry `msgpack:"m,omitempty"` // map: field -> field state
	Flag []Dot             `msgpack:"f,omitempty"` // flag: dots of enables, sorted
	Exp  []ExpValue        `msgpack:"e,omitempty"` // key only: expiry items, sorted by dot
	All  bool              `msgpack:"a,omitempty"` // delta only: every path under this entry is touched

	// hx is an int32 so that it shares a word with All: kh then costs an
	// entry no size class (208 bytes with a register sibling, as before).
	hx int32     // keyspace only: 1 + the entry's position in the expiry queue, 0 when not in it
	h  sum128    // keyspace only: sum of the hashes of the entry's items
	kh sum128    // keyspace only, top-level entries: the key's hash in the digest (keyHash), kept with h
	ix Timestamp // keyspace only: the expiry the entry was last queued for (0: none)
}

// ExpValue is one expiry item of a key: set by the event Dot, the key
// expires at At (an HLC time); At Persisted (0) means never (a Persist,
// which wins over every concurrent expiry).
type ExpValue struct {
	Dot Dot       `msgpack:"d"`
	At  Timestamp `msgpack:"t"`
}

// Persisted is the At of a Persist item, and the Expiry of a key that
// never expires.
const Persisted Timestamp = 0

// Expiry returns the expiry the items xs give a key: 0 (none) when there
// is no item or one of them is a Persist (At 0), else the latest At. It is
// a function of the set of items, so every replica holding the same items
// computes the same expiry.
func Expiry(xs []ExpValue) Timestamp {
	var at Timestamp
	for _, x := range xs {
		if x.At == 0 {
			return 0
		}
		at = max(at, x.At)
	}
	return at
}

// RegValue is one register sibling: a value written at time Time by the
// event Dot.
type RegValue struct {
	Dot   Dot       `msgpack:"d"`
	Time  Timestamp `msgpack:"t"`
	Value []byte    `msgpack:"v"`
}

// CountValue is the cumulative contribution N of replica Dot.Replica to a
// counter, as of its event Dot.
type CountValue struct {
	Dot Dot   `msgpack:"d"`
	N   int64 `msgpack:"n"`
}

// View is a read-only copy of a key's (or field's) visible value.
type View struct {
	Type     Type
	Expires  Timestamp       // keys only: when the key expires; 0 = never
	Register []byte          // register: the winning value
	Counter  int64           // counter: the sum of the contributions
	Set      []string        // set: the members, sorted
	Map      map[string]View // map: the visible fields
	Flag     bool            // flag: enabled
}

// Sibling is one concurrent value of a register.
type Sibling struct {
	Dot   Dot
	Time  Timestamp
	Value []byte
}

// KeyInfo names a key and its visible type.
type KeyInfo struct {
	Key  string
	Type Type
}

// Change reports that a key's state changed; Deleted when the key no
// longer has a value (it may still hold expiry items, see Entry).
type Change struct {
	Key     string
	Deleted bool
}

// Patch is an update of a map (document). The parts apply in this order:
// Delete, Set, Incr, Add, Remove, Enable, Disable, Nested. Within a part,
// fields apply in sorted order.
type Patch struct {
	Set     map[string][]byte   // field -> register value
	Delete  []string            // observed remove of fields
	Incr    map[string]int64    // counter fields
	Add     map[string][]string // set fields: members to add
	Remove  map[string][]string // set fields: members to remove
	Enable  []string            // flag fields
	Disable []string            // flag fields
	Nested  map[string]*Patch   // map fields
}
