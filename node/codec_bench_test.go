package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoaldb/shoal/crdt"
	"github.com/vmihailenco/msgpack/v5"
)

// The hand-written record codec (codec.go) and JSON value codec (json.go)
// are here only because they beat the libraries they replace
// (vmihailenco/msgpack/v5 and encoding/json). These benchmarks time both
// on the same inputs, alternating in one run, and report each one's cost
// and the library's cost over ours (above 1: ours is faster):
//
//	go test -run '^$' -bench 'Codec|JSONValue' ./node/

// codecBenchOps returns records of the shapes the WAL holds: a register Put of
// a 256-byte string, a counter increment, a set add, a document update,
// and a batch of 16 Puts in one record.
func codecBenchOps(b *testing.B) map[string]*Op {
	ks := crdt.NewKeyspace()
	tx := ks.Begin(crdt.ReplicaID(0x1234abcd), 0)
	ts := crdt.MakeTimestamp(1_700_000_000_000, 0)
	val := []byte(`"` + value256 + `"`)
	op := func(d *crdt.Delta, err error) *Op {
		if err != nil {
			b.Fatal(err)
		}
		return &Op{V: OpVersion, Kind: OpDelta, Origin: 0x1234abcd, Time: ts, Delta: d}
	}
	ops := map[string]*Op{
		"put256": op(tx.Put("user/000042", val, ts)),
		"incr":   op(tx.Incr("visits/home", 1)),
		"setadd": op(tx.SetAdd("tags/post-7", "go", "crdt", "wal", "gossip", "db")),
		"update": op(tx.Update("doc/7", &crdt.Patch{
			Set:  map[string][]byte{"title": []byte(`"hello"`), "body": []byte(`"` + value256[:120] + `"`)},
			Incr: map[string]int64{"views": 3},
			Add:  map[string][]string{"tags": {"a", "b"}},
		}, ts)),
	}
	var batch []*crdt.Delta
	for i := range 16 {
		d, err := tx.Put(fmt.Sprintf("batch/%04d", i), val, ts)
		must(b, err)
		batch = append(batch, d)
	}
	ops["batch16"] = op(crdt.JoinDeltas(batch...), nil)
	return ops
}

// decodeOpLibrary is DecodeOp with the library in place of the
// hand-written decoder: the same checks before and after.
func decodeOpLibrary(rec []byte) (*Op, error) {
	if err := checkMsgpack(rec, maxOpDepth); err != nil {
		return nil, err
	}
	op := &Op{}
	if err := msgpack.Unmarshal(rec, op); err != nil {
		return nil, err
	}
	return op, op.validate()
}

// race times ours and theirs alternately in slices of b.N/8 calls and
// reports both costs and their ratio.
func race(b *testing.B, ours, theirs func() error) {
	var tOurs, tTheirs time.Duration
	slice := max(b.N/8, 1)
	for done := 0; done < b.N; done += slice {
		for _, c := range []struct {
			f func() error
			t *time.Duration
		}{{ours, &tOurs}, {theirs, &tTheirs}} {
			start := time.Now()
			for range slice {
				if err := c.f(); err != nil {
					b.Fatal(err)
				}
			}
			*c.t += time.Since(start)
		}
	}
	n := float64((b.N + slice - 1) / slice * slice)
	b.ReportMetric(float64(tOurs.Nanoseconds())/n, "ours-ns/op")
	b.ReportMetric(float64(tTheirs.Nanoseconds())/n, "library-ns/op")
	b.ReportMetric(float64(tTheirs)/float64(tOurs), "library/ours")
}

// BenchmarkCodec: EncodeOp and DecodeOp against vmihailenco/msgpack/v5 on
// the same records. The records agree (checked before timing): the
// library decodes ours to the same Op, and ours decodes the library's.
func BenchmarkCodec(b *testing.B) {
	for name, op := range codecBenchOps(b) {
		ours, err := EncodeOp(op)
		must(b, err)
		lib, err := encodeOpLibrary(op)
		must(b, err)
		a, err := decodeOpLibrary(ours)
		must(b, err)
		c, err := DecodeOp(lib)
		must(b, err)
		if !reflect.DeepEqual(a, c) {
			b.Fatalf("%s: the codecs disagree:\n%+v\n%+v", name, a, c)
		}
		b.Run(name+"/encode", func(b *testing.B) {
			race(b, func() error { _, err := EncodeOp(op); return err },
				func() error { _, err := encodeOpLibrary(op); return err })
			b.ReportMetric(float64(len(ours)), "record-bytes")
		})
		b.Run(name+"/decode", func(b *testing.B) {
			race(b, func() error { _, err := DecodeOp(ours); return err },
				func() error { _, err := decodeOpLibrary(ours); return err })
		})
	}
}

// BenchmarkJSONValue: the register value codec against encoding/json, on
// what registers hold: a 256-byte string, a number, and a small object.
// Decoding checks the input as strictly as json.Valid and returns the same
// values (json_test.go); the library side decodes with UseNumber, as the
// number rule needs (int64 when exact, else float64).
func BenchmarkJSONValue(b *testing.B) {
	values := map[string]string{
		"string256": `"` + value256 + `"`,
		// text with escapes every 16 bytes or so, like redis-benchmark's data
		"escaped256": `"` + strings.Repeat(`VXKeHogKgJ=[5\\gY8a3LG\n`, 10) + `"`,
		"number":     `1234567`,
		"object":     `{"name":"Ada Lovelace","age":36,"tags":["math","engines"],"active":true,"score":98.5}`,
	}
	for name, raw := range values {
		in := []byte(raw)
		v, err := decodeValue(in)
		must(b, err)
		b.Run(name+"/decode", func(b *testing.B) {
			race(b, func() error { _, err := decodeValue(in); return err },
				func() error {
					d := json.NewDecoder(bytes.NewReader(in))
					d.UseNumber()
					var out any
					return d.Decode(&out)
				})
		})
		b.Run(name+"/encode", func(b *testing.B) {
			race(b, func() error { _, err := encodeValue(v); return err },
				func() error { _, err := json.Marshal(v); return err })
		})
	}
}
