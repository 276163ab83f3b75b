package node

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/shoaldb/shoal/crdt"
)

// preExpiryRecord is a record (a Put of "k" and a SetAdd of "s" in one
// delta) as written before expiry items existed: entries without an "e"
// field. Expiries added a field; records without expiry items keep their
// bytes, so logs written before decode, and encode, unchanged.
const preExpiryRecord = "85a17601a16b01a16fcd1234a174cf018bcfe568000000a16483a16b82a16b81a1729183a16482a172cd1234a17301a174cf018bcfe568000000a176c403227622a17381a17381a16d9182a172cd1234a17302a16381a17681cd123402a16f9183a172cd1234a16601a16c02"

func TestDecodeRecordWithoutExpiry(t *testing.T) {
	rec, err := hex.DecodeString(preExpiryRecord)
	must(t, err)
	op, err := DecodeOp(rec)
	must(t, err)
	ks := crdt.NewKeyspace()
	ks.Apply(op.Delta)
	v, ok := ks.Get("k", crdt.MakeTimestamp(1<<46, 0))
	if !ok || string(v.Register) != `"v"` || v.Expires != 0 {
		t.Fatalf("k: %+v %v", v, ok)
	}
	if v, ok := ks.Get("s", 0); !ok || len(v.Set) != 1 || v.Expires != 0 {
		t.Fatalf("s: %+v %v", v, ok)
	}
	again, err := EncodeOp(op)
	must(t, err)
	if !bytes.Equal(again, rec) {
		t.Fatalf("a record without expiry items encodes differently now:\n%x\n%x", again, rec)
	}
}

// wal dump (DescribeOp) shows expiry items: the time of an expiry, or a
// persist.
func TestDescribeExpiry(t *testing.T) {
	ks := crdt.NewKeyspace()
	tx := ks.Begin(crdt.ReplicaID(7), 0)
	ts := crdt.MakeTimestamp(1_700_000_000_000, 0)
	put, err := tx.Put("k", []byte(`1`), ts)
	must(t, err)
	exp, err := tx.Expire("k", ts+1<<20)
	must(t, err)
	per, err := tx.Persist("k")
	must(t, err)
	for _, c := range []struct {
		d       *crdt.Delta
		typ     string
		persist bool
	}{{crdt.JoinDeltas(put, exp), "register+expiry", false}, {per, "expiry", true}} {
		lines := DescribeOp(0, &Op{V: OpVersion, Kind: OpDelta, Origin: 7, Time: ts, Delta: c.d}, "")
		if len(lines) != 1 || lines[0].Type != c.typ {
			t.Fatalf("lines %+v, want one of type %s", lines, c.typ)
		}
		xs, _ := (*lines[0].Delta)["expiry"].([]map[string]any)
		if len(xs) != 1 || xs[0]["persist"] != c.persist || (!c.persist && xs[0]["expires_hlc"] != uint64(ts+1<<20)) {
			t.Fatalf("expiry rendered as %+v", (*lines[0].Delta)["expiry"])
		}
	}
}
