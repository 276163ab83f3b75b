package wal

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeFrame: any bytes decode without panicking, and whatever decodes
// re-encodes to exactly the same frame.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, 7, []byte("hello"), payloadCRC([]byte("hello")), true), uint64(7), 100)
	f.Add(appendFrame(nil, 0, nil, payloadCRC(nil), false), uint64(0), 0)
	f.Add([]byte{0, 0, 0, 0x80, 1, 2, 3, 4}, uint64(1), 10)
	f.Add(make([]byte, 16), uint64(0), 1<<20)
	f.Fuzz(func(t *testing.T, b []byte, off uint64, maxLen int) {
		if maxLen < 0 || maxLen > MaxRecordLimit {
			maxLen = DefaultMaxRecordBytes
		}
		payload, size, last, p := decodeFrame(b, off, maxLen)
		if p != frameOK {
			if payload != nil || size != 0 {
				t.Fatalf("failed decode returned data")
			}
			return
		}
		if size > len(b) || len(payload) > maxLen {
			t.Fatalf("size %d of %d bytes, payload %d > %d", size, len(b), len(payload), maxLen)
		}
		again := appendFrame(nil, off, payload, payloadCRC(payload), last)
		if !bytes.Equal(again, b[:size]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:size])
		}
	})
}

// FuzzOpenDir: a directory whose segment files hold arbitrary bytes never
// makes Open (or reading what it accepted) panic.
func FuzzOpenDir(f *testing.F) {
	// Seed with a real two-segment log.
	seedDir := memDir(f)
	l, err := Open(seedDir, &Options{SegmentBytes: 1024, Sync: SyncNever})
	if err != nil {
		f.Fatal(err)
	}
	for i := uint64(0); i < 40; i++ {
		l.Append(rec(i))
	}
	l.Close()
	files := map[string][]byte{}
	for _, ext := range []string{"log", "index"} {
		names, _ := filepath.Glob(filepath.Join(seedDir, "*."+ext))
		for i, n := range names {
			if i < 2 {
				b, _ := os.ReadFile(n)
				files[ext+string(rune('0'+i))] = b
			}
		}
	}
	f.Add(files["log0"], files["index0"], files["log1"], files["index1"], false)
	f.Add(files["log0"], files["index0"], []byte(nil), []byte(nil), true)
	f.Add(encodeHeader(0), []byte(nil), []byte(nil), []byte(nil), false)
	f.Fuzz(func(t *testing.T, log0, idx0, log1, idx1 []byte, noIndex bool) {
		dir := memDir(t)
		put := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		put(segmentName(0)+".log", log0)
		if !noIndex {
			put(segmentName(0)+".index", idx0)
		}
		// The second segment's base comes from its own header when it has
		// one, so that the fuzzer can reach a valid pair.
		if len(log1) > 0 {
			base := uint64(1)
			if len(log1) >= headerSize {
				base = binary.LittleEndian.Uint64(log1[12:20]) % 1_000_000
			}
			put(segmentName(base)+".log", log1)
			put(segmentName(base)+".index", idx1)
		}
		l, err := Open(dir, &Options{SegmentBytes: 1024, MaxRecordBytes: 1 << 16})
		if err != nil {
			return
		}
		defer l.Close()
		for off := l.FirstOffset(); off < l.NextOffset(); off++ {
			l.Read(off)
		}
		if r, err := l.NewReader(l.FirstOffset()); err == nil {
			for i := 0; i < 10000; i++ {
				if _, _, err := r.Next(); err != nil {
					break
				}
			}
		}
		l.Verify()
		if _, err := l.Append([]byte("after")); err != nil {
			t.Fatalf("Append on an opened log: %v", err)
		}
	})
}

// FuzzInspectAndTail: a segment holding arbitrary bytes (after a valid
// header, or in place of it) never makes Inspect or a Tail panic or
// over-read, and what they report agrees: the records a Tail returns are
// the ones Inspect says Open would hold, in order.
func FuzzInspectAndTail(f *testing.F) {
	valid := append(encodeHeader(7), appendFrame(nil, 7, []byte("a"), payloadCRC([]byte("a")), false)...)
	valid = appendFrame(valid, 8, []byte("bc"), payloadCRC([]byte("bc")), true)
	f.Add(valid, false)
	f.Add(valid[:len(valid)-1], false)
	f.Add([]byte{}, false)
	f.Add(bytes.Repeat([]byte{0xff}, 64), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xbf, 0, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, withHeader bool) {
		dir := memDir(t)
		data := b
		if withHeader {
			data = append(encodeHeader(7), b...)
		}
		if err := os.WriteFile(filepath.Join(dir, segmentName(7)+".log"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		var held []uint64
		in, err := Inspect(dir, &InspectOptions{MaxRecordBytes: 1 << 20, OnRecord: func(off uint64, rec []byte) error {
			held = append(held, off)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if in.Next-in.First != uint64(len(held)) {
			t.Fatalf("Inspect says [%d, %d) but handed over %d records", in.First, in.Next, len(held))
		}
		tl := NewTail(dir, 7, &InspectOptions{MaxRecordBytes: 1 << 20})
		var read []uint64
		for {
			off, _, err := tl.Next()
			if err != nil {
				break
			}
			read = append(read, off)
		}
		if len(read) != len(held) {
			t.Fatalf("Tail read %v, Inspect held %v", read, held)
		}
		for i := range read {
			if read[i] != held[i] || read[i] != 7+uint64(i) {
				t.Fatalf("Tail read %v, Inspect held %v", read, held)
			}
		}
	})
}
