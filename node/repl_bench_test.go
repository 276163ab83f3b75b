package node

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReplicationBenchmarks prints the replication numbers of issue 5:
// convergence time (write acknowledged on one node -> visible on all),
// replicated throughput, wire bytes per operation, catch-up bytes. It
// measures time, so it asserts nothing and runs only when asked:
//
//	SHOAL_BENCH=1 go test -run TestReplicationBenchmarks -v -timeout 20m ./node/
func TestReplicationBenchmarks(t *testing.T) {
	if os.Getenv("SHOAL_BENCH") == "" {
		t.Skip("set SHOAL_BENCH=1 to run the replication benchmarks")
	}
	dur := 3 * time.Second
	for _, n := range []int{3, 10} {
		for _, rate := range []int{1000, 5000} {
			t.Run(fmt.Sprintf("convergence/N=%d/rate=%d", n, rate), func(t *testing.T) {
				benchConvergence(t, n, rate, dur)
			})
		}
	}
	t.Run("throughput/N=3", func(t *testing.T) { benchThroughput(t, 3, 60_000) })
	t.Run("catchup", func(t *testing.T) { benchCatchUp(t, 5000) })
}

func durableOpts(i int, o *Options) {
	o.Sync = SyncAlways
	if os.Getenv("SHOAL_BENCH_SYNC") == "never" {
		o.Sync = SyncNever
	}
	o.SubscriberBuffer = 1 << 20
}

// recordBytes returns the bytes of the WAL records of node i that its own
// replica made, from offset from on.
func recordBytes(t testing.TB, nd *Node, from uint64) (bytes, count int) {
	for off := from; off < nd.wal.NextOffset(); off++ {
		rec, err := nd.wal.Read(off)
		must(t, err)
		if op, err := DecodeOp(rec); err == nil && op.Origin == nd.replica && op.Kind == OpDelta {
			bytes += len(rec)
			count++
		}
	}
	return bytes, count
}

func benchConvergence(t *testing.T, n, rate int, dur time.Duration) {
	c := newReplCluster(t, n, durableOpts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type track struct {
		ack  time.Time
		seen int
		last time.Time
	}
	var mu sync.Mutex
	tracks := map[string]*track{}
	var lat []time.Duration
	done := func(k string, tr *track) {
		if !tr.ack.IsZero() && tr.seen == n-1 {
			lat = append(lat, max(tr.last.Sub(tr.ack), 0))
			delete(tracks, k)
		}
	}
	var subs sync.WaitGroup
	for _, nd := range c.nodes {
		sub, err := nd.Subscribe(ctx, "bench/")
		must(t, err)
		subs.Add(1)
		go func() {
			defer subs.Done()
			defer sub.Close()
			self := nd.ReplicaID()
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if ev.Origin == self {
					continue
				}
				now := time.Now()
				mu.Lock()
				tr := tracks[ev.Key]
				if tr == nil {
					tr = &track{}
					tracks[ev.Key] = tr
				}
				tr.seen++
				tr.last = now
				done(ev.Key, tr)
				mu.Unlock()
			}
		}()
	}
	total := int(float64(rate) * dur.Seconds())
	jobs := make(chan int, total)
	var writers sync.WaitGroup
	for range 64 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range jobs {
				key := fmt.Sprintf("bench/%d", i)
				if err := c.nodes[i%n].Put(key, strings.Repeat("x", 100)); err != nil {
					t.Error(err)
					return
				}
				now := time.Now()
				mu.Lock()
				tr := tracks[key]
				if tr == nil {
					tr = &track{}
					tracks[key] = tr
				}
				tr.ack = now
				done(key, tr)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	before := make([]uint64, n)
	for i, nd := range c.nodes {
		before[i] = nd.wal.NextOffset()
	}
	for i := range total { // open loop: job i is due at start + i/rate
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d) // pacing the load, not waiting for a result
		}
		jobs <- i
	}
	close(jobs)
	writers.Wait()
	offered := time.Since(start)
	replEventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lat) == total
	}, "not every write became visible everywhere")
	cancel()
	subs.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }

	// Wire bytes: pushed batch frames received per operation and receiving
	// peer, against the operation's encoded size.
	var recBytes, recCount int
	var batchIn, digestOut uint64
	for i, nd := range c.nodes {
		b, k := recordBytes(t, nd, before[i])
		recBytes += b
		recCount += k
		st := c.stats(i)
		batchIn += st.BytesReceived["batch"]
		digestOut += st.BytesSent["digest"]
	}
	perOp := float64(recBytes) / float64(recCount)
	wire := float64(batchIn) / float64(recCount*(n-1))
	acks := float64(digestOut) / float64(recCount*(n-1))
	t.Logf("N=%d offered %d writes/s (achieved %.0f/s): convergence p50 %v p99 %v max %v; "+
		"wire %.1f B/op/peer for %.1f B ops (x%.2f; acknowledgements add %.1f B)",
		n, rate, float64(total)/offered.Seconds(), pct(0.50), pct(0.99), lat[len(lat)-1],
		wire, perOp, wire/perOp, acks)
}

// putAll writes total keys with 256 writers spread over nodes.
func putAll(t *testing.T, nodes []*Node, prefix string, total int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := nodes[w%len(nodes)]
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				if err := nd.Put(fmt.Sprintf("%s/%d", prefix, i), strings.Repeat("y", 100)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func benchThroughput(t *testing.T, n, total int) {
	// Reference, same machine, same moment: one offline node, same load.
	solo, err := Open(t.TempDir(), &Options{Sync: SyncAlways})
	must(t, err)
	start := time.Now()
	putAll(t, []*Node{solo}, "solo", total)
	soloRate := float64(total) / time.Since(start).Seconds()
	must(t, solo.Close())

	c := newReplCluster(t, n, durableOpts)
	start = time.Now()
	putAll(t, c.nodes, "tp", total)
	local := time.Since(start)
	replEventually(t, 120*time.Second, func() bool {
		for _, nd := range c.nodes {
			if nd.Status().Keys != total {
				return false
			}
		}
		return true
	}, "not every write replicated")
	all := time.Since(start)
	c.waitConverged(30 * time.Second)
	states := 0.0
	for _, nd := range c.nodes {
		states += counterValue(t, nd.repl.Load().m.served.WithLabelValues("state"))
	}
	if states > 0 {
		t.Logf("note: %v anti-entropy answers fell back to a state transfer", states)
	}
	t.Logf("N=%d, 256 writers, SyncAlways on every node: %d writes acknowledged in %v (%.0f/s); "+
		"durable on all %d nodes after %v: %.0f replicated ops/s (one offline node, same load: %.0f/s; ratio %.2f)",
		n, total, local.Round(time.Millisecond), float64(total)/local.Seconds(), n, all.Round(time.Millisecond),
		float64(total)/all.Seconds(), soloRate, float64(total)/all.Seconds()/soloRate)
}

func benchCatchUp(t *testing.T, missed int) {
	c := newReplCluster(t, 3, durableOpts)
	c.faults.Partition([]string{"n0", "n1"}, []string{"n2"})
	before := [2]uint64{c.nodes[0].wal.NextOffset(), c.nodes[1].wal.NextOffset()}
	stBefore := c.stats(2)
	var b Batch
	for i := range missed {
		must(t, c.nodes[i%2].Put(fmt.Sprintf("cu/%d", i), strings.Repeat("z", 100)))
	}
	_ = b
	c.waitConverged(60*time.Second, 0, 1)
	missedBytes := 0
	for i := range 2 {
		bb, _ := recordBytes(t, c.nodes[i], before[i])
		missedBytes += bb
	}
	c.faults.Heal()
	c.waitConverged(60 * time.Second)
	st := c.stats(2)
	got := (st.BytesReceived["sync_data"] - stBefore.BytesReceived["sync_data"]) +
		(st.BytesReceived["batch"] - stBefore.BytesReceived["batch"])
	t.Logf("catch-up after a partition: %d missed ops (%d B encoded), received %d B: ratio %.3f",
		missed, missedBytes, got, float64(got)/float64(missedBytes))
}
