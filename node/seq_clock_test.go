package node

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// copyDataDir copies a closed node's data directory (an operator's backup).
func copyDataDir(t testing.TB, from, to string) {
	t.Helper()
	must(t, os.CopyFS(to, os.DirFS(from)))
}

// restoredNode builds the situation of an operator restoring an old backup:
// a node writes early/0..4, is backed up (closed, directory copied), then
// writes late/0..4 (its seqs 6..10 with the Put of "mid"), and is closed.
// It returns the backup's directory and the later records, which a peer
// would hold and hand back.
func restoredNode(t *testing.T) (backup string, later [][]byte) {
	t.Helper()
	dir := t.TempDir()
	n := openAt(t, dir, nil)
	for i := range 5 {
		must(t, n.Put(fmt.Sprintf("early/%d", i), i))
	}
	must(t, n.Close())
	backup = t.TempDir()
	copyDataDir(t, dir, backup)
	n = openAt(t, dir, nil)
	from := n.wal.NextOffset()
	for i := range 5 {
		must(t, n.Put(fmt.Sprintf("late/%d", i), i))
	}
	for off := from; off < n.wal.NextOffset(); off++ {
		rec, err := n.wal.Read(off)
		must(t, err)
		later = append(later, rec)
	}
	must(t, n.Close())
	return backup, later
}

// checkFreshWrite checks that a write on a restored node that got its own
// later operations back is visible: its dot must come after them, or the
// state takes it for one it has seen and removed.
func checkFreshWrite(t *testing.T, n *Node) {
	t.Helper()
	for i := range 5 {
		if _, err := n.Get(fmt.Sprintf("late/%d", i)); err != nil {
			t.Fatalf("late/%d did not come back: %v", i, err)
		}
	}
	must(t, n.Put("fresh", "after restore"))
	v, err := n.Get("fresh")
	if err != nil || v.Data != "after restore" {
		t.Fatalf("a Put that returned nil after the node's own records came back: Get = %v, %v", v.Data, err)
	}
	if seq := n.ownSeq(); seq != 11 {
		t.Fatalf("own seq after the fresh write = %d, want 11", seq)
	}
}

// A node restored from an old copy of its directory receives its own later
// records back from a peer: its next write takes a seq above them.
func TestOwnRecordsFromPeerRaiseSeq(t *testing.T) {
	backup, later := restoredNode(t)
	n := openAt(t, backup, nil)
	for _, rec := range later {
		must(t, n.applyRemote(rec, "peer"))
	}
	checkFreshWrite(t, n)
}

// The same when the later operations come back inside a state transfer
// (the peer's WAL no longer held the records).
func TestOwnDotsInStateTransferRaiseSeq(t *testing.T) {
	backup, later := restoredNode(t)
	peer, _ := openTest(t, nil)
	for _, rec := range later {
		must(t, peer.applyRemote(rec, "restored"))
	}
	n := openAt(t, backup, nil)
	for _, rec := range stateRecords(t, peer) {
		must(t, n.applyRemote(rec, "peer"))
	}
	checkFreshWrite(t, n)
}

// A remote timestamp ahead of the local clock (within MaxClockDrift) is
// taken into the hybrid logical clock: the next local operation sorts
// after it. Here the peer's write of k is concurrent with the local one
// (it arrives after it), so only the clock decides which is visible.
func TestRemoteTimestampAdvancesClock(t *testing.T) {
	base := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	local, _ := openTest(t, &Options{Now: func() time.Time { return base }})
	peer, _ := openTest(t, &Options{Now: func() time.Time { return base.Add(30 * time.Second) }})
	rec := record(peer)
	must(t, peer.Put("k", "peer"))
	must(t, peer.Put("other", 1))
	cs := rec.take()
	if len(cs) != 2 {
		t.Fatalf("%d records from the peer", len(cs))
	}
	must(t, local.applyRemote(cs[1].Record, "peer")) // the peer's later write, to another key
	must(t, local.Put("k", "local"))
	must(t, local.applyRemote(cs[0].Record, "peer")) // concurrent with the local write of k
	sib, err := local.Siblings("k")
	must(t, err)
	if len(sib) != 2 {
		t.Fatalf("siblings of k: %+v", sib)
	}
	if sib[0].Data != "local" || sib[0].Time.Before(sib[1].Time) { // Time is in milliseconds; the logical part orders within one
		t.Fatalf("the local write after the peer's timestamp does not sort last: %+v", sib)
	}
	if !sib[1].Time.Equal(base.Add(30 * time.Second)) {
		t.Fatalf("peer's write at %v, want %v", sib[1].Time, base.Add(30*time.Second))
	}
	v, err := local.Get("k")
	if err != nil || v.Data != "local" {
		t.Fatalf("Get(k) = %v, %v; want the local write", v.Data, err)
	}
}

// stateRecords returns the records of a state transfer from n of the given
// key ranges (default: the whole state), as serve would send them.
func stateRecords(t testing.TB, n *Node, ranges ...keyRange) [][]byte {
	t.Helper()
	if len(ranges) == 0 {
		ranges = wholeState
	}
	var recs [][]byte
	_, _, _, err := n.writeState(context.Background(), func(b []byte) error {
		recs = append(recs, b)
		return nil
	}, ranges, nil, nil, nil)
	must(t, err)
	return recs
}
