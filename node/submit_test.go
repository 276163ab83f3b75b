package node

import (
	"errors"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// groups is how many group commits the node has made.
func groups(t *testing.T, n *Node) uint64 {
	t.Helper()
	var m dto.Metric
	if err := n.m.batchOps.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestSubmit(t *testing.T) {
	n, _ := openTest(t, nil)
	// Queued together, in order: later batches see earlier ones, a failing
	// one does not stop the rest, and they share group commits.
	const count = 200
	before := groups(t, n)
	var bs [count]Batch
	ps := make([]*Pending, count)
	for i := range bs {
		switch {
		case i == 0:
			bs[i].Put("reg", "x")
		case i == 1:
			bs[i].Incr("reg", 1) // wrong type: the register came first
		default:
			bs[i].Incr("c", 1)
		}
		ps[i] = n.Submit(&bs[i])
	}
	for i, p := range ps {
		err := p.Wait()
		switch {
		case i == 1:
			if !errors.Is(err, ErrWrongType) {
				t.Fatalf("batch 1: %v, want ErrWrongType", err)
			}
			if _, ok := p.Counter(0); ok {
				t.Fatal("a failed batch reported a counter")
			}
		case err != nil:
			t.Fatalf("batch %d: %v", i, err)
		case i >= 2:
			if v, ok := p.Counter(0); !ok || v != int64(i-1) {
				t.Fatalf("batch %d: counter %d, %v; want %d", i, v, ok, i-1)
			}
		}
		if err2 := p.Wait(); !errors.Is(err2, err) && err2 != err {
			t.Fatalf("second Wait = %v, first %v", err2, err)
		}
	}
	if g := groups(t, n) - before; g >= count-1 {
		t.Fatalf("%d batches took %d group commits: queued together, they should share", count, g)
	}
	if v, _ := n.Get("c"); v.Data != int64(count-2) {
		t.Fatalf("counter = %v", v.Data)
	}

	// A batch's counters are the values after the whole batch; a
	// non-incr operation has none.
	var b Batch
	b.Incr("k", 2)
	b.Put("p", 1)
	b.Incr("k", 3)
	p := n.Submit(&b)
	if _, ok := p.Counter(0); ok {
		t.Fatal("Counter before Wait")
	}
	must(t, p.Wait())
	for i, want := range []int64{5, 0, 5} {
		v, ok := p.Counter(i)
		if ok != (i != 1) || v != want {
			t.Fatalf("Counter(%d) = %d, %v", i, v, ok)
		}
	}

	// Invalid and empty batches fail (or succeed) at once, as Commit.
	var bad Batch
	bad.Put("", 1)
	if err := n.Submit(&bad).Wait(); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("invalid batch: %v", err)
	}
	if err := n.Submit(&Batch{}).Wait(); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	n.Close()
	var late Batch
	late.Put("x", 1)
	if err := n.Submit(&late).Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestKeysAfter(t *testing.T) {
	n, _ := openTest(t, nil)
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1"} {
		must(t, n.Put(k, 1))
	}
	var got []string
	after := ""
	for {
		page, err := n.KeysAfter("a/", after, 2)
		must(t, err)
		if len(page) == 0 {
			break
		}
		for _, k := range page {
			got = append(got, k.Key)
		}
		after = page[len(page)-1].Key
	}
	if len(got) != 3 || got[0] != "a/1" || got[2] != "a/3" {
		t.Fatalf("walk = %v", got)
	}
}

// A peer's delivery hands the loop many records at once: they share group
// commits (one fsync for many), as local writes queued together do. The
// loop once picked at random between taking the next record and handing
// its group to a free committer, so a delivery of 100 records took ~48
// groups (an fsync every two records on every receiver).
func TestRemoteDeliveriesShareGroups(t *testing.T) {
	a, _ := openTest(t, &Options{Sync: SyncNever})
	rec := record(a)
	const deliveries, size = 50, 100
	for i := range deliveries * size {
		must(t, a.Put(fmt.Sprintf("k%06d", i), i))
	}
	raws, ops := peerRecords(t, rec.take())
	b, _ := openTest(t, nil)
	before := groups(t, b)
	for i := 0; i < len(raws); i += size {
		// Through the loop: an idle node commits a delivery inline, as
		// one group (TestRemoteDeliveryCommitsInline).
		must(t, b.commitQueued(remoteRequests(raws[i:i+size], ops[i:i+size], "a")))
	}
	g := groups(t, b) - before
	t.Logf("%d deliveries of %d records: %d group commits", deliveries, size, g)
	if g > deliveries*size/5 {
		t.Fatalf("%d deliveries of %d records took %d group commits: a delivery's records should share them", deliveries, size, g)
	}
	if st := b.Status(); st.Keys != deliveries*size {
		t.Fatalf("%d keys after the deliveries, want %d", st.Keys, deliveries*size)
	}
}
