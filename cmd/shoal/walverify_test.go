package main

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoaldb/shoal/node"
)

// writeDataDir fills a data directory through an embedded node and closes it.
func writeDataDir(t *testing.T, opts *node.Options, n int) string {
	t.Helper()
	dir := t.TempDir()
	db, err := node.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := db.Put(fmt.Sprintf("k%03d", i), strings.Repeat("v", i%40)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func storesOf(t *testing.T, dir string) []string {
	t.Helper()
	s, _ := filepath.Glob(filepath.Join(dir, dataWALDir, "*.log"))
	slices.Sort(s)
	if len(s) == 0 {
		t.Fatalf("no segments in %s", dir)
	}
	return s
}

// TestWALVerifyExitCodes: verify exits 1 on every kind of damage the node
// refuses (corruption followed by intact records in the last segment, a
// wrong index entry anywhere, a snapshot beyond the WAL's end) and 0 with
// a warning for a torn tail.
func TestWALVerifyExitCodes(t *testing.T) {
	oneSeg := writeDataDir(t, nil, 100)
	manySegs := writeDataDir(t, &node.Options{SegmentBytes: 1 << 10}, 100)
	snaps := writeDataDir(t, &node.Options{SegmentBytes: 1 << 10, SnapshotEveryOps: 30}, 100)
	cases := []struct {
		name   string
		from   string
		damage func(t *testing.T, dir string)
		code   int
		want   string
	}{
		{"clean", oneSeg, func(*testing.T, string) {}, 0, "ok (0 warning(s))"},
		{"torn tail", oneSeg, func(t *testing.T, dir string) {
			s := storesOf(t, dir)
			fi, _ := os.Stat(s[len(s)-1])
			os.Truncate(s[len(s)-1], fi.Size()-3)
		}, 0, "torn tail"},
		{"flip in the last segment, intact records after", oneSeg, func(t *testing.T, dir string) {
			s := storesOf(t, dir)
			b, _ := os.ReadFile(s[0])
			b[len(b)/2] ^= 4
			os.WriteFile(s[0], b, 0o644)
		}, 1, "followed by intact record"},
		{"wrong middle entry of a sealed index", manySegs, func(t *testing.T, dir string) {
			s := storesOf(t, dir)
			idx := strings.TrimSuffix(s[1], ".log") + ".index"
			b, _ := os.ReadFile(idx)
			k := len(b) / 8 / 2
			binary.LittleEndian.PutUint32(b[k*8+4:], binary.LittleEndian.Uint32(b[k*8+4:])+3)
			os.WriteFile(idx, b, 0o644)
		}, 1, "index wrong"},
		{"snapshot beyond the WAL", snaps, func(t *testing.T, dir string) {
			sn, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.snap"))
			slices.Sort(sn)
			var newest uint64
			fmt.Sscanf(filepath.Base(sn[len(sn)-1]), "%d.snap", &newest)
			// Lose the last segments, down to one whose base is at or
			// below the snapshot's offset: the WAL then ends before it.
			for s := storesOf(t, dir); len(s) > 1; s = s[:len(s)-1] {
				last := s[len(s)-1]
				var base uint64
				fmt.Sscanf(filepath.Base(last), "%d.log", &base)
				os.Remove(last)
				os.Remove(strings.TrimSuffix(last, ".log") + ".index")
				if base <= newest {
					break
				}
			}
		}, 1, "snapshot covers WAL records"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t, c.from)
			c.damage(t, dir)
			r := runShoal(t, nil, "", "wal", "verify", dir)
			if r.code != c.code || !strings.Contains(r.out, c.want) {
				t.Fatalf("verify: exit %d (want %d), output lacks %q:\n%s%s", r.code, c.code, c.want, r.out, r.err)
			}
		})
	}
}

// TestWALRepairCommand: repair of a directory the node refuses, then of a
// healthy one.
func TestWALRepairCommand(t *testing.T) {
	dir := copyTree(t, writeDataDir(t, nil, 100))
	s := storesOf(t, dir)
	b, _ := os.ReadFile(s[0])
	b[len(b)/2] ^= 4
	os.WriteFile(s[0], b, 0o644)
	if _, err := node.Open(dir, nil); err == nil {
		t.Fatal("the node opened the damaged directory")
	}
	r := runShoal(t, nil, "", "wal", "repair", dir)
	if r.code != 0 || !strings.Contains(r.out, "set aside: ") || !strings.Contains(r.out, ".cut-") || !strings.Contains(r.out, "new replica ID") {
		t.Fatalf("repair: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := runShoal(t, nil, "", "wal", "verify", dir); r.code != 0 {
		t.Fatalf("verify after repair: exit %d\n%s", r.code, r.out)
	}
	db, err := node.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if r := runShoal(t, nil, "", "wal", "repair", dir); r.code != 0 || !strings.Contains(r.out, "nothing to repair") {
		t.Fatalf("repair of a healthy directory: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := runShoal(t, nil, "", "wal", "repair", t.TempDir()); r.code != 1 || !strings.Contains(r.err, "not a node's data directory") {
		t.Fatalf("repair of an empty directory: exit %d\n%s", r.code, r.err)
	}
}
