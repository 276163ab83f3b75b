package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/shoaldb/shoal/node"
)

const benchPutUsage = `Usage: shoal bench put [flags]

Measures durable writes of an embedded node (node.Open with --sync always,
snapshots off: Put returns once its WAL record is fdatasynced) from each of
--writers goroutine counts, against two baselines at the same count:

  raw    the disk's limit: --value-size records appended to a plain file,
         concurrent appenders sharing one write(2) and one fdatasync (the
         minimal group commit; no framing, no index, no checksum)
  bbolt  go.etcd.io/bbolt, one Put per db.Batch (db.Update at 1 writer,
         where Batch would only add its 10 ms wait for company)
  raw-z  raw into a file kept zero-filled 1 MiB ahead of its end, as the
         WAL's store is: the writes then change no file size and allocate
         no block, so each fdatasync flushes data alone (reported beside
         the goals, which are against raw)

The three take turns in slices of --slice until each had --duration at
each writer count, so that a shared machine's drift hits all alike. Keys
are --keys distinct keys, values --value-size bytes (as JSON for shoal and
bbolt). The report gives ops/s and latency per contender and the ratios to
raw and bbolt, next to the goals for shoal/raw.

The files go to a temporary directory under --dir (it must be on the disk
to measure: on a tmpfs fsync costs nothing).
`

// putBenchConfig is the load of one bench put run.
type putBenchConfig struct {
	writers         []int
	duration, slice time.Duration
	warmup          time.Duration
	valueSize, keys int
	output, svgDir  string
	dir             string
	progress        io.Writer
}

func (m *Main) runBenchPut(ctx context.Context, args []string) error {
	c := putBenchConfig{progress: m.Stderr}
	fs := newFlagSet("bench put", m.Stderr, benchPutUsage+"\n")
	writers := fs.String("writers", "1,16,64,256", "writer goroutine counts, comma list")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "measured time of each contender at each writer count")
	fs.DurationVar(&c.slice, "slice", 250*time.Millisecond, "length of one turn; the contenders alternate")
	fs.DurationVar(&c.warmup, "warmup", 250*time.Millisecond, "unmeasured time of each contender before each writer count")
	fs.IntVar(&c.valueSize, "value-size", 256, "bytes per value (the JSON encoding for shoal and bbolt, the record for raw)")
	fs.IntVar(&c.keys, "keys", 100_000, "distinct keys written")
	jsonPath := reportFlags(fs, &c.output)
	fs.StringVar(&c.svgDir, "svg", "", "write put-writers.svg (ops/s against writers) into this directory")
	fs.StringVar(&c.dir, "dir", "", "where the temporary data goes (default: the system's temporary directory)")
	pos, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("bench put takes no arguments, got %q", pos)
	}
	if c.writers, err = parseCounts(*writers); err != nil {
		return usageError("--writers: %v", err)
	}
	if c.duration <= 0 || c.slice <= 0 || c.warmup < 0 || c.valueSize < 2 || c.keys < 1 {
		return usageError("--duration, --slice and --keys must be positive, --value-size at least 2")
	}
	if c.output != "human" && c.output != "json" {
		return usageError("-o: want human or json, got %q", c.output)
	}
	rep, err := runPutBench(ctx, &c)
	if err != nil {
		return err
	}
	if c.svgDir != "" {
		if err := writePutPlot(filepath.Join(c.svgDir, "put-writers.svg"), rep); err != nil {
			return err
		}
	}
	if err := saveJSON(*jsonPath, rep); err != nil {
		return err
	}
	if c.output == "json" {
		return writeJSON(m.Stdout, rep)
	}
	return printPutReport(m.Stdout, rep)
}

// parseCounts parses a comma list of positive integers.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// putReport is the result of bench put.
type putReport struct {
	ValueSize    int         `json:"value_size"`
	Keys         int         `json:"keys"`
	SecondsEach  float64     `json:"seconds_each"`
	SliceSeconds float64     `json:"slice_seconds"`
	Dir          string      `json:"dir"`
	Tmpfs        bool        `json:"tmpfs,omitempty"`
	Writers      []int       `json:"writers"`
	Results      []putResult `json:"results"`
	Ratios       []putRatio  `json:"ratios"`
	Goals        []goalCheck `json:"goals"`
}

// putResult is one contender at one writer count.
type putResult struct {
	Writers   int           `json:"writers"`
	Contender string        `json:"contender"`
	Ops       int64         `json:"ops"`
	Seconds   float64       `json:"seconds"`
	OpsPerSec float64       `json:"ops_per_sec"`
	Latency   latencyReport `json:"latency_ms"`
}

// putRatio compares the contenders at one writer count.
type putRatio struct {
	Writers    int     `json:"writers"`
	ShoalRaw   float64 `json:"shoal_raw"`
	ShoalBbolt float64 `json:"shoal_bbolt"`
	BboltRaw   float64 `json:"bbolt_raw"`
	ShoalRawZ  float64 `json:"shoal_raw_z"` // against raw into a zero-filled file
}

// putContender is one side of the comparison: op runs in each writer.
type putContender struct {
	name string
	op   func(writer, i int) error
}

// runPutBench opens the three contenders in a temporary directory, runs
// them at each writer count and removes the directory.
func runPutBench(ctx context.Context, c *putBenchConfig) (rep *putReport, err error) {
	dir, err := os.MkdirTemp(c.dir, "shoal-bench-put-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	rep = &putReport{ValueSize: c.valueSize, Keys: c.keys, SecondsEach: c.duration.Seconds(),
		SliceSeconds: c.slice.Seconds(), Dir: dir, Tmpfs: onTmpfs(dir), Writers: c.writers}
	if rep.Tmpfs {
		fmt.Fprintf(c.progress, "bench put: %s is on a tmpfs: fsync costs nothing there; give --dir on a disk\n", dir)
	}

	raw, err := openRawGroup(filepath.Join(dir, "raw"))
	if err != nil {
		return nil, err
	}
	defer raw.close()
	rawZ, err := openRawGroup(filepath.Join(dir, "raw-z"))
	if err != nil {
		return nil, err
	}
	rawZ.ahead = 1 << 20
	defer rawZ.close()
	n, err := node.Open(filepath.Join(dir, "shoal"), &node.Options{Sync: node.SyncAlways, SnapshotEveryOps: -1, SnapshotEveryBytes: -1})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o644, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	bucket := []byte("kv")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		return nil, err
	}

	keys := make([]string, c.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key/%08d", i)
	}
	key := func(writer, i int) string { return keys[(writer*7919+i)%len(keys)] }
	value := strings.Repeat("v", c.valueSize-2) // its JSON is valueSize bytes
	jsonValue := []byte(`"` + value + `"`)
	rec := make([]byte, c.valueSize)
	var writers int // the writer count being measured
	contenders := []putContender{
		{"raw", func(int, int) error { return raw.append(rec) }},
		{"shoal", func(w, i int) error { return n.Put(key(w, i), value) }},
		{"bbolt", func(w, i int) error {
			put := func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key(w, i)), jsonValue) }
			if writers == 1 {
				return db.Update(put)
			}
			return db.Batch(put)
		}},
		{"raw-z", func(int, int) error { return rawZ.append(rec) }},
	}

	rounds := int((c.duration + c.slice - 1) / c.slice)
	for _, w := range c.writers {
		writers = w
		if c.warmup > 0 {
			for _, ct := range contenders {
				if _, _, _, err := runWriters(ctx, w, c.warmup, ct.op, false); err != nil {
					return nil, fmt.Errorf("%s, %d writers: %w", ct.name, w, err)
				}
			}
		}
		counts := make([]int64, len(contenders))
		times := make([]time.Duration, len(contenders))
		lats := make([][]time.Duration, len(contenders))
		for r := range rounds {
			for k, ct := range contenders {
				d := c.slice
				if r == rounds-1 { // the last turn fills up to --duration
					d = c.duration - time.Duration(rounds-1)*c.slice
				}
				cnt, el, lat, err := runWriters(ctx, w, d, ct.op, true)
				if err != nil {
					return nil, fmt.Errorf("%s, %d writers: %w", ct.name, w, err)
				}
				counts[k] += cnt
				times[k] += el
				lats[k] = append(lats[k], lat...)
			}
			fmt.Fprintf(c.progress, "\rbench put: %3d writers, round %d of %d   ", w, r+1, rounds)
		}
		rates := make([]float64, len(contenders))
		for k, ct := range contenders {
			rates[k] = float64(counts[k]) / times[k].Seconds()
			rep.Results = append(rep.Results, putResult{Writers: w, Contender: ct.name, Ops: counts[k],
				Seconds: times[k].Seconds(), OpsPerSec: rates[k], Latency: summarize(lats[k])})
		}
		rep.Ratios = append(rep.Ratios, putRatio{Writers: w,
			ShoalRaw: ratio(rates[1], rates[0]), ShoalBbolt: ratio(rates[1], rates[2]), BboltRaw: ratio(rates[2], rates[0]),
			ShoalRawZ: ratio(rates[1], rates[3])})
	}
	fmt.Fprintln(c.progress)
	rep.Goals = putGoals(c.valueSize, rep.Ratios)
	return rep, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// runWriters runs w goroutines calling op until d has passed; it returns
// the operations done, the time until the last goroutine stopped and, when
// timed, each operation's latency.
func runWriters(ctx context.Context, w int, d time.Duration, op func(writer, i int) error, timed bool) (int64, time.Duration, []time.Duration, error) {
	var (
		stop     atomic.Bool
		count    atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		firstErr error
	)
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	cancelled := context.AfterFunc(ctx, func() { stop.Store(true) })
	defer cancelled()
	for g := range w {
		wg.Go(func() {
			var lat []time.Duration
			if timed {
				lat = make([]time.Duration, 0, 1024)
			}
			n := 0
			var err error
			for ; !stop.Load(); n++ {
				t0 := time.Now()
				if err = op(g, n); err != nil {
					break
				}
				if timed {
					lat = append(lat, time.Since(t0))
				}
			}
			count.Add(int64(n))
			mu.Lock()
			all = append(all, lat...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return count.Load(), time.Since(start), all, firstErr
}

func printPutReport(w io.Writer, rep *putReport) error {
	fmt.Fprintf(w, "embedded durable Put, %d B values, %d keys, %.1fs per contender and writer count (turns of %.2fs)\n",
		rep.ValueSize, rep.Keys, rep.SecondsEach, rep.SliceSeconds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writers\tcontender\tops/s\tp50 ms\tp99 ms\tmax ms\tvs raw\tvs bbolt\tvs raw-z\t")
	ratios := map[int]putRatio{}
	for _, r := range rep.Ratios {
		ratios[r.Writers] = r
	}
	for _, r := range rep.Results {
		vsRaw, vsBbolt, vsRawZ := "", "", ""
		switch r.Contender {
		case "shoal":
			vsRaw = fmtFigure(ratios[r.Writers].ShoalRaw)
			vsBbolt = fmtFigure(ratios[r.Writers].ShoalBbolt)
			vsRawZ = fmtFigure(ratios[r.Writers].ShoalRawZ)
		case "bbolt":
			vsRaw = fmtFigure(ratios[r.Writers].BboltRaw)
		}
		l := r.Latency
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t\n",
			r.Writers, r.Contender, fmtCount(r.OpsPerSec), l.P50, l.P99, l.Max, vsRaw, vsBbolt, vsRawZ)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Tmpfs {
		fmt.Fprintf(w, "warning: %s is on a tmpfs, where fsync costs nothing\n", rep.Dir)
	}
	return printGoals(w, rep.Goals)
}

// rawGroup is the raw group-commit baseline (the wal and node benchmarks'
// own): writers add their record to a buffer; one that finds no sync in
// progress writes the whole buffer with one write(2) and one fdatasync,
// and wakes the others. No framing, no index, no checksum: the disk's
// limit for durable appends.
type rawGroup struct {
	f       *os.File
	ahead   int64 // > 0: keep the file zero-filled this far past its end
	end     int64 // bytes of records
	alloc   int64 // file size (end plus the zeros ahead)
	zeros   []byte
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	spare   []byte
	gen     uint64 // generation the buffer belongs to
	synced  uint64 // generations durable
	leading bool
	err     error // sticky, like the WAL's
}

func openRawGroup(path string) (*rawGroup, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	g := &rawGroup{f: f}
	g.cond = sync.NewCond(&g.mu)
	return g, nil
}

func (g *rawGroup) close() error { return g.f.Close() }

// append returns once rec is durable.
func (g *rawGroup) append(rec []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	g.buf = append(g.buf, rec...)
	my := g.gen
	for g.synced <= my {
		if g.err != nil {
			return g.err
		}
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
		err := g.write(buf)
		if err == nil {
			err = fdatasync(g.f)
		}
		g.mu.Lock()
		g.spare = buf
		g.leading = false
		if err != nil {
			g.err = err
			g.cond.Broadcast()
			return err
		}
		g.synced = gen + 1
		g.cond.Broadcast()
	}
	return nil
}

// write writes buf at the end of the records (the leader only), first
// zero-filling ahead when the records would pass the zeros.
func (g *rawGroup) write(buf []byte) error {
	end := g.end + int64(len(buf))
	if g.ahead > 0 && end > g.alloc {
		if len(g.zeros) != int(g.ahead) {
			g.zeros = make([]byte, g.ahead)
		}
		if _, err := g.f.WriteAt(g.zeros, end); err != nil {
			return err
		}
		g.alloc = end + g.ahead
	}
	if _, err := g.f.WriteAt(buf, g.end); err != nil {
		return err
	}
	g.end = end
	return nil
}
