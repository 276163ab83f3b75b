package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
)

// Benchmarks, meant to be read as ratios measured in the same run (the
// machine is shared and noisy):
//
//	go test -run '^$' -bench DurablePut -benchtime 4x ./node/      # vs raw group commit and bbolt
//	go test -run '^$' -bench Get ./node/
//	go test -run '^$' -bench Replay -benchtime 3x ./node/           # SHOAL_NODE_BENCH_OPS=1000000
//	go test -run '^$' -bench MemoryPerKey -benchtime 1x ./node/

// value256 is a string whose canonical JSON is exactly 256 bytes.
var value256 = strings.Repeat("v", 254)

// rawGroup is the raw group-commit baseline (the same as the wal
// package's): writers add to a buffer; one that finds no sync in progress
// writes the whole buffer with one write(2) and one fdatasync and wakes
// the others. No framing, no index, no checksum: the disk's limit.
type rawGroup struct {
	f       *os.File
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	spare   []byte
	gen     uint64
	synced  uint64
	leading bool
}

func newRawGroup(b *testing.B) *rawGroup {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	g := &rawGroup{f: f}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *rawGroup) append(rec []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf = append(g.buf, rec...)
	my := g.gen
	for g.synced <= my {
		if g.leading {
			g.cond.Wait()
			continue
		}
		g.leading = true
		buf := g.buf
		g.buf, g.spare = g.spare[:0], nil
		gen := g.gen
		g.gen++
		g.mu.Unlock()
		_, err := g.f.Write(buf)
		if err == nil {
			err = syscall.Fdatasync(int(g.f.Fd()))
		}
		g.mu.Lock()
		g.spare = buf
		g.leading = false
		if err != nil {
			return err
		}
		g.synced = gen + 1
		g.cond.Broadcast()
	}
	return nil
}

// runFor runs w goroutines calling op until d passed; it returns the
// operations done and the time until the last goroutine stopped.
func runFor(b *testing.B, w int, d time.Duration, op func(g int, i int) error) (int, time.Duration) {
	var stop atomic.Bool
	var count atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for g := range w {
		wg.Go(func() {
			n := 0
			for ; !stop.Load(); n++ {
				if err := op(g, n); err != nil {
					b.Error(err)
					break
				}
			}
			count.Add(int64(n))
		})
	}
	wg.Wait()
	return int(count.Load()), time.Since(start)
}

type contender struct {
	name string
	op   func(g, i int) error
}

// compare alternates the contenders in slices of d for b.N rounds, so the
// shared machine's drift hits all alike, and reports each one's rate and
// its ratio to the first (the baseline).
func compare(b *testing.B, w int, d time.Duration, cs ...contender) {
	counts := make([]int, len(cs))
	times := make([]time.Duration, len(cs))
	for range b.N {
		for i, c := range cs {
			n, t := runFor(b, w, d, c.op)
			counts[i] += n
			times[i] += t
		}
	}
	rate := func(i int) float64 { return float64(counts[i]) / times[i].Seconds() }
	for i, c := range cs {
		b.ReportMetric(rate(i), c.name+"-ops/s")
		if i > 0 {
			b.ReportMetric(rate(i)/rate(0), c.name+"/"+cs[0].name)
		}
	}
	if len(cs) > 2 { // the second contender against the others
		for i := 2; i < len(cs); i++ {
			b.ReportMetric(rate(1)/rate(i), cs[1].name+"/"+cs[i].name)
		}
	}
}

// BenchmarkDurablePut: durable Put of a 256-byte value from 1, 64 and 256
// goroutines, against the raw group commit (goal: node/raw >= 0.5) and
// bbolt's db.Batch (goal: node/bbolt >= 3) at the same writer count.
func BenchmarkDurablePut(b *testing.B) {
	for _, w := range []int{1, 64, 256} {
		b.Run("writers="+strconv.Itoa(w), func(b *testing.B) {
			raw := newRawGroup(b)
			rec := make([]byte, 256)
			n, err := Open(b.TempDir(), &Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			db, err := bolt.Open(filepath.Join(b.TempDir(), "bolt.db"), 0o644, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			bucket := []byte("kv")
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
				b.Fatal(err)
			}
			keys := make([]string, 100_000)
			for i := range keys {
				keys[i] = fmt.Sprintf("key/%08d", i)
			}
			val := []byte(`"` + value256 + `"`)
			b.ResetTimer()
			compare(b, w, 250*time.Millisecond,
				contender{"raw", func(g, i int) error { return raw.append(rec) }},
				contender{"node", func(g, i int) error { return n.Put(keys[(g*7919+i)%len(keys)], value256) }},
				contender{"bbolt", func(g, i int) error {
					k := keys[(g*7919+i)%len(keys)]
					return db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(k), val) })
				}},
			)
			b.ReportMetric(float64(w), "writers")
		})
	}
}

// BenchmarkGet: Get of 256-byte registers, random keys, from GOMAXPROCS
// goroutines (2 on the reference machine; goal >= 2,000,000/s). With
// 100,000 keys most reads miss the CPU caches (the state is ~50 MB); with
// 1,000 they hit.
func BenchmarkGet(b *testing.B) {
	for _, keys := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint("keys=", keys), func(b *testing.B) {
			n, err := Open(b.TempDir(), &Options{Sync: SyncNever, SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			names := make([]string, keys)
			var batch Batch
			for i := range keys {
				names[i] = fmt.Sprintf("key/%08d", i)
				batch.Put(names[i], value256)
				if batch.Len() == 1000 {
					if err := n.Commit(&batch); err != nil {
						b.Fatal(err)
					}
					batch.Reset()
				}
			}
			var seed atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 0))
				for pb.Next() {
					if _, err := n.Get(names[rng.IntN(keys)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "goroutines")
		})
	}
}

func benchOps() int { return benchEnv("SHOAL_NODE_BENCH_OPS", 1_000_000) }

// benchEnv is the positive integer the environment variable name holds,
// else def.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// buildWAL writes ops single-operation records (puts of small values over
// ops/4 keys, and increments) with 64 writers, and closes the node.
func buildWAL(b *testing.B, dir string, ops int, snapshot bool) {
	n, err := Open(dir, &Options{Sync: SyncNever, SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	const w = 64
	var wg sync.WaitGroup
	for g := range w {
		wg.Go(func() {
			for i := g; i < ops; i += w {
				var err error
				if i%8 == 7 {
					_, err = n.Incr(fmt.Sprint("counter/", i%1000), 1)
				} else {
					err = n.Put(fmt.Sprintf("key/%08d", i%(ops/4+1)), i)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if snapshot {
		if err := n.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplay: Open of a directory holding a 1,000,000-record WAL,
// without a snapshot (goal >= 1,000,000 records/s) and with a snapshot
// covering it.
func BenchmarkReplay(b *testing.B) {
	ops := benchOps()
	for _, snap := range []bool{false, true} {
		b.Run(fmt.Sprint("snapshot=", snap), func(b *testing.B) {
			dir := b.TempDir()
			buildWAL(b, dir, ops, snap)
			b.ResetTimer()
			var replayed, keys float64
			for range b.N {
				n, err := Open(dir, &Options{SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				replayed, keys = testutil.ToFloat64(n.m.replayRecords), float64(n.Status().Keys)
				n.Close()
				b.StartTimer()
			}
			perOpen := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(replayed/perOpen, "replayed-records/s")
			b.ReportMetric(replayed, "replayed-records")
			b.ReportMetric(keys, "keys")
			b.ReportMetric(keys/perOpen, "keys/s")
			b.ReportMetric(perOpen, "s/open")
		})
	}
}

// BenchmarkMemoryPerKey: heap per key of 1,000,000 small registers
// (aim <= 300 B), measured after a GC.
func BenchmarkMemoryPerKey(b *testing.B) {
	keys := benchOps()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		n, err := Open(b.TempDir(), &Options{Sync: SyncNever, SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		var batch Batch
		for i := range keys {
			batch.Put(fmt.Sprintf("key/%08d", i), i)
			if batch.Len() == 1000 || i == keys-1 {
				if err := n.Commit(&batch); err != nil {
					b.Fatal(err)
				}
				batch.Reset()
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(keys), "heap-B/key")
		b.ReportMetric(float64(keys), "keys")
		n.Close()
		b.StartTimer()
	}
}

// BenchmarkPutNoSync: Put of a 256-byte value from 64 goroutines under
// SyncNever: the commit loop's CPU ceiling, with no disk wait.
func BenchmarkPutNoSync(b *testing.B) { benchPutNoSync(b, false) }

// BenchmarkPutNoSyncWatched is BenchmarkPutNoSync with a subscriber to
// every key reading the events: what publishing costs the commit loop.
func BenchmarkPutNoSyncWatched(b *testing.B) { benchPutNoSync(b, true) }

func benchPutNoSync(b *testing.B, watched bool) {
	n, err := Open(b.TempDir(), &Options{Sync: SyncNever, SnapshotEveryOps: -1, SnapshotEveryBytes: -1,
		SubscriberBuffer: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	if watched {
		ctx, cancel := context.WithCancel(context.Background())
		sub, err := n.Subscribe(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		var read sync.WaitGroup
		read.Go(func() {
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
			}
		})
		defer read.Wait()
		defer cancel()
	}
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key/%08d", i)
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if err := n.Put(keys[int(i)%len(keys)], value256); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkStateCheck: the periodic state comparison's summary (taken by
// the peer asked) and comparison (by the one asking) of a node holding
// 200,000 keys (SHOAL_NODE_BENCH_KEYS to change), while a writer Puts
// without pause. Reported: each one's time, and the slowest Put while they
// ran beside the slowest in a stretch as long without them (the baseline):
// summing the keys under one hold of the state lock made every write wait
// for all of it.
func BenchmarkStateCheck(b *testing.B) {
	n, keys := openBenchKeys(b)
	r := &replicator{n: n}
	var sumT, cmpT time.Duration
	stall := writeStall(b, n, keys, func() {
		t0 := time.Now()
		op, err := r.summary()
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		bounds, theirs, err := decodeSummary(op.Sums)
		if err != nil {
			b.Fatal(err)
		}
		r.compareSummary(bounds, theirs, op)
		sumT, cmpT = sumT+t1.Sub(t0), cmpT+time.Since(t1)
	})
	b.ReportMetric(float64(sumT)/float64(b.N)/1e6, "summary-ms")
	b.ReportMetric(float64(cmpT)/float64(b.N)/1e6, "compare-ms")
	stall.report(b, "")
}

// BenchmarkSnapshotStall: Snapshot of a node holding 200,000 keys
// (SHOAL_NODE_BENCH_KEYS to change) while a writer Puts without pause: the
// copy of the state the writer waits for, as the slowest Put beside the
// slowest in a stretch as long without a snapshot.
func BenchmarkSnapshotStall(b *testing.B) {
	n, keys := openBenchKeys(b)
	writeStall(b, n, keys, func() {
		if err := n.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}).report(b, "snapshot-ms")
}

// BenchmarkStateTransferStall: a peer's request for the whole state (a
// catch-up or a range repair writes the same way) from a node holding
// 200,000 keys (SHOAL_NODE_BENCH_KEYS to change), while a writer Puts
// without pause; the records are encoded and dropped.
func BenchmarkStateTransferStall(b *testing.B) {
	n, keys := openBenchKeys(b)
	writeStall(b, n, keys, func() {
		if _, _, _, err := n.writeState(context.Background(), func([]byte) error { return nil }, wholeState, nil, nil, nil); err != nil {
			b.Fatal(err)
		}
	}).report(b, "transfer-ms")
}

// openBenchKeys opens a node (SyncNever, no automatic snapshot) holding
// 200,000 keys of 256-byte values, or SHOAL_NODE_BENCH_KEYS.
func openBenchKeys(b *testing.B) (*Node, int) {
	keys := benchEnv("SHOAL_NODE_BENCH_KEYS", 200_000)
	n, err := Open(b.TempDir(), &Options{Sync: SyncNever, SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	var batch Batch
	for i := range keys {
		batch.Put(fmt.Sprintf("key/%08d", i), value256)
		if batch.Len() == 1000 || i == keys-1 {
			if err := n.Commit(&batch); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	return n, keys
}

// stall is the slowest Put during an operation and during as long a
// stretch without it, and the operation's time, summed over the rounds.
type stall struct {
	during, base, op time.Duration
	rounds, keys     int
}

// report reports the stall, and the operation's time as opMetric unless
// that is "".
func (s stall) report(b *testing.B, opMetric string) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(s.rounds) / 1e6 }
	if opMetric != "" {
		b.ReportMetric(ms(s.op), opMetric)
	}
	b.ReportMetric(ms(s.during), "slowest-put-ms")
	b.ReportMetric(ms(s.base), "baseline-slowest-put-ms")
	b.ReportMetric(float64(s.keys), "keys")
}

// writeStall runs op b.N times while a writer Puts to the keys without
// pause, each time followed by a stretch as long without op. Each Put
// counts for the phase it started in (round r: 2r+1 while op runs, 2r+2
// in the stretch after), read once the writer has stopped.
func writeStall(b *testing.B, n *Node, keys int, op func()) stall {
	var phase atomic.Int32 // 0: between rounds, not counted
	slowest := make([]atomic.Int64, 2*b.N+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p, t := phase.Load(), time.Now()
			if err := n.Put(fmt.Sprintf("key/%08d", i%keys), i); err != nil {
				b.Error(err)
				return
			}
			if d := int64(time.Since(t)); d > slowest[p].Load() {
				slowest[p].Store(d)
			}
		}
	})
	s := stall{rounds: b.N, keys: keys}
	b.ResetTimer()
	for r := range int32(b.N) {
		phase.Store(2*r + 1)
		t := time.Now()
		op()
		took := time.Since(t)
		s.op += took
		phase.Store(2*r + 2)
		time.Sleep(took) // the baseline stretch, as long as op took
	}
	phase.Store(0)
	b.StopTimer()
	close(stop)
	wg.Wait()
	for r := range b.N {
		s.during += time.Duration(slowest[2*r+1].Load())
		s.base += time.Duration(slowest[2*r+2].Load())
	}
	return s
}
