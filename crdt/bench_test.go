package crdt

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// Benchmarks. The large fixtures are built once per process.
//
//	go test -run XXX -bench . -benchtime 20000x ./crdt/

const (
	producer ReplicaID = 0xbeef
	bigSet             = 1_000_000
	bigMap             = 100_000
	bigKeys            = 1_000_000
)

func mustDelta(d *Delta, err error) *Delta {
	if err != nil {
		panic(err)
	}
	return d
}

var (
	setOnce    sync.Once
	setFixture *Keyspace
	mapOnce    sync.Once
	mapFixture *Keyspace
	keysOnce   sync.Once
	keysFix    *Keyspace
)

// sizedSet returns a keyspace whose key "s" is a set of n members.
func sizedSet(n int) *Keyspace {
	build := func() *Keyspace {
		k := NewKeyspace()
		if n == 0 {
			return k
		}
		ms := make([]string, n)
		for i := range ms {
			ms[i] = fmt.Sprintf("member-%07d", i)
		}
		k.Apply(mustDelta(k.Begin(1, 0).SetAdd("s", ms...)))
		return k
	}
	if n != bigSet {
		return build()
	}
	setOnce.Do(func() { setFixture = build() })
	return setFixture
}

// sizedMap returns a keyspace whose key "m" is a map of n register fields.
func sizedMap(n int) *Keyspace {
	build := func() *Keyspace {
		k := NewKeyspace()
		if n == 0 {
			return k
		}
		p := &Patch{Set: make(map[string][]byte, n)}
		for i := 0; i < n; i++ {
			p.Set[fmt.Sprintf("field-%06d", i)] = []byte(`"value"`)
		}
		k.Apply(mustDelta(k.Begin(1, 0).Update("m", p, 1)))
		return k
	}
	if n != bigMap {
		return build()
	}
	mapOnce.Do(func() { mapFixture = build() })
	return mapFixture
}

// manyKeys returns a keyspace of n small registers.
func manyKeys(n int) *Keyspace {
	build := func() *Keyspace {
		k := NewKeyspace()
		tx := k.Begin(1, 0)
		for i := 0; i < n; i++ {
			k.Apply(mustDelta(tx.Put(fmt.Sprintf("key-%07d", i), []byte(`"small"`), Timestamp(i))))
			tx = k.Begin(1, tx.LastSeq())
		}
		return k
	}
	if n != bigKeys {
		return build()
	}
	keysOnce.Do(func() { keysFix = build() })
	return keysFix
}

// BenchmarkSetAddJoin: applying a delta that adds one member costs the
// same whether the set is empty or holds a million members.
func BenchmarkSetAddJoin(b *testing.B) {
	for _, n := range []int{0, bigSet} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			benchJoins(b, sizedSet(n), newStream(func(tx *Tx, i int) (*Delta, error) {
				return tx.SetAdd("s", fmt.Sprintf("new-%d-%d", streams, i))
			}))
		})
	}
}

// BenchmarkSetAddLocal: the local write path (build the delta, apply it).
func BenchmarkSetAddLocal(b *testing.B) {
	for _, n := range []int{0, bigSet} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			k := sizedSet(n)
			seq := uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx := k.Begin(producer+1, seq)
				k.Apply(mustDelta(tx.SetAdd("s", "local-"+fmt.Sprint(i))))
				seq = tx.LastSeq()
			}
		})
	}
}

// BenchmarkMapFieldJoin: applying a delta that sets one new field costs
// the same for an empty map and a map of 100,000 fields.
func BenchmarkMapFieldJoin(b *testing.B) {
	for _, n := range []int{0, bigMap} {
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			benchJoins(b, sizedMap(n), newStream(func(tx *Tx, i int) (*Delta, error) {
				return tx.Update("m", &Patch{Set: map[string][]byte{fmt.Sprintf("new-%d-%d", streams, i): []byte(`1`)}}, 1)
			}))
		})
	}
}

// producerStream makes deltas of one replica in batches, each replacing
// the previous value (as a stream of writes from a peer looks). Batches
// keep the live heap small, so the garbage collector does not scan a
// b.N-sized pile of pending deltas while the joins are timed.
type producerStream struct {
	id  ReplicaID
	k   *Keyspace
	seq uint64
	op  func(tx *Tx, i int) (*Delta, error)
	n   int
}

var streams ReplicaID

// newStream starts a stream from a new replica, so that runs against a
// shared fixture never replay an earlier run's dots (those would be
// duplicates, and cost nothing).
func newStream(op func(tx *Tx, i int) (*Delta, error)) *producerStream {
	streams++
	return &producerStream{k: NewKeyspace(), op: op, id: producer + streams}
}

func (p *producerStream) next(buf []*Delta) []*Delta {
	buf = buf[:0]
	for len(buf) < cap(buf) {
		tx := p.k.Begin(p.id, p.seq)
		d := mustDelta(p.op(tx, p.n))
		p.n++
		p.seq = tx.LastSeq()
		p.k.Apply(d)
		buf = append(buf, d)
	}
	return buf
}

// benchJoins times k.Apply of the stream's deltas.
func benchJoins(b *testing.B, k *Keyspace, s *producerStream) {
	buf := make([]*Delta, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		buf = s.next(buf[:0:min(cap(buf), b.N-done)])
		b.StartTimer()
		for _, d := range buf {
			k.Apply(d)
		}
		done += len(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkRegisterJoin and BenchmarkCounterJoin: delta joins per second
// on one core (goal: at least 1,000,000/s).
func BenchmarkRegisterJoin(b *testing.B) {
	benchJoins(b, NewKeyspace(), newStream(func(tx *Tx, i int) (*Delta, error) {
		return tx.Put("r", []byte(`"a small json value"`), Timestamp(i))
	}))
}

func BenchmarkCounterJoin(b *testing.B) {
	benchJoins(b, NewKeyspace(), newStream(func(tx *Tx, i int) (*Delta, error) { return tx.Incr("c", 1) }))
}

// BenchmarkDigest: Digest of a 1,000,000-key state after each write (the
// incremental path: O(replicas)), against recomputing every key's hash.
func BenchmarkDigest(b *testing.B) {
	k := manyKeys(bigKeys)
	b.Run("incremental-after-write", func(b *testing.B) {
		seq := k.ctx.VV[1]
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tx := k.Begin(1, seq)
			k.Apply(mustDelta(tx.Put(fmt.Sprintf("key-%07d", i%bigKeys), []byte(`"changed"`), Timestamp(bigKeys+i))))
			seq = tx.LastSeq()
			_ = k.Digest()
		}
	})
	b.Run("digest-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = k.Digest()
		}
	})
	b.Run("recompute-1M-keys", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = k.recomputeSum()
		}
	})
}

// BenchmarkMemoryPerKey reports the heap held per key of a keyspace of
// small registers (a 7-byte JSON value, 11-byte keys), 1,000,000 of them.
// It measures once, whatever b.N.
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = bigKeys
	{
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		k := manyKeys(n - 1) // not the shared fixture: build a fresh one
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/key")
		runtime.KeepAlive(k)
	}
}

// BenchmarkPutLocal: the local register write path (Tx.Put + Apply) on a
// keyspace of 100,000 keys, one Tx per write.
func BenchmarkPutLocal(b *testing.B) {
	k := manyKeys(100_000)
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%07d", i)
	}
	seq := k.ctx.VV[1]
	val := []byte(`"a small json value"`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx := k.Begin(1, seq)
		k.Apply(mustDelta(tx.Put(keys[i%len(keys)], val, Timestamp(1e6+i))))
		seq = tx.LastSeq()
	}
}
