package node

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRemoteDelivery: a receiving node (SyncAlways) commits a peer's
// deliveries of one record each, one at a time, with a pause between them
// as a stream of writes a millisecond apart makes: the receiving side of
// replication on an otherwise idle node. Reports the process's CPU per
// delivery (getrusage: the runtime's and the kernel's work included).
func BenchmarkRemoteDelivery(b *testing.B) {
	a, _ := openTest(b, &Options{Sync: SyncNever})
	recs := record(a)
	const distinct = 4096
	for i := range distinct {
		must(b, a.Put(fmt.Sprintf("k%06d", i), i))
	}
	raws, ops := peerRecords(b, recs.take())
	rcv, _ := openTest(b, nil)
	var before, after syscall.Rusage
	must(b, syscall.Getrusage(syscall.RUSAGE_SELF, &before))
	b.ResetTimer()
	for i := range b.N {
		if i >= len(raws) { // every record again: duplicates cost less; stop
			b.Fatalf("-benchtime beyond %d deliveries", len(raws))
		}
		must(b, rcv.applyRemoteBatch(raws[i:i+1:i+1], ops[i:i+1:i+1], "a"))
		time.Sleep(500 * time.Microsecond)
	}
	b.StopTimer()
	must(b, syscall.Getrusage(syscall.RUSAGE_SELF, &after))
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/delivery")
}
