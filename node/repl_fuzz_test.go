package node

import (
	"testing"

	"github.com/shoaldb/shoal/crdt"
)

// FuzzDecodeDigest: a peer's digest never panics the decoder, and what
// decodes re-encodes to an equal digest.
func FuzzDecodeDigest(f *testing.F) {
	a := &crdt.Context{}
	a.Add(crdt.Dot{Replica: 7, Seq: 1})
	a.Add(crdt.Dot{Replica: 7, Seq: 3})
	for _, d := range []*syncDigest{
		{V: digestVersion, Replica: 1},
		{V: digestVersion, Replica: 2, Applied: a},
		{V: digestVersion, Replica: 3, Applied: a, Caps: capRangeSums, State: make([]byte, 32),
			Ranges: []string{"a", "b", "c", ""}, RangeCtx: a, RangeApplied: a},
	} {
		b, err := encodeDigest(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x83, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDigest(b)
		if err != nil {
			return
		}
		again, err := encodeDigest(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeDigest(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d2.Replica != d.Replica || !d2.Applied.Equal(d.Applied) {
			t.Fatalf("round trip changed the digest: %+v vs %+v", d, d2)
		}
	})
}
