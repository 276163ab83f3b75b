package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fillForBackup writes keys of every type, a deleted key and a batch.
func fillForBackup(t *testing.T, n *Node) {
	t.Helper()
	for i := range 50 {
		must(t, n.Put(fmt.Sprintf("reg/%02d", i), map[string]any{"i": i, "s": strings.Repeat("x", i)}))
	}
	_, err := n.Incr("counter", 41)
	must(t, err)
	must(t, n.SetAdd("set", "a", "b", "c"))
	must(t, n.Update("doc", Patch{Set: map[string]any{"title": "t"}, Incr: map[string]int64{"votes": 3}, Add: map[string][]string{"tags": {"x"}}}))
	must(t, n.Put("gone", 1))
	must(t, n.Delete("gone"))
	var b Batch
	b.Put("batch/a", 1)
	b.Put("batch/b", 2)
	must(t, n.Commit(&b))
}

func snapshotValues(t *testing.T, n *Node) map[string]Value {
	t.Helper()
	keys, err := n.Keys("", 0)
	must(t, err)
	out := map[string]Value{}
	for _, k := range keys {
		v, err := n.Get(k.Key)
		must(t, err)
		out[k.Key] = v
	}
	return out
}

func TestBackupRestore(t *testing.T) {
	a, _ := openTest(t, nil)
	fillForBackup(t, a)
	want := snapshotValues(t, a)
	wantDigest := a.Digest()
	var buf bytes.Buffer
	info, err := a.Backup(context.Background(), &buf)
	must(t, err)
	if info.Replica != a.ReplicaID() || info.Keys != len(want) || info.Bytes != int64(buf.Len()) {
		t.Fatalf("info %+v, %d keys, %d bytes", info, len(want), buf.Len())
	}
	// The source goes on; the backup holds the state as it was.
	must(t, a.Put("after", 1))
	if ci, err := CheckBackup(bytes.NewReader(buf.Bytes())); err != nil || ci.Keys != info.Keys {
		t.Fatalf("CheckBackup: %+v %v", ci, err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	rep, err := Restore(bytes.NewReader(buf.Bytes()), dir, nil)
	must(t, err)
	if rep.Replica == "" || rep.Replica == a.ReplicaID() || rep.Backup.Replica != a.ReplicaID() {
		t.Fatalf("report %+v", rep)
	}
	b := openAt(t, dir, nil)
	if b.ReplicaID() != rep.Replica {
		t.Fatalf("opened as %s, report says %s", b.ReplicaID(), rep.Replica)
	}
	if got := snapshotValues(t, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored values differ:\n got %v\nwant %v", got, want)
	}
	if b.Digest() != wantDigest {
		t.Fatalf("restored digest %s, source had %s", b.Digest(), wantDigest)
	}
	if _, err := b.Get("after"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a write after the backup restored: %v", err)
	}
	// It takes writes of its own, and keeps them across a restart.
	must(t, b.Put("restored/new", 1))
	_, err = b.Incr("counter", 1)
	must(t, err)
	must(t, b.Close())
	b = openAt(t, dir, nil)
	if v, err := b.Get("counter"); err != nil || v.Data != int64(42) {
		t.Fatalf("counter after restore, write and restart: %+v %v", v, err)
	}
	if _, err := b.Get("restored/new"); err != nil {
		t.Fatal(err)
	}
}

func TestBackupOfEmptyNode(t *testing.T) {
	a, _ := openTest(t, nil)
	var buf bytes.Buffer
	_, err := a.Backup(context.Background(), &buf)
	must(t, err)
	dir := filepath.Join(t.TempDir(), "r")
	_, err = Restore(&buf, dir, nil)
	must(t, err)
	b := openAt(t, dir, nil)
	must(t, b.Put("k", 1))
}

// A truncated, damaged or foreign backup is refused with what is wrong,
// and nothing is written.
func TestRestoreRefusesBadBackups(t *testing.T) {
	a, _ := openTest(t, nil)
	fillForBackup(t, a)
	var buf bytes.Buffer
	_, err := a.Backup(context.Background(), &buf)
	must(t, err)
	good := buf.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"empty":           {nil, "not a shoal backup"},
		"foreign":         {[]byte("PK\x03\x04 a zip file, not a backup"), "not a shoal backup"},
		"a snapshot file": {append([]byte("SHOALSNP"), good[8:]...), "not a shoal backup"},
		"header only":     {good[:16], "truncated"},
		"cut in the body": {good[:len(good)/2], "truncated"},
		"cut before end":  {good[:len(good)-1], "truncated"},
		"newer version":   {append(append([]byte("SHOALBAK"), 2, 0), good[10:]...), "version 2"},
		"damaged body":    {flip(len(good) / 2), "checksum"},
		"damaged length":  {flip(len(good) - 16), "trailer says"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := CheckBackup(bytes.NewReader(c.b)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckBackup: %v, want %q", err, c.want)
			}
			dir := filepath.Join(t.TempDir(), "r")
			if _, err := Restore(bytes.NewReader(c.b), dir, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Restore: %v, want %q", err, c.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Restore of a bad backup wrote %s: %v", dir, err)
			}
		})
	}
	// Into a directory that holds something: refused, nothing changed.
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644))
	if _, err := Restore(bytes.NewReader(good), dir, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("restore changed a non-empty directory: %v", ents)
	}
}

// A backup copies the state a chunk at a time while writes go on; it
// holds the state as of its last chunk, writes made between the chunks
// included.
func TestBackupWhileWriting(t *testing.T) {
	a, _ := openTest(t, nil)
	fillForBackup(t, a)
	defer func(c int) { copyChunkKeys, copyPaused = c, nil }(copyChunkKeys)
	copyChunkKeys = 4
	pauses := 0
	copyPaused = func() {
		pauses++
		must(t, a.Put(fmt.Sprint("during/", pauses), pauses))
		_, err := a.Incr("counter", 1)
		must(t, err)
	}
	var buf bytes.Buffer
	_, err := a.Backup(context.Background(), &buf)
	copyPaused = nil
	must(t, err)
	if pauses < 3 {
		t.Fatalf("the copy paused %d times", pauses)
	}
	want, wantDigest := snapshotValues(t, a), a.Digest()
	dir := filepath.Join(t.TempDir(), "restored")
	_, err = Restore(bytes.NewReader(buf.Bytes()), dir, nil)
	must(t, err)
	b := openAt(t, dir, nil)
	if got := snapshotValues(t, b); !reflect.DeepEqual(got, want) || b.Digest() != wantDigest {
		t.Fatalf("restored values differ from the source's when the copy ended:\n got %v\nwant %v", got, want)
	}
}
