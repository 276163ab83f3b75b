package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tidwall "github.com/tidwall/wal"
)

// Benchmarks. Every figure is meant to be read as a ratio to a raw baseline
// measured in the same run (the machine is shared and noisy):
//
//	go test -run '^$' -bench 'Raw|SyncAlways|Tidwall' -benchtime 2s ./wal/
//	go test -run '^$' -bench 'SyncNever|RawSequential|Reader' ./wal/
//	SHOAL_WAL_BENCH_OPEN_MIB=1024 go test -run '^$' -bench Open -benchtime 3x ./wal/

var benchWriters = []int{1, 16, 256}

func benchRecord() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func reportRate(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

// splitN runs n operations over w goroutines.
func splitN(n, w int, op func(worker, i int)) {
	var wg sync.WaitGroup
	for g := 0; g < w; g++ {
		cnt := n / w
		if g < n%w {
			cnt++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < cnt; i++ {
				op(g, i)
			}
		}()
	}
	wg.Wait()
}

// rawFile is the baseline's file: append with write(2), fdatasync.
func rawFile(b *testing.B) *os.File {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkRawSync is the disk's limit for one writer: write 256 B and
// fdatasync, in a loop.
func BenchmarkRawSync(b *testing.B) {
	f := rawFile(b)
	rec := benchRecord()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N, "appends/s")
}

// rawGroup is the minimal correct group commit: writers add to a buffer; a
// writer that finds no sync in progress becomes the leader, writes the
// whole buffer with one write(2) and one fdatasync, and wakes the others.
type rawGroup struct {
	f       *os.File
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	spare   []byte
	gen     uint64 // generation the buffer belongs to
	synced  uint64 // generations durable
	leading bool
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
			err = fdatasync(g.f)
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

// BenchmarkRawGroupCommit is the disk's limit for N writers: the same
// write+fdatasync shared by every writer that queued meanwhile.
func BenchmarkRawGroupCommit(b *testing.B) {
	for _, w := range benchWriters {
		b.Run("writers="+strconv.Itoa(w), func(b *testing.B) {
			g := &rawGroup{f: rawFile(b)}
			g.cond = sync.NewCond(&g.mu)
			rec := benchRecord()
			b.ResetTimer()
			splitN(b.N, w, func(int, int) {
				if err := g.append(rec); err != nil {
					b.Error(err)
				}
			})
			reportRate(b, b.N, "appends/s")
		})
	}
}

// BenchmarkSyncAlways: durable 256 B appends with N concurrent appenders;
// compare with BenchmarkRawGroupCommit at the same N (goal >= 0.9).
func BenchmarkSyncAlways(b *testing.B) {
	for _, w := range benchWriters {
		b.Run("writers="+strconv.Itoa(w), func(b *testing.B) {
			var commits atomic.Int64
			l, err := Open(b.TempDir(), &Options{Hooks: Hooks{OnCommit: func(CommitStats) { commits.Add(1) }}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := benchRecord()
			b.ResetTimer()
			splitN(b.N, w, func(int, int) {
				if _, err := l.Append(rec); err != nil {
					b.Error(err)
				}
			})
			reportRate(b, b.N, "appends/s")
			b.ReportMetric(float64(b.N)/float64(commits.Load()), "appends/commit")
		})
	}
}

// runFor runs w goroutines calling op until d has passed and returns the
// operations done and the time until the last goroutine stopped.
func runFor(b *testing.B, w int, d time.Duration, op func() error) (int, time.Duration) {
	var stop atomic.Bool
	var count atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for !stop.Load() {
				if err := op(); err != nil {
					b.Error(err)
					break
				}
				n++
			}
			count.Add(n)
		}()
	}
	wg.Wait()
	return int(count.Load()), time.Since(start)
}

// side is one contender of compare: op runs in each of the writers;
// finish (optional) runs once at the end of each slice, inside its time,
// so that nothing is left queued for the next side's slice.
type side struct {
	name   string
	op     func() error
	finish func() error
}

// compare alternates the sides in slices of d, b.N rounds, so that the
// shared machine's load drifts over all sides alike, and reports each
// side's rate and each side's ratio to the first (the baseline).
func compare(b *testing.B, w int, d time.Duration, sides ...side) {
	counts := make([]int, len(sides))
	times := make([]time.Duration, len(sides))
	for round := 0; round < b.N; round++ {
		for i, sd := range sides {
			n, t := runFor(b, w, d, sd.op)
			if sd.finish != nil {
				t0 := time.Now()
				if err := sd.finish(); err != nil {
					b.Fatal(err)
				}
				t += time.Since(t0)
			}
			counts[i] += n
			times[i] += t
		}
	}
	rate := func(i int) float64 { return float64(counts[i]) / times[i].Seconds() }
	for i, sd := range sides {
		b.ReportMetric(rate(i), sd.name+"-appends/s")
		if i > 0 {
			b.ReportMetric(rate(i)/rate(0), sd.name+"/"+sides[0].name)
		}
	}
}

// BenchmarkSyncAlwaysVsRaw measures the log under SyncAlways and the raw
// group commit at the same writer count, alternating 250 ms slices in the
// same run, and reports the ratio (goal >= 0.9). Run with -benchtime Nx
// (N rounds).
func BenchmarkSyncAlwaysVsRaw(b *testing.B) {
	for _, w := range benchWriters {
		b.Run("writers="+strconv.Itoa(w), func(b *testing.B) {
			g := &rawGroup{f: rawFile(b)}
			g.cond = sync.NewCond(&g.mu)
			l, err := Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := benchRecord()
			b.ResetTimer()
			compare(b, w, 250*time.Millisecond,
				side{name: "raw", op: func() error { return g.append(rec) }},
				side{name: "wal", op: func() error { _, err := l.Append(rec); return err }})
		})
	}
}

// BenchmarkTidwallVsWAL: the same durable 256 B workload with 256
// concurrent writers on github.com/tidwall/wal (which fsyncs every Write
// under its lock) and on this log, alternating, with the raw group commit
// as the baseline of both.
func BenchmarkTidwallVsWAL(b *testing.B) {
	const w = 256
	tl, err := tidwall.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tl.Close()
	l, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	g := &rawGroup{f: rawFile(b)}
	g.cond = sync.NewCond(&g.mu)
	var mu sync.Mutex
	next := uint64(1)
	rec := benchRecord()
	b.ResetTimer()
	compare(b, w, 250*time.Millisecond,
		side{name: "raw", op: func() error { return g.append(rec) }},
		side{name: "tidwall", op: func() error {
			mu.Lock()
			defer mu.Unlock()
			err := tl.Write(next, rec)
			next++
			return err
		}},
		side{name: "wal", op: func() error { _, err := l.Append(rec); return err }})
}

// BenchmarkSyncNever: one appender, 256 B and 64 KiB records, including the
// final Sync that writes everything out. Goals: >= 1M appends/s for 256 B;
// for 64 KiB >= 50% of BenchmarkRawSequentialWrite/64KiB.
func BenchmarkSyncNever(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			l, err := Open(b.TempDir(), &Options{Sync: SyncNever})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Sync(); err != nil {
				b.Fatal(err)
			}
			reportRate(b, b.N, "appends/s")
		})
	}
}

// BenchmarkSyncNeverVsRawWrite: one appender under SyncNever against
// write(2) of the same records to a file (rolled at 64 MiB with an
// fdatasync, like the log's segments), alternating 250 ms slices; each
// slice ends with everything handed to the OS. Goals: 256 B >= 1M
// appends/s; 64 KiB >= 0.5 x raw bandwidth.
func BenchmarkSyncNeverVsRawWrite(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			dir := b.TempDir()
			f, err := os.Create(filepath.Join(dir, "raw0"))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { f.Close() }()
			written, files := 0, 0
			l, err := Open(filepath.Join(dir, "wal"), &Options{Sync: SyncNever})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, size)
			b.ResetTimer()
			compare(b, 1, 250*time.Millisecond,
				side{name: "raw", op: func() error {
					if written+size > DefaultSegmentBytes {
						fdatasync(f)
						f.Close()
						files++
						if f, err = os.Create(filepath.Join(dir, "raw"+strconv.Itoa(files))); err != nil {
							return err
						}
						written = 0
					}
					_, err := f.Write(rec)
					written += size
					return err
				}},
				side{name: "wal", op: func() error { _, err := l.Append(rec); return err },
					finish: l.flushForBench})
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRawSequentialWrite: write(2) of the same sizes in a loop with a
// final fdatasync, rolling files at 64 MiB like the log: the bandwidth
// baseline for BenchmarkSyncNever.
func BenchmarkRawSequentialWrite(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			dir := b.TempDir()
			f, err := os.Create(filepath.Join(dir, "0"))
			if err != nil {
				b.Fatal(err)
			}
			rec := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			written := 0
			for i := 0; i < b.N; i++ {
				if written+size > DefaultSegmentBytes {
					fdatasync(f)
					f.Close()
					if f, err = os.Create(filepath.Join(dir, strconv.Itoa(i))); err != nil {
						b.Fatal(err)
					}
					written = 0
				}
				if _, err := f.Write(rec); err != nil {
					b.Fatal(err)
				}
				written += size
			}
			if err := fdatasync(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
			reportRate(b, b.N, "appends/s")
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkReader: sequential reading of 256 B records, page cache warm.
// Goal >= 2M records/s.
func BenchmarkReader(b *testing.B) {
	const n = 200_000
	l, err := Open(b.TempDir(), &Options{Sync: SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := benchRecord()
	for i := 0; i < n; i++ {
		if _, err := l.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	var r *Reader
	for i := 0; i < b.N; i++ {
		if r == nil {
			if r, err = l.NewReader(0); err != nil {
				b.Fatal(err)
			}
		}
		_, _, err := r.Next()
		if err == io.EOF {
			r = nil
			i--
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N, "records/s")
}

// BenchmarkOpen: Open of a large log after a clean Close and after a crash
// (the last segment's index carries a zero-filled preallocated tail and the
// store a torn Append, as a kill leaves them). The log is built once per
// run; its size comes from SHOAL_WAL_BENCH_OPEN_MIB (the figure is
// 1024, about 1 GiB). Skipped unless that is set: it writes that much to
// disk. Page cache warm.
func BenchmarkOpen(b *testing.B) {
	mib, _ := strconv.Atoi(os.Getenv("SHOAL_WAL_BENCH_OPEN_MIB"))
	if mib <= 0 {
		b.Skip("set SHOAL_WAL_BENCH_OPEN_MIB (e.g. 1024) to build a log of that size")
	}
	dir := b.TempDir()
	l, err := Open(dir, &Options{Sync: SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	rec := benchRecord()
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = rec
	}
	// Worst case for recovery: the last segment (always scanned in full)
	// nearly full.
	lastFull := func() bool {
		segs := l.Segments()
		return segs[len(segs)-1].Bytes > DefaultSegmentBytes-(2<<20)
	}
	for l.Size() < int64(mib)<<20 || !lastFull() {
		for i := 0; i < 1024; i++ {
			if _, err := l.Append(batch...); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	records, size := l.NextOffset(), l.Size()
	segs := l.Segments()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	last := segs[len(segs)-1]
	storeP, indexP := storePath(dir, last.Base), indexPath(dir, last.Base)
	cleanStore, _ := os.ReadFile(storeP)
	cleanIndex, _ := os.ReadFile(indexP)
	b.Logf("log: %d MiB, %d records, %d segments, last one %d MiB", size>>20, records, len(segs), last.Bytes>>20)

	open := func(b *testing.B, damage func()) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			os.WriteFile(storeP, cleanStore, 0o644)
			os.WriteFile(indexP, cleanIndex, 0o644)
			damage()
			b.StartTimer()
			l, err := Open(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			if l.NextOffset() != records {
				b.Fatalf("reopened with %d records, want %d", l.NextOffset(), records)
			}
			b.StopTimer()
			l.Close()
			b.StartTimer()
		}
	}
	b.Run("clean", func(b *testing.B) { open(b, func() {}) })
	b.Run("crash", func(b *testing.B) {
		open(b, func() {
			f, _ := os.OpenFile(indexP, os.O_RDWR, 0)
			f.WriteAt(make([]byte, 4<<20), int64(len(cleanIndex)))
			f.Close()
			torn := appendFrame(nil, records, rec, payloadCRC(rec), true)
			f, _ = os.OpenFile(storeP, os.O_RDWR|os.O_APPEND, 0)
			f.Write(torn[:100])
			f.Close()
		})
	})
}

// flushForBench waits until everything appended is written to the OS (not
// synced): what the raw side of a comparison has done when its slice ends.
func (l *Log) flushForBench() error {
	next := l.NextOffset()
	if next == 0 {
		return nil
	}
	return l.waitVisible(next - 1)
}
