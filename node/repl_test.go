package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/gossip"
)

// replCluster is an in-process cluster of replicas on 127.0.0.1.
type replCluster struct {
	t      testing.TB
	faults *gossip.FaultNet
	nodes  []*Node
	dirs   []string
	opts   func(i int, o *Options)
}

// replOptions are the options of replica name in tests: local gossip
// preset, fault injection, and mod applied last.
func (c *replCluster) options(i int) *Options {
	gc := gossip.DefaultLocalConfig()
	gc.Name = fmt.Sprintf("n%d", i)
	gc.Faults = c.faults
	o := &Options{Gossip: gc, Sync: SyncNever}
	if c.opts != nil {
		c.opts(i, o)
	}
	return o
}

// newReplCluster opens n replicas, joins them to the first and waits until
// every stream is up.
func newReplCluster(t testing.TB, n int, opts func(i int, o *Options)) *replCluster {
	t.Helper()
	c := &replCluster{t: t, faults: gossip.NewFaultNet(), opts: opts}
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.nodes = append(c.nodes, c.open(i))
	}
	for i := 1; i < n; i++ {
		c.join(i)
	}
	c.waitConnected()
	return c
}

func (c *replCluster) open(i int) *Node {
	c.t.Helper()
	nd, err := Open(c.dirs[i], c.options(i))
	if err != nil {
		c.t.Fatalf("open n%d: %v", i, err)
	}
	c.t.Cleanup(func() { nd.Close() })
	return nd
}

func (c *replCluster) join(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[i].Join(ctx, c.gossipAddr(0)); err != nil {
		c.t.Fatalf("n%d join: %v", i, err)
	}
}

func (c *replCluster) gossipAddr(i int) string {
	return c.nodes[i].repl.Load().gossip().LocalPeer().Addr
}

func (c *replCluster) stats(i int) gossip.Stats { return c.nodes[i].repl.Load().gossip().Stats() }

// waitConnected waits until every open replica sees every other alive with
// its stream up.
func (c *replCluster) waitConnected() {
	c.t.Helper()
	replEventually(c.t, 30*time.Second, func() bool {
		for _, nd := range c.nodes {
			if nd.closed.Load() {
				continue
			}
			up := 0
			for _, m := range nd.Members() {
				if !m.Self && m.State == "alive" && m.Connected {
					up++
				}
			}
			if up != c.open_()-1 {
				return false
			}
		}
		return true
	}, "cluster not connected:%s", c.describe())
}

func (c *replCluster) open_() int {
	k := 0
	for _, nd := range c.nodes {
		if !nd.closed.Load() {
			k++
		}
	}
	return k
}

// waitConverged waits until the given replicas (default: all open ones)
// have equal digests.
func (c *replCluster) waitConverged(timeout time.Duration, idx ...int) {
	c.t.Helper()
	if len(idx) == 0 {
		for i, nd := range c.nodes {
			if !nd.closed.Load() {
				idx = append(idx, i)
			}
		}
	}
	replEventually(c.t, timeout, func() bool {
		d := c.nodes[idx[0]].Digest()
		for _, i := range idx[1:] {
			if c.nodes[i].Digest() != d {
				return false
			}
		}
		return true
	}, "replicas %v did not converge:%s", idx, c.describe())
}

// holders lists the replicas where key exists.
func (c *replCluster) holders(key string) []int {
	var out []int
	for i, nd := range c.nodes {
		if _, err := nd.Get(key); err == nil {
			out = append(out, i)
		}
	}
	return out
}

func (c *replCluster) describe() string {
	var sb strings.Builder
	for i, nd := range c.nodes {
		if nd.closed.Load() {
			fmt.Fprintf(&sb, "\n  n%d: closed", i)
			continue
		}
		fmt.Fprintf(&sb, "\n  n%d keys=%d digest=%.8s", i, nd.Status().Keys, nd.Digest())
		for _, m := range nd.Members() {
			if !m.Self {
				fmt.Fprintf(&sb, " %s=%s/conn=%v/acked=%d", m.Name, m.State, m.Connected, m.Acked)
			}
		}
	}
	return sb.String()
}

// replEventually polls cond until it holds or the timeout passes.
func replEventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: "+format, append([]any{timeout}, args...)...)
		}
		<-tick.C
	}
}

// randomOps applies count random operations of every type to random
// replicas (from rng), on a small key space so that they conflict.
func replRandomOps(t testing.TB, rng *rand.Rand, nodes []*Node, count int) {
	t.Helper()
	for range count {
		nd := nodes[rng.IntN(len(nodes))]
		key := fmt.Sprintf("k%d", rng.IntN(20))
		var err error
		switch rng.IntN(8) {
		case 0:
			err = nd.Put("reg/"+key, map[string]any{"v": rng.IntN(100), "s": "x"})
		case 1:
			_, err = nd.Incr("cnt/"+key, int64(rng.IntN(10)-3))
		case 2:
			err = nd.SetAdd("set/"+key, fmt.Sprint(rng.IntN(5)), fmt.Sprint(rng.IntN(5)))
		case 3:
			err = nd.SetRemove("set/"+key, fmt.Sprint(rng.IntN(5)))
		case 4:
			err = nd.Update("doc/"+key, Patch{
				Set:  map[string]any{"title": fmt.Sprint(rng.IntN(9))},
				Incr: map[string]int64{"n": 1},
				Add:  map[string][]string{"tags": {fmt.Sprint(rng.IntN(3))}},
			})
		case 5:
			prefix := []string{"reg/", "cnt/", "set/", "doc/"}[rng.IntN(4)]
			err = nd.Delete(prefix + key)
		case 6:
			var b Batch
			b.Put("reg/"+key, rng.IntN(100))
			b.Incr("cnt/"+key, 1)
			b.SetAdd("set/"+key, "b")
			err = nd.Commit(&b)
		case 7:
			err = nd.Put("reg/"+key, nil)
		}
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrWrongType) {
			t.Fatalf("op on %s: %v", nd.ReplicaID(), err)
		}
	}
}

func TestReplicationThreeNodesConverge(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	c := newReplCluster(t, 3, nil)
	rng := rand.New(rand.NewPCG(seed, 1))
	replRandomOps(t, rng, c.nodes, 600)
	c.waitConverged(30 * time.Second)
	// Nothing came back to its origin, and pushes were not duplicated: each
	// delta went to each peer at most twice (design.md: once or twice in
	// steady state), counted against the deltas each node made (its own
	// records in its WAL, not what it claims to have pushed).
	own := make([]uint64, len(c.nodes))
	var total uint64
	for i, nd := range c.nodes {
		own[i] = ownDeltaRecords(t, nd)
		total += own[i]
	}
	peers := uint64(len(c.nodes) - 1)
	for i, nd := range c.nodes {
		st := c.stats(i)
		if back := counterValue(t, nd.repl.Load().m.pushedOwn); back != 0 {
			t.Errorf("n%d was pushed %v of its own operations back", i, back)
		}
		if st.PushedReceived == 0 {
			t.Errorf("n%d received no pushes: %+v", i, st)
		}
		if others := total - own[i]; st.PushedReceived > 2*others {
			t.Errorf("n%d received %d pushes for %d deltas of its peers (more than twice each)", i, st.PushedReceived, others)
		}
		if st.PushedSent > 2*peers*own[i] {
			t.Errorf("n%d pushed %d payloads for its %d deltas to %d peers (more than twice each)", i, st.PushedSent, own[i], peers)
		}
		t.Logf("n%d: %d own deltas, pushed %d, received %d pushes for %d", i, own[i], st.PushedSent, st.PushedReceived, total-own[i])
	}
}

// ownDeltaRecords counts the records of deltas nd made itself in its WAL.
func ownDeltaRecords(t testing.TB, nd *Node) uint64 {
	t.Helper()
	var count uint64
	for off := nd.wal.FirstOffset(); off < nd.wal.NextOffset(); off++ {
		rec, err := nd.wal.Read(off)
		must(t, err)
		op, err := DecodeOp(rec)
		must(t, err)
		if op.Kind == OpDelta && op.Origin == nd.replica {
			count++
		}
	}
	return count
}

func TestReplicationTenNodesConverge(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	c := newReplCluster(t, 10, nil)
	rng := rand.New(rand.NewPCG(seed, 2))
	replRandomOps(t, rng, c.nodes, 500)
	c.waitConverged(60 * time.Second)
}

// Subscribers see remote writes like local ones, with the origin replica.
func TestReplicationPublishesRemoteWrites(t *testing.T) {
	c := newReplCluster(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := c.nodes[1].Subscribe(ctx, "doc/")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	must(t, c.nodes[0].Put("doc/1", "hello"))
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Key != "doc/1" || ev.Data != "hello" || ev.Origin != c.nodes[0].ReplicaID() {
		t.Fatalf("event %+v", ev)
	}
}

func TestReplicationLargeValue(t *testing.T) {
	c := newReplCluster(t, 3, nil)
	big := strings.Repeat("0123456789", 10<<10) // 100 KiB
	must(t, c.nodes[0].Put("big", big))
	c.waitConverged(20 * time.Second)
	v, err := c.nodes[2].Get("big")
	if err != nil || v.Data != big {
		t.Fatalf("big value on n2: %v (len %d)", err, len(fmt.Sprint(v.Data)))
	}
}

// 10,000 operations in a burst, from many goroutines on one node: every one
// reaches every replica.
func TestReplicationBurst(t *testing.T) {
	c := newReplCluster(t, 3, nil)
	const writers, each = 50, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := c.nodes[0].Put(fmt.Sprintf("burst/%d/%d", w, i), i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.waitConverged(60 * time.Second)
	for i, nd := range c.nodes {
		if k := nd.Status().Keys; k != writers*each {
			t.Fatalf("n%d has %d keys, want %d", i, k, writers*each)
		}
	}
}

// A 2+3 partition that outlasts failure detection heals without a manual
// Join, and the writes of both sides meet.
func TestReplicationPartitionHeals(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	c := newReplCluster(t, 5, nil)
	rng := rand.New(rand.NewPCG(seed, 3))
	replRandomOps(t, rng, c.nodes, 100)
	c.waitConverged(20 * time.Second)
	a, b := []string{"n0", "n1"}, []string{"n2", "n3", "n4"}
	c.faults.Partition(a, b)
	replEventually(t, 30*time.Second, func() bool {
		for i, nd := range c.nodes {
			for _, m := range nd.Members() {
				if m.Self {
					continue
				}
				sameSide := (i < 2) == (m.Name == "n0" || m.Name == "n1")
				if !sameSide && m.State != "dead" {
					return false
				}
			}
		}
		return true
	}, "partition not detected:%s", c.describe())
	replRandomOps(t, rng, c.nodes[:2], 100)
	replRandomOps(t, rng, c.nodes[2:], 100)
	c.waitConverged(20*time.Second, 0, 1)
	c.waitConverged(20*time.Second, 2, 3, 4)
	if c.nodes[0].Digest() == c.nodes[2].Digest() {
		t.Fatal("the two sides converged while partitioned")
	}
	c.faults.Heal()
	c.waitConverged(60 * time.Second)
	c.waitConnected()
}

// A replica closed without Leave while the others keep writing, then
// reopened from its directory, converges, and receives about what it
// missed: not the store.
func TestReplicationRestartCatchesUpWithMissedBytes(t *testing.T) {
	c := newReplCluster(t, 3, nil)
	// A store much larger than what will be missed.
	var b Batch
	for i := range 2000 {
		b.Put(fmt.Sprintf("base/%04d", i), strings.Repeat("v", 500))
		if b.Len() == 200 {
			must(t, c.nodes[0].Commit(&b))
			b.Reset()
		}
	}
	c.waitConverged(30 * time.Second)
	must(t, c.nodes[2].Close())

	// Missed: 100 writes on n0 and n1. Their encoded size is what their
	// WAL records hold.
	before := [2]uint64{c.nodes[0].wal.NextOffset(), c.nodes[1].wal.NextOffset()}
	for i := range 50 {
		must(t, c.nodes[0].Put(fmt.Sprintf("missed/a%d", i), strings.Repeat("m", 200)))
		_, err := c.nodes[1].Incr("missed/counter", 1)
		must(t, err)
	}
	c.waitConverged(20*time.Second, 0, 1)
	missed := 0
	for i := range 2 {
		for off := before[i]; off < c.nodes[i].wal.NextOffset(); off++ {
			rec, err := c.nodes[i].wal.Read(off)
			must(t, err)
			if op, err := DecodeOp(rec); err == nil && op.Origin == c.nodes[i].replica {
				missed += len(rec)
			}
		}
	}
	storeBytes := c.nodes[0].Status().WALBytes

	c.nodes[2] = c.open(2)
	c.join(2)
	c.waitConverged(30 * time.Second)
	st := c.stats(2)
	got := st.BytesReceived["sync_data"] + st.BytesReceived["batch"]
	ratio := float64(got) / float64(missed)
	t.Logf("catch-up: received %d bytes for %d bytes of missed records (ratio %.2f); store %d bytes", got, missed, ratio, storeBytes)
	if ratio > 3 {
		t.Fatalf("catch-up received %d bytes for %d bytes missed (ratio %.2f)", got, missed, ratio)
	}
}

// A new, empty replica joining one that holds 100,000 keys bootstraps by
// anti-entropy. The holder's WAL was truncated by snapshots, so it sends
// its state in key ranges.
func TestReplicationBootstrapFromLargeStore(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const keys = 100_000
	c := &replCluster{t: t, faults: gossip.NewFaultNet(), opts: func(i int, o *Options) {
		o.SegmentBytes = 1 << 20  // so that snapshots can truncate the WAL
		o.StateCheckInterval = -1 // the last pull below must send nothing
	}}
	c.dirs = []string{t.TempDir(), t.TempDir()}
	c.nodes = []*Node{c.open(0)}
	start := time.Now()
	var b Batch
	for i := range keys {
		b.Put(fmt.Sprintf("key/%06d", i), i)
		if b.Len() == 5000 {
			must(t, c.nodes[0].Commit(&b))
			b.Reset()
		}
	}
	// Two snapshots: the second truncates the WAL below the first.
	must(t, c.nodes[0].Snapshot())
	must(t, c.nodes[0].Put("after/first-snapshot", 1))
	must(t, c.nodes[0].Snapshot())
	if first := c.nodes[0].wal.FirstOffset(); first == 0 {
		t.Fatalf("WAL not truncated (first offset %d)", first)
	}
	t.Logf("store of %d keys built in %v", keys, time.Since(start))
	start = time.Now()
	c.nodes = append(c.nodes, c.open(1))
	c.join(1)
	c.waitConverged(120*time.Second, 0, 1)
	t.Logf("new replica bootstrapped in %v", time.Since(start))
	if k := c.nodes[1].Status().Keys; k != keys+1 {
		t.Fatalf("bootstrapped node has %d keys, want %d", k, keys+1)
	}
	r := c.nodes[0].repl.Load()
	if got := counterValue(t, r.m.served.WithLabelValues("state")); got < 1 {
		t.Fatal("the bootstrap did not go through a state transfer")
	}
	// Equal digests can come before the transfer's last record (the
	// applied set travels in it): wait for that record, then the next
	// anti-entropy round must send nothing.
	replEventually(t, 30*time.Second, func() bool {
		return len(c.nodes[1].appliedSet().Missing(c.nodes[0].appliedSet())) == 0
	}, "the new node never recorded the sender's operations as applied")
	before := c.stats(0).SyncSent
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, c.nodes[1].repl.Load().gossip().Sync(ctx, "n0"))
	if after := c.stats(0).SyncSent; after != before {
		t.Fatalf("a second pull sent %d more payloads", after-before)
	}
}

func TestWaitSynced(t *testing.T) {
	c := newReplCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nothing written yet: synced at once.
	must(t, c.nodes[0].WaitSynced(ctx))
	for i := range 20 {
		must(t, c.nodes[0].Put(fmt.Sprintf("w/%d", i), i))
	}
	must(t, c.nodes[0].WaitSynced(ctx))
	for _, i := range []int{1, 2} {
		if _, err := c.nodes[i].Get("w/19"); err != nil {
			t.Fatalf("WaitSynced returned but n%d lacks the last write: %v", i, err)
		}
	}
	st, err := c.nodes[0].SyncStatus()
	must(t, err)
	if st.Local != 20 || len(st.Peers) != 2 || !st.Peers[0].Synced || !st.Peers[1].Synced {
		t.Fatalf("sync status %+v", st)
	}

	// n2 partitioned away (memberlist and data): waiting for it blocks
	// until the deadline; waiting for n1 does not.
	c.faults.Partition([]string{"n0", "n1"}, []string{"n2"})
	must(t, c.nodes[0].Put("w/cut", 1))
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := c.nodes[0].WaitSynced(short, "n2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSynced on a partitioned peer: %v", err)
	}
	must(t, c.nodes[0].WaitSynced(ctx, "n1"))
	c.faults.Heal()
	long, cancelLong := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelLong()
	must(t, c.nodes[0].WaitSynced(long, "n1", "n2"))
	if _, err := c.nodes[2].Get("w/cut"); err != nil {
		t.Fatal(err)
	}
}

func TestOfflineNode(t *testing.T) {
	n, _ := openTest(t, nil)
	ctx := context.Background()
	if err := n.Join(ctx, "127.0.0.1:1"); !errors.Is(err, ErrOffline) {
		t.Fatalf("Join: %v", err)
	}
	if err := n.Leave(ctx); !errors.Is(err, ErrOffline) {
		t.Fatalf("Leave: %v", err)
	}
	if err := n.WaitSynced(ctx); !errors.Is(err, ErrOffline) {
		t.Fatalf("WaitSynced: %v", err)
	}
	if _, err := n.SyncStatus(); !errors.Is(err, ErrOffline) {
		t.Fatalf("SyncStatus: %v", err)
	}
	if ms := n.Members(); len(ms) != 1 || !ms[0].Self {
		t.Fatalf("Members: %+v", ms)
	}
}

func TestReplicationLeave(t *testing.T) {
	c := newReplCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, c.nodes[2].Leave(ctx))
	replEventually(t, 10*time.Second, func() bool {
		for _, m := range c.nodes[0].Members() {
			if m.Name == "n2" {
				return m.State == "left"
			}
		}
		return false
	}, "n0 does not see n2 as left")
	must(t, c.nodes[2].Close())
	must(t, c.nodes[0].Put("after", 1))
	must(t, c.nodes[0].WaitSynced(ctx))
}

// A node with the wrong cluster key cannot join or inject; garbage to the
// ports is counted and the cluster keeps converging.
func TestReplicationRejectsWrongKeyAndGarbage(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	c := newReplCluster(t, 2, func(i int, o *Options) { o.Gossip.SecretKeys = [][]byte{key} })
	gc := gossip.DefaultLocalConfig()
	gc.Name = "intruder"
	gc.SecretKeys = [][]byte{[]byte("fedcba9876543210")}
	intruder, err := Open(t.TempDir(), &Options{Gossip: gc, Sync: SyncNever})
	must(t, err)
	defer intruder.Close()
	must(t, intruder.Put("evil", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := intruder.Join(ctx, c.gossipAddr(0)); err == nil {
		t.Fatal("a node with the wrong key joined")
	}
	target := c.nodes[0].repl.Load().gossip()
	for _, addr := range []string{target.LocalPeer().DataAddr, target.LocalPeer().Addr} {
		sendGarbage(t, addr)
	}
	replEventually(t, 10*time.Second, func() bool {
		r := target.Stats().Rejected
		return r["gossip_decrypt"] > 0 && r["data_handshake"] > 0
	}, "rejections not counted: %v", target.Stats().Rejected)
	must(t, c.nodes[1].Put("good", 1))
	c.waitConverged(10 * time.Second)
	if _, err := c.nodes[0].Get("evil"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the intruder's write arrived: %v", err)
	}
}

func counterValue(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	must(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// Replication metrics land on the node's registerer, and a reopened node
// can register them again.
func TestReplicationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newReplCluster(t, 2, func(i int, o *Options) {
		if i == 0 {
			o.Registerer = reg
		}
	})
	must(t, c.nodes[1].Put("m", 1))
	must(t, c.nodes[1].WaitSynced(context.Background()))
	mfs, err := reg.Gather()
	must(t, err)
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{
		"shoal_gossip_members", "shoal_gossip_sent_bytes_total", "shoal_gossip_received_bytes_total",
		"shoal_gossip_queue_bytes", "shoal_gossip_queue_dropped_total", "shoal_gossip_rejected_total",
		"shoal_repl_records_received_total", "shoal_repl_propagation_delay_seconds", "shoal_repl_own_records_pushed_back_total",
		"shoal_node_remote_records_total",
	} {
		if !have[name] {
			t.Errorf("metric %s missing", name)
		}
	}
	must(t, c.nodes[0].Close())
	c.nodes[0] = c.open(0)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// TestSetKeysRotates: a cluster rotates its key with SetKeys in three
// rounds and keeps replicating; SetKeys refuses no keys, and an offline node.
func TestSetKeysRotates(t *testing.T) {
	oldKey, newKey := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	c := newReplCluster(t, 2, func(i int, o *Options) { o.Gossip.SecretKeys = [][]byte{oldKey} })
	for _, round := range [][][]byte{{oldKey, newKey}, {newKey, oldKey}, {newKey}} {
		for _, n := range c.nodes {
			if err := n.SetKeys(round); err != nil {
				t.Fatal(err)
			}
		}
	}
	key := "after-rotation"
	if err := c.nodes[0].Put(key, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the write replicates under the new key", func() bool {
		_, err := c.nodes[1].Get(key)
		return err == nil
	})
	if err := c.nodes[0].SetKeys(nil); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("SetKeys(nil) = %v", err)
	}
	offline, _ := openTest(t, nil)
	if err := offline.SetKeys([][]byte{newKey}); !errors.Is(err, ErrOffline) {
		t.Fatalf("SetKeys offline = %v", err)
	}
}

// TestPeerDigestNeverGoesBack: a peer's digests come on two streams in no
// common order; an older one (here: delivered by hand after a newer one)
// does not take back the writes a newer one acknowledged, so sync status
// never regresses after WaitSynced.
func TestPeerDigestNeverGoesBack(t *testing.T) {
	c := newReplCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	must(t, a.Put("k", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must(t, a.WaitSynced(ctx))
	r := a.repl.Load()
	var peer gossip.Peer
	for _, m := range r.gossip().Members() {
		if !m.Self {
			peer = m.Peer
		}
	}
	bID, err := crdt.ParseReplicaID(b.ReplicaID())
	must(t, err)
	old, err := encodeDigest(&syncDigest{V: digestVersion, Replica: bID, Applied: &crdt.Context{}})
	must(t, err)
	r.PeerDigest(peer, old)
	st, err := a.SyncStatus()
	must(t, err)
	if len(st.Peers) != 1 || !st.Peers[0].Synced || st.Peers[0].Acked != st.Local {
		t.Fatalf("an old digest took back what the peer acknowledged: %+v", st)
	}
}
