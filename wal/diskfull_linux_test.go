//go:build linux

package wal

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// fsizeChild runs in a child process whose file size limit (RLIMIT_FSIZE)
// plays a full disk: writes and fallocate beyond it fail with EFBIG, and
// any store into an unbacked part of the index map would be a SIGBUS.
func fsizeChild() {
	dir := os.Getenv(fsizeChildEnv)
	lim := syscall.Rlimit{Cur: 256 << 10, Max: 256 << 10}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	l, err := Open(dir, &Options{SegmentBytes: 8 << 20, Sync: SyncNever})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var last uint64
	for i := 0; i < 1_000_000; i++ {
		// Empty records: 8-byte frames, so the index (8 bytes a record)
		// grows as fast as the store.
		if last, err = l.Append(nil); err != nil {
			break
		}
		if i%1000 == 0 {
			if err = l.Sync(); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = l.Sync()
	}
	fmt.Printf("stopped after %d: %v\n", last, err)
	l.Close()
	os.Exit(0)
}

// TestFileSizeLimitIsAnError: running out of space (here: the file size
// limit) ends with a clear sticky error, never a crash, and the log reopens
// with what was synced.
func TestFileSizeLimitIsAnError(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fsizeChildEnv+"="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child died (%v): %s", err, out.String())
	}
	if !strings.Contains(out.String(), "file too large") {
		t.Fatalf("child did not report a clear error: %s", out.String())
	}
	l, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer l.Close()
	if l.NextOffset() < 1000 {
		t.Fatalf("reopened with %d records", l.NextOffset())
	}
	if err := l.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	t.Logf("child: %s; reopened with %d records", strings.TrimSpace(out.String()), l.NextOffset())
}
