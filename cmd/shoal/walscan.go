package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// This file reads WAL segments without the wal package's Open, which
// repairs the last segment and locks the directory: the log tools must be
// able to inspect a directory without changing it, and to tail the log of a
// running node. It follows the format specification in wal/doc.go byte by
// byte; walscan_test.go checks it against logs written by package wal.

const (
	walHeaderSize      = 24
	walFrameHeaderSize = 8
	walIndexEntrySize  = 8
	walFormatVersion   = 1
	walBitPresent      = 1 << 31
	walBitLast         = 1 << 30
	walLenMask         = 1<<30 - 1
)

var (
	walMagic      = []byte("SHOALWAL")
	walCastagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// walSegment is one segment's files.
type walSegment struct {
	Base  uint64
	Store string // <base>.log
	Index string // <base>.index ("" if missing)
}

// listWALSegments returns the segments of a WAL directory, oldest first.
func listWALSegments(dir string) ([]walSegment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	var segs []walSegment
	for name := range names {
		digits, ok := strings.CutSuffix(name, ".log")
		if !ok || len(digits) != 20 {
			continue
		}
		base, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		s := walSegment{Base: base, Store: filepath.Join(dir, name)}
		if names[digits+".index"] {
			s.Index = filepath.Join(dir, digits+".index")
		}
		segs = append(segs, s)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Base < segs[j].Base })
	return segs, nil
}

// checkWALHeader validates a store header; "" means good.
func checkWALHeader(h []byte, base uint64) string {
	switch {
	case len(h) < walHeaderSize:
		return "store shorter than its header"
	case string(h[0:8]) != string(walMagic):
		return "bad magic"
	case binary.LittleEndian.Uint32(h[20:24]) != crc32.Checksum(h[0:20], walCastagnoli):
		return "header checksum mismatch"
	case binary.LittleEndian.Uint32(h[8:12]) != walFormatVersion:
		return "unknown format version"
	case binary.LittleEndian.Uint64(h[12:20]) != base:
		return "base offset in the header differs from the file name"
	}
	return ""
}

// storeScan is what scanning one store file found.
type storeScan struct {
	Base      uint64  // the segment's base offset
	From      uint64  // offset of the first record this scan read
	Size      int64   // file size when scanned
	Header    string  // header problem; "" = good
	Positions []int64 // frame position of each record of a complete Append
	End       int64   // end of the last complete Append (where a repair would cut)
	// Problem says why scanning stopped before Size ("" = it reached Size);
	// ProblemAt is the byte position and ProblemRecord the offset the bad
	// frame would have had.
	Problem       string
	ProblemAt     int64
	ProblemRecord uint64
}

// Next is the offset after the last complete record.
func (s *storeScan) Next() uint64 { return s.From + uint64(len(s.Positions)) }

// scanStore reads the store file from byte pos (a frame boundary; 0 = the
// start, header included) holding record offset off there, verifies every
// frame, and calls fn for each record of each complete Append in order
// (records are handed over only once the Append's last frame checked out).
// rec is valid only during the call. maxRecord bounds a frame's length.
func scanStore(path string, base uint64, pos int64, off uint64, maxRecord int, fn func(off uint64, pos int64, rec []byte) error) (*storeScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	res := &storeScan{Base: base, From: off, Size: st.Size(), End: pos}
	if pos == 0 {
		h := make([]byte, walHeaderSize)
		if _, err := io.ReadFull(f, h); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if p := checkWALHeader(h, base); p != "" {
			res.Header = p
			return res, nil
		}
		pos, res.End = walHeaderSize, walHeaderSize
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, pos, res.Size-pos), 1<<20)
	type pending struct {
		off uint64
		pos int64
		rec []byte
	}
	var group []pending // records of the Append being read
	var hdr [walFrameHeaderSize]byte
	stop := func(problem string, at int64, rec uint64) (*storeScan, error) {
		res.Problem, res.ProblemAt, res.ProblemRecord = problem, at, rec
		return res, nil
	}
	for pos < res.Size {
		framePos := pos
		if res.Size-pos < walFrameHeaderSize {
			return stop("truncated frame header", framePos, off)
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, err
		}
		word := binary.LittleEndian.Uint32(hdr[0:4])
		if word&walBitPresent == 0 {
			return stop("frame word without its marker bit (zeroes or garbage)", framePos, off)
		}
		n := int64(word & walLenMask)
		if n > int64(maxRecord) {
			return stop(fmt.Sprintf("frame length %d above the record limit %d", n, maxRecord), framePos, off)
		}
		if n > res.Size-pos-walFrameHeaderSize {
			return stop(fmt.Sprintf("frame length %d runs past the end of the file", n), framePos, off)
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(r, rec); err != nil {
			return nil, err
		}
		var tail [12]byte
		binary.LittleEndian.PutUint32(tail[0:4], word)
		binary.LittleEndian.PutUint64(tail[4:12], off)
		crc := crc32.Update(crc32.Checksum(rec, walCastagnoli), walCastagnoli, tail[:])
		if crc != binary.LittleEndian.Uint32(hdr[4:8]) {
			return stop("frame checksum mismatch", framePos, off)
		}
		group = append(group, pending{off, framePos, rec})
		off++
		pos += walFrameHeaderSize + n
		if word&walBitLast != 0 {
			for _, p := range group {
				res.Positions = append(res.Positions, p.pos)
				if fn != nil {
					if err := fn(p.off, p.pos, p.rec); err != nil {
						return res, err
					}
				}
			}
			group = group[:0]
			res.End = pos
		}
	}
	if len(group) > 0 {
		return stop(fmt.Sprintf("%d frame(s) of an Append without its last frame (a torn write)", len(group)), group[0].pos, group[0].off)
	}
	return res, nil
}

// indexProblem compares an index file with its scanned store; "" = they
// agree. A sealed index holds exactly one entry per record; the active
// one may have a zero-filled tail beyond them.
func indexProblem(path string, scan *storeScan, sealed bool) string {
	if path == "" {
		return "index file missing"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b)%walIndexEntrySize != 0 {
		return fmt.Sprintf("size %d is not a multiple of %d", len(b), walIndexEntrySize)
	}
	n := len(b) / walIndexEntrySize
	if n < len(scan.Positions) {
		return fmt.Sprintf("%d entries for %d records (behind the store)", n, len(scan.Positions))
	}
	if sealed && n != len(scan.Positions) {
		return fmt.Sprintf("%d entries for %d records (a sealed index holds one per record)", n, len(scan.Positions))
	}
	for i, want := range scan.Positions {
		rel := binary.LittleEndian.Uint32(b[i*8:])
		pos := binary.LittleEndian.Uint32(b[i*8+4:])
		if rel != uint32(i) || int64(pos) != want {
			return fmt.Sprintf("entry %d (record %d) is (%d, %d), the store has (%d, %d)", i, scan.Base+uint64(i), rel, pos, i, want)
		}
	}
	for i := len(scan.Positions); i < n; i++ {
		if binary.LittleEndian.Uint64(b[i*8:]) != 0 {
			return fmt.Sprintf("entry %d (record %d) points past the last complete record", i, scan.Base+uint64(i))
		}
	}
	return ""
}
