package resp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/shoaldb/shoal/node"
)

func TestRESPMultiExec(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 2, "")
	must(t, c.Set(ctx, "str", "x", 0).Err())
	before := ts.n.Status().NextOffset
	var incr1, incr2 *redis.IntCmd
	var get *redis.StringCmd
	var sadd *redis.IntCmd
	cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		incr1 = p.Incr(ctx, "n")
		incr2 = p.IncrBy(ctx, "n", 5)
		get = p.Get(ctx, "a") // sees the transaction's own write
		sadd = p.SAdd(ctx, "s", "m1", "m2")
		p.HSet(ctx, "h", "f", "v")
		p.Incr(ctx, "str") // fails on its own, like Redis: the rest commits
		p.Ping(ctx)
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		t.Fatalf("EXEC = %v, want the INCR's WRONGTYPE among the replies", err)
	}
	if len(cmds) != 8 || incr1.Val() != 1 || incr2.Val() != 6 || get.Val() != "1" || sadd.Val() != 2 {
		t.Fatalf("replies: incr %d %d, get %q, sadd %d", incr1.Val(), incr2.Val(), get.Val(), sadd.Val())
	}
	if got := ts.n.Status().NextOffset - before; got != 1 {
		t.Fatalf("EXEC took %d WAL records, want 1 (one atomic batch)", got)
	}
	if v, _ := c.HGet(ctx, "h", "f").Result(); v != "v" {
		t.Fatalf("after EXEC: HGET = %q", v)
	}

	raw := dial(t, ts.addr)
	for _, s := range []struct {
		args []string
		want string
	}{
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"MULTI"}, "-ERR MULTI calls can not be nested\r\n"},
		{[]string{"SET", "q", "1"}, "+QUEUED\r\n"},
		{[]string{"DISCARD"}, "+OK\r\n"},
		{[]string{"GET", "q"}, "$-1\r\n"},
		// A refused command aborts the transaction at EXEC.
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SET", "q", "1"}, "+QUEUED\r\n"},
		{[]string{"GET"}, "-ERR wrong number of arguments for 'get' command\r\n"},
		{[]string{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
		{[]string{"GET", "q"}, "$-1\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"NOSUCH"}, "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"},
		{[]string{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SELECT", "0"}, "-ERR Command not allowed inside a transaction\r\n"},
		{[]string{"DISCARD"}, "+OK\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"WATCH", "x"}, "-ERR WATCH inside MULTI is not allowed\r\n"},
		{[]string{"EXEC"}, "*0\r\n"},
	} {
		if got := raw.cmd(s.args...); got != s.want {
			t.Fatalf("%v = %q, want %q", s.args, got, s.want)
		}
	}
}

// TestRESPExecTooLarge: a transaction the node refuses as a whole is
// answered with that error and applies nothing.
func TestRESPExecTooLarge(t *testing.T) {
	ts := startServer(t, &node.Options{Sync: node.SyncNever, MaxValueBytes: 1000}, nil)
	c := ts.client(t, 2, "")
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "small", "x", 0)
		p.Set(ctx, "big", strings.Repeat("x", 2000), 0)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("EXEC = %v", err)
	}
	if n, _ := c.Exists(ctx, "small", "big").Result(); n != 0 {
		t.Fatalf("a refused EXEC applied %d writes", n)
	}
}

// TestRESPPipeline: pipelined commands answer in order, reads see the
// writes before them, and the writes share group commits.
func TestRESPPipeline(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := startServer(t, &node.Options{Registerer: reg}, nil) // SyncAlways
	c := ts.client(t, 2, "")
	const count = 300
	before := ts.n.Status().NextOffset
	groupsBefore := groupCommits(t, reg)
	var incrs []*redis.IntCmd
	var gets []*redis.StringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range count {
			p.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprint(i), 0)
			incrs = append(incrs, p.Incr(ctx, "n"))
			if i%50 == 0 {
				gets = append(gets, p.Get(ctx, fmt.Sprintf("k%d", i)))
			}
		}
		p.Set(ctx, "n", "replaced", 0) // SET over a counter: the retry path
		p.SAdd(ctx, "n2", "m")
		p.Set(ctx, "n2", "also", 0)
		return nil
	})
	must(t, err)
	for i, cmd := range incrs {
		if cmd.Val() != int64(i+1) {
			t.Fatalf("INCR %d answered %d", i, cmd.Val())
		}
	}
	for i, cmd := range gets {
		if cmd.Val() != fmt.Sprint(i*50) {
			t.Fatalf("GET after SET in a pipeline = %q", cmd.Val())
		}
	}
	if v, _ := c.Get(ctx, "n").Result(); v != "replaced" {
		t.Fatalf("SET over a counter: %q", v)
	}
	if v, _ := c.Get(ctx, "n2").Result(); v != "also" {
		t.Fatalf("SET over a set: %q", v)
	}
	// A refused write in a round answers alone; the others commit.
	var set *redis.StatusCmd
	var bad, good *redis.IntCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		set = p.Set(ctx, "str", "x", 0)
		bad = p.Incr(ctx, "str")
		good = p.IncrBy(ctx, "fresh", 7)
		return nil
	})
	if set.Err() != nil || bad.Err() == nil || !strings.HasPrefix(bad.Err().Error(), "WRONGTYPE") || good.Val() != 7 {
		t.Fatalf("mixed round: SET %v, INCR %v, INCRBY %d %v", set.Err(), bad.Err(), good.Val(), good.Err())
	}
	// Writes of one key in a round: the last value wins, each INCR
	// answers its own value, and a key both incremented and SET is
	// answered write by write.
	var incrs2 []*redis.IntCmd
	var last *redis.StringCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "same", "1", 0)
		p.MSet(ctx, "same", "2", "other", "o")
		p.Set(ctx, "same", "3", 0)
		incrs2 = append(incrs2, p.IncrBy(ctx, "mixed", 2), p.IncrBy(ctx, "mixed", 3))
		p.Set(ctx, "mixed", "now a string", 0)
		incrs2 = append(incrs2, p.Incr(ctx, "mixed2"))
		last = p.Get(ctx, "same")
		return nil
	})
	must(t, err)
	if last.Val() != "3" || incrs2[0].Val() != 2 || incrs2[1].Val() != 5 || incrs2[2].Val() != 1 {
		t.Fatalf("same-key round: GET %q, INCRs %d %d %d", last.Val(), incrs2[0].Val(), incrs2[1].Val(), incrs2[2].Val())
	}
	if v, _ := c.Get(ctx, "mixed").Result(); v != "now a string" {
		t.Fatalf("mixed round: GET = %q", v)
	}
	// 600 pipelined blind writes: one record and one fsync each would
	// take 600 of both; a round's writes share a record, and the rounds
	// share group commits.
	if recs := ts.n.Status().NextOffset - before; recs > count {
		t.Fatalf("%d records for %d pipelined writes", recs, 2*count)
	}
	if g := groupCommits(t, reg) - groupsBefore; g > count {
		t.Fatalf("%d pipelined writes took %d group commits", 2*count, g)
	}
}

// groupCommits reads the node's count of group commits.
func groupCommits(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "shoal_node_commit_batch_requests" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no shoal_node_commit_batch_requests metric")
	return 0
}

// TestRESPPipelineLargeValues: a round of large pipelined values is
// split before it reaches the WAL's record limit.
func TestRESPPipelineLargeValues(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 2, "")
	big := strings.Repeat("v", 900<<10)
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 24 { // 21 MiB in one pipeline
			p.Set(ctx, fmt.Sprint("big", i), big, 0)
		}
		return nil
	})
	must(t, err)
	if len(cmds) != 24 {
		t.Fatalf("%d replies", len(cmds))
	}
	if n, _ := c.Exists(ctx, "big0", "big23").Result(); n != 2 {
		t.Fatalf("EXISTS = %d", n)
	}
}
