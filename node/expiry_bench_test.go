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
// by the sweep (expiring), against the same node holding 100,000 keys that
// do not expire (baseline). Each sub-benchmark reports its p50 and p99
// Put latency; expiring also reports how many of the keys the sweep had
// reclaimed when the Puts ended (all of them, or the Puts did not overlap
// the sweep) and how long the sweep took. SyncNever: the sweep competes
// with the write pipeline and the state lock, not with the disk.
//
//	go test -run '^$' -bench PutWhileExpiring -benchtime 200000x ./node/
func BenchmarkPutWhileExpiring(b *testing.B) {
	const keys = 100_000
	const writers = 16
	for _, expiring := range []bool{false, true} {
		name := "baseline"
		if expiring {
			name = "expiring"
		}
		b.Run(name, func(b *testing.B) {
			clk := newFakeClock()
			n, _ := openTest(b, &Options{Sync: SyncNever, Now: clk.Now, MaxClockDrift: time.Millisecond,
				SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
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
			// SweepInterval), so that it overlaps the Puts from the start.
			n.sweepAgain <- struct{}{}
			lat := make([][]time.Duration, writers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for g := range writers {
				wg.Go(func() {
					for i := g; i < b.N; i += writers {
						t0 := time.Now()
						if err := n.Put(fmt.Sprintf("w/%d", i), i); err != nil {
							b.Error(err)
							return
						}
						lat[g] = append(lat[g], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if expiring {
				reclaimed := keys + 0
				if st := n.Status(); st.Keys > b.N {
					reclaimed = keys + b.N - st.Keys
				}
				b.ReportMetric(float64(reclaimed), "reclaimed-during")
				eventually(b, "every key reclaimed", func() bool { return n.Status().Keys == b.N })
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-until-all-reclaimed")
			}
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
