package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// walHeader returns a valid store header for base.
func walHeader(base uint64) []byte {
	h := make([]byte, walHeaderSize)
	copy(h, walMagic)
	binary.LittleEndian.PutUint32(h[8:12], walFormatVersion)
	binary.LittleEndian.PutUint64(h[12:20], base)
	binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(h[0:20], walCastagnoli))
	return h
}

// walFrame returns a valid frame of rec at offset off.
func walFrame(off uint64, rec []byte, last bool) []byte {
	word := uint32(walBitPresent) | uint32(len(rec))
	if last {
		word |= walBitLast
	}
	var tail [12]byte
	binary.LittleEndian.PutUint32(tail[0:4], word)
	binary.LittleEndian.PutUint64(tail[4:12], off)
	crc := crc32.Update(crc32.Checksum(rec, walCastagnoli), walCastagnoli, tail[:])
	f := make([]byte, 8, 8+len(rec))
	binary.LittleEndian.PutUint32(f[0:4], word)
	binary.LittleEndian.PutUint32(f[4:8], crc)
	return append(f, rec...)
}

// FuzzScanStore: a segment file holding arbitrary bytes (after a valid
// header, or in place of it) never makes the scanner panic or over-read,
// and what it reports is consistent.
func FuzzScanStore(f *testing.F) {
	valid := append(walHeader(7), walFrame(7, []byte("a"), false)...)
	valid = append(valid, walFrame(8, []byte("bc"), true)...)
	f.Add(valid, true)
	f.Add(valid[:len(valid)-1], true)
	f.Add([]byte{}, false)
	f.Add(bytes.Repeat([]byte{0xff}, 64), true)
	f.Add(append(walHeader(7), 0xff, 0xff, 0xff, 0xbf, 0, 0, 0, 0), true)
	dir := f.TempDir()
	path := filepath.Join(dir, "00000000000000000007.log")
	f.Fuzz(func(t *testing.T, b []byte, withHeader bool) {
		data := b
		if withHeader {
			data = append(walHeader(7), b...)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		n := 0
		sc, err := scanStore(path, 7, 0, 7, 1<<20, func(off uint64, pos int64, rec []byte) error {
			if off != 7+uint64(n) || pos < walHeaderSize || pos+int64(len(rec)) > int64(len(data)) {
				t.Fatalf("record %d at %d (%d bytes) in a %d-byte file", off, pos, len(rec), len(data))
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if sc.Header == "" && (sc.End > sc.Size || len(sc.Positions) != n || (sc.Problem == "") != (sc.End == sc.Size)) {
			t.Fatalf("inconsistent scan %+v of %d records", sc, n)
		}
	})
}

// FuzzReadSSE: whatever a server streams, the client's SSE decoder returns
// an error or events, never panics.
func FuzzReadSSE(f *testing.F) {
	f.Add("id: 1\ndata: {\"key\":\"a\",\"offset\":1}\n\n")
	f.Add("event: error\ndata: {\"error\":\"x\"}\n\n")
	f.Add(": c\n\ndata: {\ndata: }\n\n")
	f.Add("data: [1,2]\n\nid\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = readSSE(bytes.NewReader([]byte(s)), func(Event) error { return nil })
	})
}
