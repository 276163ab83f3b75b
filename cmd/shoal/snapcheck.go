package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
)

// Data directory layout (node's): the WAL and the snapshots live in these
// subdirectories.
const (
	dataWALDir      = "wal"
	dataSnapshotDir = "snapshots"
)

// Snapshot file format, as node/snapshot.go documents it:
//
//	0   8  magic "SHOALSNP"
//	8   2  format version (1)
//	10  2  reserved
//	12  4  CRC-32C of the body followed by header bytes 16..32
//	16  8  WAL offset of the last record included (equals the file name)
//	24  8  body length
//	32  -  body: msgpack, whose "o" is the offset and "d" the state (a crdt.Delta)
const (
	snapMagic      = "SHOALSNP"
	snapVersion    = 1
	snapHeaderSize = 32
)

// verifySnapshotFile checks a snapshot file without loading it into a node:
// header, length, checksum, that the body decodes and that the state it
// holds is a valid CRDT state. It returns the WAL offset the snapshot
// covers up to.
func verifySnapshotFile(path string) (uint64, error) {
	base, ok := strings.CutSuffix(filepath.Base(path), ".snap")
	want, err := strconv.ParseUint(base, 10, 64)
	if !ok || len(base) != 20 || err != nil {
		return 0, errors.New("file name is not <20-digit offset>.snap")
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var hdr [snapHeaderSize]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("short header: %w", err)
	}
	switch {
	case string(hdr[0:8]) != snapMagic:
		return 0, errors.New("bad magic")
	case binary.LittleEndian.Uint16(hdr[8:10]) != snapVersion:
		return 0, fmt.Errorf("unknown format version %d", binary.LittleEndian.Uint16(hdr[8:10]))
	case binary.LittleEndian.Uint64(hdr[16:24]) != want:
		return 0, fmt.Errorf("header says offset %d, the name %d", binary.LittleEndian.Uint64(hdr[16:24]), want)
	}
	length := binary.LittleEndian.Uint64(hdr[24:32])
	if length != uint64(st.Size()-snapHeaderSize) {
		return 0, fmt.Errorf("body length %d, but the file holds %d bytes after the header", length, st.Size()-snapHeaderSize)
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(f, b); err != nil {
		return 0, err
	}
	crc := crc32.Update(crc32.Checksum(b, walCastagnoli), walCastagnoli, hdr[16:32])
	if crc != binary.LittleEndian.Uint32(hdr[12:16]) {
		return 0, errors.New("checksum mismatch")
	}
	// The checksum vouches for the bytes; decode what matters to a reader.
	var body struct {
		Offset uint64      `msgpack:"o"`
		State  *crdt.Delta `msgpack:"d"`
	}
	if err := msgpack.Unmarshal(b, &body); err != nil {
		return 0, fmt.Errorf("body does not decode: %w", err)
	}
	if body.Offset != want {
		return 0, fmt.Errorf("body says offset %d, the name %d", body.Offset, want)
	}
	if body.State == nil {
		return 0, errors.New("no state in the body")
	}
	if err := body.State.Validate(); err != nil {
		return 0, fmt.Errorf("invalid state: %w", err)
	}
	return want, nil
}
