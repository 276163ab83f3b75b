package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func selfAddr(a *App) string {
	for _, m := range a.db.Members() {
		if m.Self {
			return m.Addr
		}
	}
	return ""
}

// TestOfflineThenSync: two devices take notes offline, then go online and
// end with the same notes; concurrent changes to one note merge.
func TestOfflineThenSync(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	var out bytes.Buffer

	// Offline: both devices write, including to a note they share.
	a, err := Open(ctx, dirA, "", nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := a.Add("Groceries", "milk")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add("Call mom", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Device B starts as a copy of A's first note (as if synced earlier)...
	b, err := Open(ctx, dirB, "127.0.0.1:0", nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	a, err = Open(ctx, dirA, "127.0.0.1:0", []string{selfAddr(b)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitSameDigest(t, a, b)
	_ = a.Close()
	_ = b.Close()

	// ...then both edit offline, concurrently.
	a, _ = Open(ctx, dirA, "", nil, &out)
	b, _ = Open(ctx, dirB, "", nil, &out)
	if err := a.Tag(shared, false, "errands"); err != nil {
		t.Fatal(err)
	}
	if err := b.Tag(shared, false, "home"); err != nil {
		t.Fatal(err)
	}
	if err := b.Done(shared); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add("Book flights", ""); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_ = b.Close()

	// Online again: they converge to the merge of both.
	b, err = Open(ctx, dirB, "127.0.0.1:0", nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err = Open(ctx, dirA, "127.0.0.1:0", []string{selfAddr(b)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Sync(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitSameDigest(t, a, b)
	notes, err := b.Notes()
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, n := range notes {
		titles = append(titles, n.Title)
		if n.ID == shared && (!n.Done || strings.Join(n.Tags, ",") != "errands,home" || n.Edits != 1) {
			t.Fatalf("merged note: %+v", n)
		}
	}
	if got := strings.Join(titles, ","); got != "Book flights,Call mom,Groceries" {
		t.Fatalf("titles on b: %s", got)
	}
	out.Reset()
	if err := a.List(); err != nil || !strings.Contains(out.String(), "[x] "+shared+"  Groceries  #errands #home") {
		t.Fatalf("list on a: %q %v", out.String(), err)
	}
}

func waitSameDigest(t *testing.T, a, b *App) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for a.db.Digest() != b.db.Digest() {
		if time.Now().After(deadline) {
			t.Fatal("replicas did not converge")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	ctx := context.Background()
	run1 := func(args ...string) string {
		t.Helper()
		out.Reset()
		if err := run(ctx, append([]string{"-data", dir}, args...), &out); err != nil {
			t.Fatalf("notes %q: %v", args, err)
		}
		return out.String()
	}
	id := strings.TrimSpace(run1("add", "Write docs", "the README"))
	run1("tag", id, "work", "docs")
	run1("untag", id, "docs")
	run1("edit", id, "Write the docs")
	run1("done", id)
	if got := run1("show", id); !strings.Contains(got, "[x] "+id+"  Write the docs  #work") || !strings.Contains(got, "the README") || !strings.Contains(got, "(2 edit(s))") {
		t.Fatalf("show: %q", got)
	}
	run1("rm", id)
	if got := run1("list"); got != "(no notes)\n" {
		t.Fatalf("list after rm: %q", got)
	}
	if err := run(ctx, []string{"-data", dir, "tag", "nope", "x"}, &out); err == nil {
		t.Fatal("tagging a missing note: want an error")
	}
}
