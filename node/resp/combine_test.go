package resp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shoaldb/shoal/node"
)

// clients returns k clients of ts with one connection each: k
// connections that write at once.
func (ts *testServer) clients(t *testing.T, k int) []*redis.Client {
	cs := make([]*redis.Client, k)
	for i := range cs {
		cs[i] = ts.client(t, 2, "")
		cs[i].Options().PoolSize = 1
	}
	return cs
}

// TestRESPCombinedRounds: plain writes of many connections at once share
// records, and each is answered as if it had committed on its own: every
// INCR of a shared counter gets a value of its own, each connection's
// writes keep their order, the last write of a key wins.
func TestRESPCombinedRounds(t *testing.T) {
	ts := startServer(t, &node.Options{}, nil) // SyncAlways: commits take a while
	const conns, each = 16, 60
	before := ts.n.Status().NextOffset
	var mu sync.Mutex
	var got []int64
	var wg sync.WaitGroup
	for i, c := range ts.clients(t, conns) {
		wg.Go(func() {
			var mine []int64
			for j := range each {
				v, err := c.Incr(ctx, "ctr").Result()
				if err != nil {
					t.Errorf("INCR: %v", err)
					return
				}
				mine = append(mine, v)
				must(t, c.Set(ctx, fmt.Sprint("own", i), j, 0).Err())
				must(t, c.IncrBy(ctx, fmt.Sprint("own-ctr", i), 2).Err())
			}
			if !slices.IsSorted(mine) {
				t.Errorf("connection %d: its INCRs answered %v, not increasing", i, mine)
			}
			mu.Lock()
			got = append(got, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("INCR replies of %d connections: %d is %d, want each of 1..%d once", conns, i, v, conns*each)
		}
	}
	c := ts.client(t, 2, "")
	for i := range conns {
		if v, _ := c.Get(ctx, fmt.Sprint("own", i)).Result(); v != fmt.Sprint(each-1) {
			t.Fatalf("own%d = %q, want its last SET %d", i, v, each-1)
		}
		if v, _ := c.Get(ctx, fmt.Sprint("own-ctr", i)).Int(); v != 2*each {
			t.Fatalf("own-ctr%d = %d, want %d", i, v, 2*each)
		}
	}
	if v, _ := c.Get(ctx, "ctr").Int(); v != conns*each {
		t.Fatalf("ctr = %d, want %d", v, conns*each)
	}
	writes := uint64(3 * conns * each)
	if recs := ts.n.Status().NextOffset - before; recs >= writes/2 {
		t.Fatalf("%d records for %d writes of %d connections at once: not shared", recs, writes, conns)
	}
	// INFO stats shows it: every round in a batch, fewer batches than rounds.
	info, err := c.Info(ctx, "stats").Result()
	must(t, err)
	var batches, rounds, refused int
	for _, line := range strings.Split(info, "\r\n") {
		fmt.Sscanf(line, "shoal_shared_batches:%d", &batches)
		fmt.Sscanf(line, "shoal_shared_batch_rounds:%d", &rounds)
		fmt.Sscanf(line, "shoal_shared_batches_refused:%d", &refused)
	}
	if rounds < int(writes) || batches == 0 || batches >= rounds/2 || refused != 0 {
		t.Fatalf("INFO stats: %d batches, %d rounds, %d refused, after %d writes\n%s", batches, rounds, refused, writes, info)
	}
}

// TestRESPCombinedFailures: a write that fails in a shared batch fails
// alone. One connection INCRs a string over and over; another SETs a key
// that a third INCRs; the other connections' writes all commit.
func TestRESPCombinedFailures(t *testing.T) {
	ts := startServer(t, &node.Options{}, nil)
	cs := ts.clients(t, 8)
	must(t, cs[0].Set(ctx, "str", "x", 0).Err())
	const each = 40
	var wg sync.WaitGroup
	wg.Go(func() { // always refused
		for range each {
			if err := cs[0].Incr(ctx, "str").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
				t.Errorf("INCR of a string: %v", err)
				return
			}
		}
	})
	wg.Go(func() { // SET replaces the counter the next one makes
		for j := range each {
			if err := cs[1].Set(ctx, "contested", j, 0).Err(); err != nil {
				t.Errorf("SET over a counter: %v", err)
				return
			}
		}
	})
	wg.Go(func() { // refused while a string, counts again after
		for range each {
			if err := cs[2].Incr(ctx, "contested").Err(); err != nil && !strings.HasPrefix(err.Error(), "WRONGTYPE") {
				t.Errorf("INCR of a contested key: %v", err)
				return
			}
		}
	})
	var mu sync.Mutex
	var got []int64
	for _, c := range cs[3:] {
		wg.Go(func() {
			for range each {
				v, err := c.Incr(ctx, "good").Result()
				if err != nil {
					t.Errorf("INCR beside failing writes: %v", err)
					return
				}
				mu.Lock()
				got = append(got, v)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("INCR replies beside failing writes: %d is %d, want each of 1..%d once", i, v, len(got))
		}
	}
	if v, _ := cs[0].Get(ctx, "str").Result(); v != "x" {
		t.Fatalf("str = %q", v)
	}
	if _, _, failed := ts.s.comb.stats(); failed == 0 {
		t.Fatal("no shared batch failed: the retry path went untested")
	}
}

// TestRESPCombinedDisconnect: connections that send writes and hang up
// without reading the replies leave the shared batches going: they may
// lead one.
func TestRESPCombinedDisconnect(t *testing.T) {
	ts := startServer(t, &node.Options{}, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			var b strings.Builder
			for j := range 50 {
				b.WriteString(encode("SET", fmt.Sprint("gone", i), fmt.Sprint(j)))
			}
			nc.Write([]byte(b.String()))
			nc.Close()
		})
	}
	for _, c := range ts.clients(t, 4) {
		wg.Go(func() {
			for range 50 {
				if err := c.Incr(ctx, "after").Err(); err != nil {
					t.Errorf("INCR: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v, _ := ts.client(t, 2, "").Get(ctx, "after").Int(); v != 200 {
		t.Fatalf("after = %d, want 200", v)
	}
}

// TestRESPCombinedModel: connections pipeline random mixes of SET, MSET,
// INCRBY, GET and DEL at once, each on keys of its own, and every reply
// must be what one client alone would get (a model of each connection's
// keys): rounds split by reads, rounds refused for a mixed or wrong type
// and answered one by one, connections sent off on their own after a
// failure, shared batches of several connections, all in one run.
func TestRESPCombinedModel(t *testing.T) {
	ts := startServer(t, &node.Options{}, nil)
	const conns, rounds = 8, 30
	var wg sync.WaitGroup
	for i, c := range ts.clients(t, conns) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			type val struct {
				counter bool
				s       string
				n       int64
			}
			model := map[string]val{}
			key := func() string { return fmt.Sprintf("c%d:k%d", i, rng.IntN(4)) }
			for r := range rounds {
				var cmds []redis.Cmder
				var want []string
				_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for range 1 + rng.IntN(30) {
						k := key()
						switch op := rng.IntN(10); {
						case op < 3:
							v := fmt.Sprint(rng.IntN(100))
							cmds = append(cmds, p.Set(ctx, k, v, 0))
							model[k] = val{s: v}
							want = append(want, "OK")
						case op < 4:
							k2, v := key(), fmt.Sprint("m", rng.IntN(100))
							cmds = append(cmds, p.MSet(ctx, k, "x", k2, v))
							model[k], model[k2] = val{s: "x"}, val{s: v}
							want = append(want, "OK")
						case op < 7:
							by := int64(rng.IntN(5) + 1)
							cmds = append(cmds, p.IncrBy(ctx, k, by))
							if m, ok := model[k]; ok && !m.counter {
								want = append(want, "WRONGTYPE")
							} else {
								m.counter, m.n = true, m.n+by
								model[k] = m
								want = append(want, fmt.Sprint(m.n))
							}
						case op < 9:
							cmds = append(cmds, p.Get(ctx, k))
							switch m, ok := model[k]; {
							case !ok:
								want = append(want, "nil")
							case m.counter:
								want = append(want, fmt.Sprint(m.n))
							default:
								want = append(want, m.s)
							}
						default:
							cmds = append(cmds, p.Del(ctx, k))
							_, ok := model[k]
							delete(model, k)
							want = append(want, fmt.Sprint(boolInt(ok)))
						}
					}
					return nil
				})
				for j, cmd := range cmds {
					var got string
					switch err := cmd.Err(); {
					case errors.Is(err, redis.Nil):
						got = "nil"
					case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
						got = "WRONGTYPE"
					case err != nil:
						got = err.Error()
					default:
						switch cmd := cmd.(type) {
						case *redis.StatusCmd:
							got = cmd.Val()
						case *redis.IntCmd:
							got = fmt.Sprint(cmd.Val())
						case *redis.StringCmd:
							got = cmd.Val()
						}
					}
					if got != want[j] {
						t.Errorf("connection %d, round %d, command %d %v: got %s, want %s", i, r, j, cmd.Args(), got, want[j])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestRESPCombinedNodeBound: a node that takes smaller batches than a
// round may hold (Options.MaxBatchOperations) gets shared batches within
// its bound: every write commits, and batches are still shared.
func TestRESPCombinedNodeBound(t *testing.T) {
	ts := startServer(t, &node.Options{MaxBatchOperations: 4}, nil)
	const conns, each = 12, 30
	before := ts.n.Status().NextOffset
	var wg sync.WaitGroup
	for i, c := range ts.clients(t, conns) {
		wg.Go(func() {
			for j := range each {
				if err := c.Incr(ctx, fmt.Sprint("k", (i+j)%8)).Err(); err != nil {
					t.Errorf("INCR: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	c := ts.client(t, 2, "")
	sum := 0
	for k := range 8 {
		v, _ := c.Get(ctx, fmt.Sprint("k", k)).Int()
		sum += v
	}
	if sum != conns*each {
		t.Fatalf("the counters hold %d increments, want %d", sum, conns*each)
	}
	if recs := ts.n.Status().NextOffset - before; recs >= conns*each {
		t.Fatalf("%d records for %d writes of %d connections at once: not shared", recs, conns*each, conns)
	}
	if _, _, failed := ts.s.comb.stats(); failed != 0 {
		t.Fatalf("%d shared batches refused: beyond the node's bound", failed)
	}
}
