package crdt

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchmarkApplyPut: applying register-write deltas made elsewhere (the WAL
// replay path) to a keyspace of 100,000 keys, each delta validated first
// as a decoder does.
func BenchmarkApplyPut(b *testing.B) {
	const nkeys = 100_000
	src := manyKeys(nkeys)
	seq := src.ctx.VV[1]
	ds := make([]*Delta, 0, 1<<16)
	tx := src.Begin(1, seq)
	for i := 0; i < cap(ds); i++ {
		ds = append(ds, mustDelta(tx.Put(fmt.Sprintf("key-%07d", i%nkeys), []byte(`"a small json value"`), Timestamp(1e6+i))))
	}
	for _, d := range ds {
		if err := d.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var k *Keyspace
	for i := 0; i < b.N; i++ {
		if i%len(ds) == 0 {
			b.StopTimer()
			k = manyKeys(nkeys)
			b.StartTimer()
		}
		k.Apply(ds[i%len(ds)])
	}
}

// BenchmarkTxPutGroup: many register writes in one Tx (node builds a write
// group this way), on a keyspace of 100,000 keys.
func BenchmarkTxPutGroup(b *testing.B) {
	k := manyKeys(100_000)
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%07d", i)
	}
	val := []byte(`"a small json value"`)
	seq := k.ctx.VV[1]
	tx := k.Begin(1, seq)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%256 == 0 {
			tx = k.Begin(1, tx.LastSeq())
		}
		mustDelta(tx.Put(keys[i%len(keys)], val, Timestamp(1e6+i)))
	}
}

// BenchmarkSweep: a mass expiry, 100,000 keys that expire at the same
// time, reported and reclaimed by Sweep eight keys at a time (as the
// node's sweep steps do); ns/op is per key (reported and reclaimed).
func BenchmarkSweep(b *testing.B) {
	const nkeys = 100_000
	val := []byte(`"a small json value"`)
	at := MakeTimestamp(2_000_000, 0)
	now := MakeTimestamp(3_000_000, 0)
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		k := NewKeyspace()
		for i := range nkeys {
			tx := k.Begin(1, uint64(2*i))
			key := fmt.Sprintf("key-%07d", i)
			k.Apply(mustDelta(tx.Put(key, val, MakeTimestamp(1_000_000, 0))))
			k.Apply(mustDelta(tx.Expire(key, at)))
		}
		b.StartTimer()
		for done < b.N {
			e, r := k.Sweep(now, now, 8)
			if len(e) == 0 && len(r) == 0 {
				break
			}
			done += len(r)
		}
		b.StopTimer()
	}
}

// BenchmarkRangeScan: the sums of a periodic state comparison (node's
// summary and its peer's comparison) over 200,000 keys written in random
// order, 1,023 ranges, 4,096 keys a step; reported per key.
func BenchmarkRangeScan(b *testing.B) {
	const nkeys = 200_000
	k := NewKeyspace()
	tx := k.Begin(1, 0)
	val := []byte(`"` + strings.Repeat("v", 254) + `"`)
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(nkeys) {
		k.Apply(mustDelta(tx.Put(fmt.Sprintf("key/%08d", i), val, Timestamp(1e6+i))))
		tx = k.Begin(1, tx.LastSeq())
	}
	bounds := k.KeyQuantiles(1024)
	b.ResetTimer()
	for range b.N {
		s := k.StartRangeScan(bounds)
		for s.Step(4096) {
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nkeys, "ns/key")
}
