package node

import (
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoaldb/shoal/wal"
)

var errInjected = errors.New("injected fsync failure")

// faultFS is the real file system with an fsync failure that can be armed.
type faultFS struct {
	wal.OSFS
	failSync atomic.Bool
}

type faultFile struct {
	wal.File
	fs *faultFS
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return file, err
	}
	return faultFile{file, f}, nil
}

func (f faultFile) Sync() error {
	if f.fs.failSync.Load() {
		return errInjected
	}
	return f.File.Sync()
}

func TestReadOnlyAfterFsyncFailure(t *testing.T) {
	fs := &faultFS{}
	reg := prometheus.NewRegistry()
	n, dir := openTest(t, &Options{WALFS: fs, Registerer: reg})
	must(t, n.Put("a", 1))
	fs.failSync.Store(true)
	err := n.Put("b", 2)
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, errInjected) {
		t.Fatalf("Put with a failing fsync = %v, want ErrReadOnly wrapping the cause", err)
	}
	fs.failSync.Store(false) // the disk "recovers": the node stays read-only
	for _, err := range []error{n.Put("c", 3), n.SetAdd("s", "m"), n.Delete("a"), n.Snapshot()} {
		if !errors.Is(err, ErrReadOnly) {
			t.Fatalf("write after the failure = %v, want ErrReadOnly", err)
		}
	}
	if _, err := n.Get("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the failed write is visible: %v", err)
	}
	if v, err := n.Get("a"); err != nil || v.Data != int64(1) {
		t.Fatalf("reads stopped working: %v %v", v, err)
	}
	if err := n.Err(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Err() = %v", err)
	}
	if st := n.Status(); !st.ReadOnly || !strings.Contains(st.Error, "injected") {
		t.Fatalf("Status = %+v", st)
	}
	if got := testutil.ToFloat64(n.m.readOnly); got != 1 {
		t.Fatalf("read_only metric = %v", got)
	}
	n.Close()
	n = openAt(t, dir, nil)
	if v, err := n.Get("a"); err != nil || v.Data != int64(1) {
		t.Fatalf("acknowledged write lost after reopening: %v %v", v, err)
	}
	must(t, n.Put("c", 3))
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, dir := openTest(t, &Options{Registerer: reg})
	must(t, n.Put("a", 1))
	_, err := n.Incr("c", 1)
	must(t, err)
	mfs, err := reg.Gather()
	must(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"shoal_node_ops_total", "shoal_node_wal_bytes_total", "shoal_node_wal_append_seconds", "shoal_node_wal_fsync_seconds",
		"shoal_node_commit_batch_requests", "shoal_node_keys", "shoal_node_subscribers", "shoal_node_read_only",
		"shoal_node_replay_seconds", "shoal_node_write_queue_depth"} {
		if !names[want] {
			t.Errorf("metric %s missing", want)
		}
	}
	if got := testutil.ToFloat64(n.m.ops.WithLabelValues("put")); got != 1 {
		t.Fatalf("put counter = %v", got)
	}
	if got := testutil.ToFloat64(n.m.keys); got != 2 {
		t.Fatalf("keys gauge = %v", got)
	}
	// The same registry cannot take a second node without a label...
	if _, err := Open(t.TempDir(), &Options{Registerer: reg}); err == nil {
		t.Fatal("two nodes registered the same metrics")
	}
	if got := testutil.CollectAndCount(reg, "shoal_node_keys"); got != 1 {
		t.Fatalf("the refused Open removed the first node's metrics (%d left)", got)
	}
	// ...and Close unregisters, so reopening works.
	must(t, n.Close())
	openAt(t, dir, &Options{Registerer: reg})
}
