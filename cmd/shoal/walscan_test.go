package main

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/shoaldb/shoal/wal"
)

// writeTestWAL writes n records (several Appends, several segments) with the
// wal package and returns them.
func writeTestWAL(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	l, err := wal.Open(dir, &wal.Options{SegmentBytes: 4 << 10, Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for i := 0; i < n; {
		var batch [][]byte
		for j := 0; j < 1+i%3 && i < n; j++ {
			batch = append(batch, bytes.Repeat([]byte(fmt.Sprintf("record-%d.", i)), 1+i%7))
			i++
		}
		if _, err := l.Append(batch...); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, batch...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func scanAll(t *testing.T, dir string) ([][]byte, []*storeScan) {
	t.Helper()
	segs, err := listWALSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	var scans []*storeScan
	for _, s := range segs {
		sc, err := scanStore(s.Store, s.Base, 0, s.Base, wal.MaxRecordLimit, func(off uint64, _ int64, rec []byte) error {
			if off != uint64(len(got)) {
				return fmt.Errorf("record offset %d, want %d", off, len(got))
			}
			got = append(got, bytes.Clone(rec))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		scans = append(scans, sc)
	}
	return got, scans
}

// TestScanStoreReadsWhatWALWrote checks the independent reader against logs
// written by package wal: same records, same offsets, indexes agree.
func TestScanStoreReadsWhatWALWrote(t *testing.T) {
	dir := t.TempDir()
	want := writeTestWAL(t, dir, 300)
	got, scans := scanAll(t, dir)
	if len(scans) < 3 {
		t.Fatalf("want several segments, got %d", len(scans))
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, wrote %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	segs, _ := listWALSegments(dir)
	for i, sc := range scans {
		if sc.Header != "" || sc.Problem != "" || sc.End != sc.Size {
			t.Fatalf("segment %d: %+v", sc.Base, sc)
		}
		if p := indexProblem(segs[i].Index, sc, i < len(scans)-1); p != "" {
			t.Fatalf("segment %d index: %s", sc.Base, p)
		}
	}
}

// TestScanStoreFindsDamage flips a payload byte in a sealed segment and
// cuts the tail of the last one.
func TestScanStoreFindsDamage(t *testing.T) {
	dir := t.TempDir()
	writeTestWAL(t, dir, 300)
	segs, _ := listWALSegments(dir)
	_, clean := scanAll(t, dir)

	// A flipped byte in the payload of the third record of segment 1.
	victim := segs[1]
	pos := clean[1].Positions[2]
	b, err := os.ReadFile(victim.Store)
	if err != nil {
		t.Fatal(err)
	}
	b[pos+walFrameHeaderSize+1] ^= 0x40
	if err := os.WriteFile(victim.Store, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := scanStore(victim.Store, victim.Base, 0, victim.Base, wal.MaxRecordLimit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Problem != "frame checksum mismatch" || sc.ProblemAt != pos || sc.ProblemRecord != victim.Base+2 {
		t.Fatalf("flipped byte: %+v", sc)
	}

	// A cut in the middle of the last frame of the last segment.
	last := segs[len(segs)-1]
	lc := clean[len(clean)-1]
	cut := lc.Positions[len(lc.Positions)-1] + 3
	if err := os.Truncate(last.Store, cut); err != nil {
		t.Fatal(err)
	}
	sc, err = scanStore(last.Store, last.Base, 0, last.Base, wal.MaxRecordLimit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Problem == "" || sc.ProblemAt >= cut || sc.End > cut || len(sc.Positions) >= len(lc.Positions) {
		t.Fatalf("torn tail: %+v", sc)
	}

	// A broken header.
	b, _ = os.ReadFile(segs[0].Store)
	b[3] ^= 1
	_ = os.WriteFile(segs[0].Store, b, 0o644)
	sc, _ = scanStore(segs[0].Store, segs[0].Base, 0, segs[0].Base, wal.MaxRecordLimit, nil)
	if sc.Header == "" {
		t.Fatalf("bad header not reported: %+v", sc)
	}
}

// TestScanStoreResumes scans a segment from a frame in its middle, as
// wal dump --follow does after each poll.
func TestScanStoreResumes(t *testing.T) {
	dir := t.TempDir()
	want := writeTestWAL(t, dir, 300)
	segs, _ := listWALSegments(dir)
	_, scans := scanAll(t, dir)
	s, full := segs[1], scans[1]
	k := len(full.Positions) / 2
	var got [][]byte
	sc, err := scanStore(s.Store, s.Base, full.Positions[k], s.Base+uint64(k), wal.MaxRecordLimit, func(off uint64, _ int64, rec []byte) error {
		if !bytes.Equal(rec, want[off]) {
			return fmt.Errorf("record %d differs", off)
		}
		got = append(got, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Problem != "" || len(got) != len(full.Positions)-k || sc.Next() != full.Next() || sc.End != full.End {
		t.Fatalf("resumed scan: %+v (full %+v)", sc, full)
	}
}
