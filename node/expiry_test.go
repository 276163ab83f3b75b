package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is a wall clock the test moves by hand.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time                  { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration)         { c.ms.Add(d.Milliseconds()) }
func (c *fakeClock) After(d time.Duration) time.Time { return c.Now().Add(d).UTC() }

// A key of every type is visible with its expiry until the clock reaches
// it, then absent for every read; a write afterwards starts a fresh value.
func TestExpireVisibleThenGone(t *testing.T) {
	clk := newFakeClock()
	n, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: time.Hour})
	must(t, n.PutWith("reg", "v", WriteOptions{TTL: 10 * time.Second}))
	_, err := n.Incr("cnt", 5)
	must(t, err)
	must(t, n.SetAdd("set", "a", "b"))
	must(t, n.Update("doc", Patch{Set: map[string]any{"f": 1}}))
	want := clk.After(10 * time.Second)
	for _, k := range []string{"cnt", "set"} {
		must(t, n.Expire(k, 10*time.Second))
	}
	must(t, n.UpdateWith("doc", Patch{Incr: map[string]int64{"c": 1}}, WriteOptions{TTL: 10 * time.Second}))
	all := []string{"reg", "cnt", "set", "doc"}
	for _, k := range all {
		v, err := n.Get(k)
		must(t, err)
		if !v.Expires.Equal(want) {
			t.Fatalf("%s: Expires %v, want %v", k, v.Expires, want)
		}
	}
	clk.Advance(10*time.Second - time.Millisecond)
	if ks, _ := n.Keys("", 0); len(ks) != 4 {
		t.Fatalf("a millisecond before the expiry: %d keys", len(ks))
	}
	clk.Advance(time.Millisecond)
	for _, k := range all {
		if _, err := n.Get(k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after its expiry: %v", k, err)
		}
		if _, _, err := n.GetJSON(k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetJSON %s after its expiry: %v", k, err)
		}
		if _, _, err := n.AppendJSON(nil, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AppendJSON %s after its expiry: %v", k, err)
		}
	}
	if ks, _ := n.Keys("", 0); len(ks) != 0 {
		t.Fatalf("Keys after the expiry: %v", ks)
	}
	if _, err := n.Siblings("reg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Siblings after the expiry: %v", err)
	}
	if err := n.Expire("reg", time.Second); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Expire of an expired key: %v", err)
	}
	if err := n.Persist("reg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Persist of an expired key: %v", err)
	}
	if err := n.Delete("reg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of an expired key: %v", err)
	}
	// Fresh values: nothing of the expired ones shows, and no expiry.
	// Even a write of another type succeeds on an expired key.
	c, err := n.Incr("cnt", 1)
	must(t, err)
	if c != 1 {
		t.Fatalf("counter after its expiry counts from %d", c-1)
	}
	must(t, n.SetAdd("set", "c"))
	must(t, n.Put("doc", "now a register"))
	for k, want := range map[string]any{"cnt": int64(1), "set": []string{"c"}, "doc": "now a register"} {
		v, err := n.Get(k)
		must(t, err)
		if fmt.Sprint(v.Data) != fmt.Sprint(want) || !v.Expires.IsZero() {
			t.Fatalf("%s after a fresh write: %v (expires %v), want %v and no expiry", k, v.Data, v.Expires, want)
		}
	}
}

// A write without a TTL keeps the key's expiry; one with a TTL replaces
// it; Persist removes it.
func TestExpiryKeptReplacedPersisted(t *testing.T) {
	clk := newFakeClock()
	n, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: time.Hour})
	must(t, n.PutWith("k", 1, WriteOptions{TTL: time.Minute}))
	want := clk.After(time.Minute)
	clk.Advance(time.Second)
	must(t, n.Put("k", 2))
	expires := func() time.Time {
		t.Helper()
		v, err := n.Get("k")
		must(t, err)
		return v.Expires
	}
	if got := expires(); !got.Equal(want) {
		t.Fatalf("a Put without a TTL changed the expiry: %v, want %v", got, want)
	}
	must(t, n.PutWith("k", 3, WriteOptions{TTL: time.Hour}))
	if got, want := expires(), clk.After(time.Hour); !got.Equal(want) {
		t.Fatalf("a Put with a TTL set %v, want %v", got, want)
	}
	must(t, n.Expire("k", 2*time.Second)) // shortening is allowed
	if got, want := expires(), clk.After(2*time.Second); !got.Equal(want) {
		t.Fatalf("Expire set %v, want %v", got, want)
	}
	must(t, n.Persist("k"))
	if got := expires(); !got.IsZero() {
		t.Fatalf("after Persist: expires %v", got)
	}
	clk.Advance(24 * time.Hour)
	if _, err := n.Get("k"); err != nil {
		t.Fatalf("a persisted key expired: %v", err)
	}
}

// Bad TTLs are refused before anything is written, naming the limit.
func TestBadTTL(t *testing.T) {
	n, _ := openTest(t, &Options{Sync: SyncNever})
	must(t, n.Put("k", 1))
	for _, ttl := range []time.Duration{0, -time.Second, MaxTTL + time.Millisecond, -1 << 63} {
		err := n.Expire("k", ttl)
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), MaxTTL.String()) {
			t.Fatalf("Expire(%v): %v; want ErrInvalidValue naming %v", ttl, err, MaxTTL)
		}
		if ttl == 0 {
			continue // WriteOptions{} is a plain write
		}
		if err := n.PutWith("k", 2, WriteOptions{TTL: ttl}); !errors.Is(err, ErrInvalidValue) {
			t.Fatalf("PutWith(TTL %v): %v", ttl, err)
		}
		if err := n.UpdateWith("d", Patch{Incr: map[string]int64{"x": 1}}, WriteOptions{TTL: ttl}); !errors.Is(err, ErrInvalidValue) {
			t.Fatalf("UpdateWith(TTL %v): %v", ttl, err)
		}
		var b Batch
		b.Expire("k", ttl)
		if err := n.Commit(&b); !errors.Is(err, ErrInvalidValue) {
			t.Fatalf("Batch.Expire(%v): %v", ttl, err)
		}
	}
	must(t, n.Expire("k", MaxTTL))
	if err := n.Expire("nope", time.Second); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Expire of a missing key: %v", err)
	}
	if err := n.Persist("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Persist of a missing key: %v", err)
	}
	if _, err := n.Get("d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused UpdateWith wrote: %v", err)
	}
	if v, _ := n.Get("k"); v.Data != int64(1) {
		t.Fatalf("a refused PutWith wrote: %v", v.Data)
	}
}

// Batches carry expiries and persists atomically with the writes.
func TestBatchExpiry(t *testing.T) {
	clk := newFakeClock()
	n, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: time.Hour})
	var b Batch
	b.PutWith("a", 1, WriteOptions{TTL: time.Second})
	b.Incr("b", 1)
	b.Expire("b", 2*time.Second)
	b.UpdateWith("c", Patch{Set: map[string]any{"f": true}}, WriteOptions{TTL: time.Hour})
	b.Persist("c")
	must(t, n.Commit(&b))
	ops := b.Ops()
	if ops[0].TTL != time.Second || ops[2].Kind != "expire" || ops[2].TTL != 2*time.Second || ops[4].Kind != "persist" {
		t.Fatalf("Ops: %+v", ops)
	}
	for k, want := range map[string]time.Time{"a": clk.After(time.Second), "b": clk.After(2 * time.Second), "c": {}} {
		v, err := n.Get(k)
		must(t, err)
		if !v.Expires.Equal(want) {
			t.Fatalf("%s expires %v, want %v", k, v.Expires, want)
		}
	}
	var bad Batch
	bad.Put("x", 1)
	bad.Expire("missing", time.Second)
	if err := n.Commit(&bad); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch with an Expire of a missing key: %v", err)
	}
	if _, err := n.Get("x"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a failed batch wrote part of itself")
	}
}

// Expiries survive a restart, from the WAL and from a snapshot.
func TestExpiryRestart(t *testing.T) {
	clk := newFakeClock()
	opts := &Options{Now: clk.Now, SweepInterval: time.Hour, SnapshotEveryOps: -1}
	dir := t.TempDir()
	n := openAt(t, dir, opts)
	must(t, n.PutWith("snap", "s", WriteOptions{TTL: time.Hour}))
	must(t, n.SetAdd("snapset", "m"))
	must(t, n.Expire("snapset", 2*time.Hour))
	must(t, n.Snapshot())
	must(t, n.PutWith("wal", "w", WriteOptions{TTL: 3 * time.Hour}))
	must(t, n.PutWith("persisted", 1, WriteOptions{TTL: time.Hour}))
	must(t, n.Persist("persisted"))
	must(t, n.PutWith("short", 1, WriteOptions{TTL: time.Minute}))
	want := map[string]time.Time{
		"snap": clk.After(time.Hour), "snapset": clk.After(2 * time.Hour), "wal": clk.After(3 * time.Hour),
		"persisted": {}, "short": clk.After(time.Minute),
	}
	must(t, n.Close())
	for round := range 2 {
		n = openAt(t, dir, opts)
		for k, w := range want {
			v, err := n.Get(k)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, k, err)
			}
			if !v.Expires.Equal(w) {
				t.Fatalf("round %d: %s expires %v after a restart, want %v", round, k, v.Expires, w)
			}
		}
		must(t, n.Snapshot()) // the second round loads everything from a snapshot
		must(t, n.Close())
	}
	clk.Advance(time.Minute)
	n = openAt(t, dir, opts)
	if _, err := n.Get("short"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an expired key after a restart: %v", err)
	}
	if _, err := n.Get("snap"); err != nil {
		t.Fatal(err)
	}
}

// The watch stream reports an expiry as an event of kind expired, and the
// metric counts it.
func TestWatchExpired(t *testing.T) {
	clk := newFakeClock()
	reg := prometheus.NewRegistry()
	n, _ := openTest(t, &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: 5 * time.Millisecond, Registerer: reg})
	if got := gatherCounter(t, reg, "shoal_node_keys_expired_total"); got != 0 {
		t.Fatalf("expired metric at start: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.Subscribe(ctx, "w/")
	must(t, err)
	defer s.Close()
	must(t, n.PutWith("w/a", 1, WriteOptions{TTL: time.Second}))
	must(t, n.PutWith("other", 1, WriteOptions{TTL: time.Second}))
	ev, err := s.Next(ctx)
	must(t, err)
	if ev.Kind != EventChange || ev.Key != "w/a" {
		t.Fatalf("first event: %+v", ev)
	}
	clk.Advance(time.Second)
	ev, err = s.Next(ctx)
	must(t, err)
	if ev.Kind != EventExpired || ev.Key != "w/a" || !ev.Deleted || ev.Data != nil {
		t.Fatalf("after the expiry: %+v", ev)
	}
	// No record made it: its Offset is the last record's, so a resume at
	// Offset+1 misses nothing.
	if last := n.Status().NextOffset - 1; ev.Offset != last {
		t.Fatalf("expired event at offset %d, want the last record's %d", ev.Offset, last)
	}
	// A subscription that caught up to the end still gets expiries, though
	// their offset is below where its live events start.
	must(t, n.PutWith("r/a", 1, WriteOptions{TTL: time.Second}))
	r, err := n.SubscribeFrom(ctx, "r/", n.Status().NextOffset)
	must(t, err)
	defer r.Close()
	if ev, err := r.Next(ctx); err != nil || ev.Kind != EventSynced {
		t.Fatalf("resumed subscription: %+v %v", ev, err)
	}
	clk.Advance(time.Second)
	if ev, err := r.Next(ctx); err != nil || ev.Kind != EventExpired || ev.Key != "r/a" {
		t.Fatalf("resumed subscription after the expiry: %+v %v", ev, err)
	}
	eventually(t, "both expiries counted", func() bool {
		return gatherCounter(t, reg, "shoal_node_keys_expired_total") == 3
	})
}

func gatherCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, err := testutil.GatherAndCount(reg, name)
	must(t, err)
	if v == 0 {
		t.Fatalf("metric %s not present", name)
	}
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// The sweep reports and reclaims at most sweepLimit keys per step (fewer
// once the step has held the lock for sweepBudget), goes on
// by itself while there are more, and reclaims only MaxClockDrift after
// the expiry; reclaimed keys leave memory and the next snapshot.
func TestSweepBoundedAndReclaims(t *testing.T) {
	clk := newFakeClock()
	drift := 5 * time.Second
	const keys = 2*sweepLimit + 100
	opts := &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: time.Hour, MaxClockDrift: drift, SnapshotEveryOps: -1}
	dir := t.TempDir()
	n := openAt(t, dir, opts)
	var b Batch
	for i := range keys {
		b.PutWith(fmt.Sprintf("k%05d", i), i, WriteOptions{TTL: time.Second})
	}
	must(t, n.Commit(&b))
	must(t, n.Put("stays", 1))
	clk.Advance(time.Second)
	// The loop never ticks (an hour): this step is the first, and bounded;
	// it asks the loop for the next ones.
	if expired, reclaimed := n.sweepStep(); expired < sweepChunk || expired > sweepLimit || reclaimed != 0 {
		t.Fatalf("first step: %d expired, %d reclaimed; want %d to %d, 0", expired, reclaimed, sweepChunk, sweepLimit)
	}
	eventually(t, "every key reported", func() bool {
		w, e := n.expiring()
		return w == 0 && e == keys
	})
	if st := n.Status(); st.Keys != keys+1 {
		t.Fatalf("reclaimed before the drift passed: %d keys", st.Keys)
	}
	clk.Advance(drift)
	n.sweepStep()
	eventually(t, "every key reclaimed", func() bool { return n.Status().Keys == 1 })
	must(t, n.Snapshot())
	must(t, n.Close())
	n = openAt(t, dir, opts)
	if st := n.Status(); st.Keys != 1 {
		t.Fatalf("after a restart from the snapshot: %d keys", st.Keys)
	}
	ks, err := n.Keys("", 0)
	must(t, err)
	if !slices.Equal(ks, []KeyInfo{{Key: "stays", Type: TypeRegister}}) {
		t.Fatalf("keys: %v", ks)
	}
}

// While writes arrive, a young backlog is swept gently (a few steps a
// second, whatever the step's length), an old one at up to a quarter of
// the applier.
func TestSweepPause(t *testing.T) {
	step := 40 * time.Microsecond
	if got := sweepPause(step, time.Second); got != sweepGentleRest {
		t.Errorf("young backlog: rest %v, want %v", got, sweepGentleRest)
	}
	if got := sweepPause(10*time.Millisecond, time.Second); got != sweepRest*10*time.Millisecond {
		t.Errorf("young backlog, long step: rest %v, want %v", got, sweepRest*10*time.Millisecond)
	}
	if got := sweepPause(step, sweepCatchUp); got != sweepRest*step {
		t.Errorf("backlog %v old: rest %v, want %v", sweepCatchUp, got, sweepRest*step)
	}
}

// While writes wait, a step on a young backlog is put off; an old
// backlog is swept anyway.
func TestSweepYieldsToWritesWhileYoung(t *testing.T) {
	clk := newFakeClock()
	n := openAt(t, t.TempDir(), &Options{Sync: SyncNever, Now: clk.Now, SweepInterval: time.Hour, SnapshotEveryOps: -1})
	defer n.Close()
	var b Batch
	for i := range 100 {
		b.PutWith(fmt.Sprintf("k%03d", i), i, WriteOptions{TTL: time.Second})
	}
	must(t, n.Commit(&b))
	clk.Advance(2 * time.Second)
	n.loopWaits.Store(true) // as if the loop waited for the state lock
	defer n.loopWaits.Store(false)
	if expired, reclaimed := n.sweepStep(); expired != 0 || reclaimed != 0 {
		t.Fatalf("young backlog, writes waiting: the step ran (%d expired, %d reclaimed)", expired, reclaimed)
	}
	clk.Advance(sweepCatchUp)
	if expired, _ := n.sweepStep(); expired == 0 {
		t.Fatalf("backlog older than %v, writes waiting: the step did nothing", sweepCatchUp)
	}
}

// An expiry set on one replica reaches the others, and so does a Persist.
func TestExpiryReplicates(t *testing.T) {
	c := newReplCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	must(t, a.PutWith("k", "v", WriteOptions{TTL: time.Hour}))
	av, err := a.Get("k")
	must(t, err)
	replEventually(t, 20*time.Second, func() bool {
		v, err := b.Get("k")
		return err == nil && v.Expires.Equal(av.Expires)
	}, "the expiry did not reach n1")
	must(t, b.Persist("k"))
	replEventually(t, 20*time.Second, func() bool {
		v, err := a.Get("k")
		return err == nil && v.Expires.IsZero()
	}, "the persist did not reach n0")
	must(t, a.PutWith("short", 1, WriteOptions{TTL: 50 * time.Millisecond}))
	replEventually(t, 20*time.Second, func() bool {
		_, errA := a.Get("short")
		_, errB := b.Get("short")
		return errors.Is(errA, ErrNotFound) && errors.Is(errB, ErrNotFound)
	}, "a short TTL did not expire on both")
	c.waitConverged(20 * time.Second)
}
