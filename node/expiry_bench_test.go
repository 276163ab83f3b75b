package node

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPutWhileExpiring measures the latency of concurrent Puts while
// 100,000 keys that expired in the same second are reported and reclaimed
// by the sweep (expiring), against a node holding 100,000 keys that do not
// expire (baseline). The two alternate in rounds, each on a fresh node, so
// that the shared machine's drift hits both alike; it reports each one's
// p50 and p99 Put latency, the ratio of the p99s, and how many of the
// expiring keys the sweep reclaimed while the Puts ran (per round; the
// Puts start with the sweep). SyncNever: the sweep competes with the
// write pipeline and the state lock, not with the disk.
//
// Two loads. open: the writers send at a fixed rate (rate=N per second,
// a fraction of what the node sustains), each Put's latency counted from
// when it was due whenever the writer was still busy with the previous
// one then, so that a stall delays every Put due during it, as it would
// delay independent clients (a sleep that wakes late moves the writer's
// schedule instead: the rate reached, puts/s, is then below N; about 12,000
// of 20,000 on the reference VM). closed: the writers send as fast as the
// node answers, which saturates both cores; there any work added to the
// machine, the sweep's included, adds latency.
//
//	go test -run '^$' -bench PutWhileExpiring -benchtime 200000x ./node/
func BenchmarkPutWhileExpiring(b *testing.B) {
	b.Run("open/rate=20000", func(b *testing.B) { benchPutWhileExpiring(b, 20_000) })
	b.Run("closed", func(b *testing.B) { benchPutWhileExpiring(b, 0) })
}

// benchPutWhileExpiring runs BenchmarkPutWhileExpiring at rate Puts per
// second (0: as fast as they are answered).
func benchPutWhileExpiring(b *testing.B, rate float64) {
	const keys = 100_000
	const writers = 16
	const rounds = 4
	lat := map[bool][]time.Duration{}
	took := map[bool]time.Duration{}
	reclaimed := 0
	b.StopTimer()
	for r := range rounds {
		for _, expiring := range [][]bool{{false, true}, {true, false}}[r%2] {
			clk := newFakeClock()
			n, err := Open(b.TempDir(), &Options{Sync: SyncNever, Now: clk.Now, MaxClockDrift: time.Millisecond,
				SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
			must(b, err)
			var o WriteOptions
			if expiring {
				o.TTL = time.Second // every key in the same second: the same millisecond
			}
			for i := 0; i < keys; {
				var batch Batch
				for ; batch.Len() < DefaultMaxBatchOperations && i < keys; i++ {
					batch.PutWith(fmt.Sprintf("exp/%06d", i), i, o)
				}
				must(b, n.Commit(&batch))
			}
			clk.Advance(2 * time.Second) // expired, and beyond the drift: reclaimable
			runtime.GC()                 // the preload's garbage is not the Puts' cost
			// Start the sweep now rather than at the next tick (within
			// SweepInterval), so that it runs from the first Put.
			n.sweepAgain <- 0
			per := make([][]time.Duration, writers)
			puts := max(b.N/rounds, writers)
			var wg sync.WaitGroup
			b.StartTimer()
			start := time.Now()
			for g := range writers {
				wg.Go(func() {
					interval := time.Duration(float64(writers) / max(rate, 1) * float64(time.Second))
					due := start.Add(time.Duration(float64(g) / max(rate, 1) * float64(time.Second)))
					for i := g; i < puts; i += writers {
						t0 := time.Now()
						if rate > 0 {
							if t0.Before(due) {
								// On time: the latency starts when the Put
								// is sent, and the next one is due an
								// interval later (a sleep that overshoots
								// is the timer's doing, not the node's).
								time.Sleep(due.Sub(t0))
								t0 = time.Now()
							} else {
								t0 = due // late because the node was slow: counted
							}
							due = t0.Add(interval)
						}
						if err := n.Put(fmt.Sprintf("w/%d", i), i); err != nil {
							b.Error(err)
							return
						}
						per[g] = append(per[g], time.Since(t0))
					}
				})
			}
			wg.Wait()
			took[expiring] += time.Since(start)
			b.StopTimer()
			if expiring {
				reclaimed += keys + puts - n.Status().Keys
			}
			must(b, n.Close())
			lat[expiring] = append(lat[expiring], slices.Concat(per...)...)
		}
	}
	p99 := map[bool]float64{}
	for expiring, name := range map[bool]string{false: "baseline", true: "expiring"} {
		all := lat[expiring]
		slices.Sort(all)
		p99[expiring] = float64(all[len(all)*99/100].Microseconds())
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(p99[expiring], name+"-p99-µs")
		b.ReportMetric(float64(len(all))/took[expiring].Seconds(), name+"-puts/s")
	}
	b.ReportMetric(p99[true]/max(p99[false], 1), "p99-ratio")
	b.ReportMetric(float64(reclaimed)/rounds, "reclaimed-during-puts/round")
}
