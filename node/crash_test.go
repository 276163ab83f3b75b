package node

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a writer (crashChild),
// which prints every write it is about to make ("intent") and every write
// that was acknowledged ("ack"); the parent kills it with SIGKILL at a
// random moment, reopens the directory and checks that every acknowledged
// write is there, that an unacknowledged one is there whole or not at all,
// and that counters equal the sum of their acknowledged increments (plus,
// at most, the one in flight). Writes of later cycles land on the same
// replica, so a reissued dot (key amnesia) would show up as a lost write.

const (
	crashChildEnv   = "SHOAL_NODE_CRASH_CHILD"
	crashCycleEnv   = "SHOAL_NODE_CRASH_CYCLE"
	crashWriters    = 4
	crashSegment    = 64 << 10
	crashSnapEvery  = 150
	crashChildLimit = 60 * time.Second
)

func crashOptions() *Options {
	return &Options{SegmentBytes: crashSegment, SnapshotEveryOps: crashSnapEvery}
}

// crashChild runs in the child process until it is killed.
func crashChild(dir string) {
	cycle := os.Getenv(crashCycleEnv)
	n, err := Open(dir, crashOptions())
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("ready %s\n", n.ReplicaID())
	time.AfterFunc(crashChildLimit, func() { os.Exit(3) }) // never outlive a dead parent
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			val := strings.Repeat("v", 200)
			for i := 0; ; i++ {
				var line string
				var err error
				switch i % 4 {
				case 0:
					key := fmt.Sprintf("p/%s/%d/%d", cycle, g, i)
					line = fmt.Sprintf("put %d %s %s%d", g, key, val[:i%150], i)
					fmt.Printf("intent %s\n", line)
					err = n.Put(key, val[:i%150]+strconv.Itoa(i))
				case 1:
					key := fmt.Sprintf("c/%d", g)
					by := int64(i%7 - 2)
					line = fmt.Sprintf("incr %d %s %d", g, key, by)
					fmt.Printf("intent %s\n", line)
					_, err = n.Incr(key, by)
				case 2:
					key := fmt.Sprintf("s/%d", g)
					member := fmt.Sprintf("m%s-%d", cycle, i)
					line = fmt.Sprintf("add %d %s %s", g, key, member)
					fmt.Printf("intent %s\n", line)
					err = n.SetAdd(key, member)
				case 3:
					kx := fmt.Sprintf("b/%s/%d/%d/x", cycle, g, i)
					ky := fmt.Sprintf("b/%s/%d/%d/y", cycle, g, i)
					ck := fmt.Sprintf("bc/%d", g)
					line = fmt.Sprintf("batch %d %s %s %s %d", g, kx, ky, ck, i)
					fmt.Printf("intent %s\n", line)
					var b Batch
					b.Put(kx, i)
					b.SetAdd(ky, "m")
					b.Incr(ck, int64(i))
					err = n.Commit(&b)
				}
				if err != nil {
					fmt.Printf("error %s: %v\n", line, err)
					os.Exit(4)
				}
				fmt.Printf("ack %s\n", line)
			}
		})
	}
	wg.Wait()
}

// crashModel is what the parent knows was acknowledged.
type crashModel struct {
	puts     map[string]string          // key -> value
	members  map[string]map[string]bool // set key -> members
	counters map[string]int64           // counter key -> acknowledged sum
	batches  map[string]int64           // x key -> i (y key and counter implied)
	pending  map[int]string             // writer -> intent line not acknowledged
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the binary")
	}
	cycles := 16
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	m := &crashModel{
		puts: map[string]string{}, members: map[string]map[string]bool{},
		counters: map[string]int64{}, batches: map[string]int64{},
	}
	var replica string
	for cycle := range cycles {
		m.pending = map[int]string{}
		rep, acks := runCrashChild(t, dir, cycle, time.Duration(20+rng.IntN(250))*time.Millisecond, m)
		if replica != "" && rep != replica {
			t.Fatalf("cycle %d: replica changed from %s to %s after kill -9 under SyncAlways", cycle, replica, rep)
		}
		replica = rep
		n, err := Open(dir, crashOptions())
		if err != nil {
			t.Fatalf("cycle %d (seed %d): reopen after kill: %v", cycle, seed, err)
		}
		checkCrashModel(t, n, m, cycle, seed)
		if n.ReplicaID() != replica {
			// A SIGKILL can cut a write(2) short at a page boundary (the
			// kernel checks for fatal signals between pages), leaving an
			// Append torn: never synced, so never acknowledged, but Open
			// cannot tell it from a synced tail damaged later, and takes a
			// new replica ID. Nothing else may change it.
			st, err := readIdentity(dir)
			must(t, err)
			if !strings.HasPrefix(st.cur.Reason, "the WAL's torn tail was cut") {
				t.Fatalf("cycle %d (seed %d): replica changed on reopen: %q", cycle, seed, st.cur.Reason)
			}
			t.Logf("cycle %d: new replica ID on reopen: %s", cycle, st.cur.Reason)
			replica = n.ReplicaID()
		}
		t.Logf("cycle %d: %d acknowledged writes, WAL [%d, %d)", cycle, acks, n.Status().FirstOffset, n.Status().NextOffset)
		must(t, n.Close())
	}
	if len(m.puts) == 0 || len(m.batches) == 0 {
		t.Fatalf("the child acknowledged too little to test anything: %d puts, %d batches", len(m.puts), len(m.batches))
	}
	// Clean reopen gives the same state.
	n := openAt(t, dir, crashOptions())
	d := n.Digest()
	must(t, n.Close())
	n = openAt(t, dir, nil)
	if n.Digest() != d {
		t.Fatal("digest changed across a clean reopen")
	}
}

// runCrashChild starts the writer, kills it after d and folds its output
// into m. It returns the child's replica ID and the number of acks.
func runCrashChild(t *testing.T, dir string, cycle int, d time.Duration, m *crashModel) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashCycleEnv+"="+strconv.Itoa(cycle))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var replica string
	ready := make(chan struct{})
	lines := make(chan []string, 1)
	go func() {
		var all []string
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ready ") && replica == "" {
				replica = strings.TrimPrefix(line, "ready ")
				close(ready)
			}
			all = append(all, line)
		}
		lines <- all
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not start")
	}
	time.Sleep(d) // the kill moment is random on purpose; nothing is awaited here
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	all := <-lines
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, strings.Join(all[max(0, len(all)-5):], "\n"))
	}
	acks := 0
	for _, line := range all {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || f[0] == "ready":
		case f[0] == "error":
			t.Fatalf("child: %s", line)
		case f[0] == "intent":
			g, _ := strconv.Atoi(f[2])
			m.pending[g] = strings.Join(f[1:], " ")
		case f[0] == "ack":
			g, _ := strconv.Atoi(f[2])
			delete(m.pending, g)
			m.ack(f[1:])
			acks++
		}
	}
	return replica, acks
}

func (m *crashModel) ack(f []string) {
	switch f[0] {
	case "put":
		val := ""
		if len(f) > 3 {
			val = f[3]
		}
		m.puts[f[2]] = val
	case "incr":
		by, _ := strconv.ParseInt(f[3], 10, 64)
		m.counters[f[2]] += by
	case "add":
		if m.members[f[2]] == nil {
			m.members[f[2]] = map[string]bool{}
		}
		m.members[f[2]][f[3]] = true
	case "batch":
		i, _ := strconv.ParseInt(f[5], 10, 64)
		m.batches[f[2]] = i
		m.counters[f[4]] += i
	}
}

func checkCrashModel(t *testing.T, n *Node, m *crashModel, cycle int, seed uint64) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("cycle %d (seed %d): %s", cycle, seed, fmt.Sprintf(format, args...))
	}
	for key, want := range m.puts {
		v, err := n.Get(key)
		if err != nil || v.Data != want {
			fail("acknowledged put %s = %q lost: %#v, %v", key, want, v.Data, err)
		}
	}
	for key, ms := range m.members {
		v, err := n.Get(key)
		if err != nil {
			fail("set %s: %v", key, err)
		}
		have := v.Data.([]string)
		for member := range ms {
			if !slices.Contains(have, member) {
				fail("acknowledged member %s of %s lost", member, key)
			}
		}
	}
	for kx, i := range m.batches {
		checkBatch(t, n, kx, i, true, fail)
	}
	// In-flight writes: whole or absent; counters may include them.
	inflight := map[string]int64{}
	for _, line := range m.pending {
		f := strings.Fields(line)
		switch f[0] {
		case "put":
			if v, err := n.Get(f[2]); err == nil {
				m.puts[f[2]] = v.Data.(string)
			}
		case "incr":
			by, _ := strconv.ParseInt(f[3], 10, 64)
			inflight[f[2]] = by
		case "add":
		case "batch":
			i, _ := strconv.ParseInt(f[5], 10, 64)
			if checkBatch(t, n, f[2], i, false, fail) {
				m.batches[f[2]] = i
				m.counters[f[4]] += i
			}
		}
	}
	for key, want := range m.counters {
		v, err := n.Get(key)
		var got int64
		if err == nil {
			got = v.Data.(int64)
		} else if !errors.Is(err, ErrNotFound) {
			fail("counter %s: %v", key, err)
		}
		switch {
		case got == want:
		case inflight[key] != 0 && got == want+inflight[key]:
			m.counters[key] = got // the in-flight increment was durable
		default:
			fail("counter %s = %d, acknowledged sum %d (in flight %d)", key, got, want, inflight[key])
		}
	}
}

// checkBatch checks the two keys and reports whether the batch is there;
// an acknowledged batch must be, an unacknowledged one whole or absent.
func checkBatch(t *testing.T, n *Node, kx string, i int64, acked bool, fail func(string, ...any)) bool {
	t.Helper()
	ky := strings.TrimSuffix(kx, "x") + "y"
	vx, errx := n.Get(kx)
	_, erry := n.Get(ky)
	switch {
	case errx == nil && erry == nil:
		if vx.Data != i {
			fail("batch %s = %v, want %d", kx, vx.Data, i)
		}
		return true
	case errors.Is(errx, ErrNotFound) && errors.Is(erry, ErrNotFound) && !acked:
		return false
	}
	fail("batch %s (acknowledged %v) torn or lost: %v / %v", kx, acked, errx, erry)
	return false
}
