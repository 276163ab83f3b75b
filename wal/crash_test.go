package wal

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real crash test: the test binary re-executes itself as a child that
// appends under SyncAlways and prints every acknowledged Append; the parent
// SIGKILLs it at a random moment, reopens the log and checks every
// acknowledged record.
const (
	crashChildEnv   = "SHOAL_WAL_CRASH_CHILD" // the child's log directory
	crashCycleEnv   = "SHOAL_WAL_CRASH_CYCLE"
	crashCyclesEnv  = "SHOAL_WAL_CRASH_CYCLES" // override the cycle count
	crashWriters    = 8
	crashSegBytes   = 16 << 10
	crashChildLimit = 60 * time.Second // a child whose parent vanished stops by itself
)

// crashRecord is the payload of record s of Append seq by writer w in
// cycle c; its length varies so that frames straddle pages and segments.
func crashRecord(c, w, seq, s int) []byte {
	head := fmt.Sprintf("c%d-w%d-q%d-s%d|", c, w, seq, s)
	n := (c*7 + w*13 + seq*31 + s*17) % 700
	b := make([]byte, len(head)+n)
	copy(b, head)
	for i := len(head); i < len(b); i++ {
		b[i] = byte(i*c + w + seq)
	}
	return b
}

// crashChild runs in the child process; it never returns normally.
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	cycle, _ := strconv.Atoi(os.Getenv(crashCycleEnv))
	l, err := Open(dir, &Options{SegmentBytes: crashSegBytes})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child open: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stdout, "open %d\n", l.NextOffset())
	stop := time.Now().Add(crashChildLimit)
	var wg sync.WaitGroup
	for w := 0; w < crashWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(stop); seq++ {
				n := seq%4 + 1
				recs := make([][]byte, n)
				for s := range recs {
					recs[s] = crashRecord(cycle, w, seq, s)
				}
				first, err := l.Append(recs...)
				if err != nil {
					fmt.Fprintf(os.Stderr, "child append: %v\n", err)
					os.Exit(3)
				}
				// One write per line, so lines never interleave.
				os.Stdout.WriteString(fmt.Sprintf("ack %d %d %d %d\n", first, w, seq, n))
			}
		}()
	}
	wg.Wait()
	l.Close()
	os.Exit(0)
}

type crashAck struct {
	cycle, w, seq, n int
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	cycles := 25
	if s := os.Getenv(crashCyclesEnv); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	dir := t.TempDir()
	acked := map[uint64]crashAck{} // by first offset of each acknowledged Append
	for c := 0; c < cycles; c++ {
		killAfter := 1 + rng.IntN(400) // acks before the kill
		extra := time.Duration(rng.IntN(3000)) * time.Microsecond
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashCycleEnv+"="+strconv.Itoa(c))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		got := 0
		killed := false
		var killTimer <-chan time.Time
		deadline := time.After(30 * time.Second)
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(line)
				if len(f) == 5 && f[0] == "ack" {
					first, _ := strconv.ParseUint(f[1], 10, 64)
					w, _ := strconv.Atoi(f[2])
					seq, _ := strconv.Atoi(f[3])
					n, _ := strconv.Atoi(f[4])
					acked[first] = crashAck{c, w, seq, n}
					got++
					if got == killAfter && killTimer == nil {
						killTimer = time.After(extra) // a random moment after it
					}
				}
			case <-killTimer:
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				killTimer = nil
			case <-deadline:
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
				t.Fatalf("cycle %d: child made no progress; stderr: %s", c, stderr.String())
			}
		}
		werr := cmd.Wait()
		if !killed {
			t.Fatalf("cycle %d: child exited by itself: %v; stderr: %s", c, werr, stderr.String())
		}
		// Lines read after the kill were acknowledged before it: keep them
		// (the channel was drained above).

		l, err := Open(dir, &Options{SegmentBytes: crashSegBytes})
		if err != nil {
			t.Fatalf("cycle %d: reopen after kill -9: %v", c, err)
		}
		first, next := l.FirstOffset(), l.NextOffset()
		for off, a := range acked {
			if off < first {
				continue
			}
			if off+uint64(a.n) > next {
				l.Close()
				t.Fatalf("cycle %d: acknowledged Append at %d (n=%d) lost; log ends at %d", c, off, a.n, next)
			}
			for s := 0; s < a.n; s++ {
				b, err := l.Read(off + uint64(s))
				if err != nil {
					l.Close()
					t.Fatalf("cycle %d: Read(%d): %v", c, off+uint64(s), err)
				}
				if want := crashRecord(a.cycle, a.w, a.seq, s); !bytes.Equal(b, want) {
					l.Close()
					t.Fatalf("cycle %d: record %d = %.40q, want %.40q", c, off+uint64(s), b, want)
				}
			}
		}
		if err := l.Verify(); err != nil {
			l.Close()
			t.Fatalf("cycle %d: Verify: %v", c, err)
		}
		// Now and then drop old segments, as snapshots would.
		if c%3 == 2 {
			if err := l.TruncateFront(next / 2); err != nil {
				t.Fatalf("cycle %d: TruncateFront: %v", c, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("cycle %d: killed after %d acks (+%v); log [%d, %d); recovery %+v", c, got, extra, first, next, l.Recovery())
	}
	if len(acked) == 0 {
		t.Fatal("no Append was ever acknowledged")
	}
}
