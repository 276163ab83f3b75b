package wal

import (
	"encoding/binary"
	"fmt"
	"io"
)

// scanResult is what a scan of a store found.
type scanResult struct {
	count   int          // records in complete Appends
	end     int64        // position just after the last complete Append
	stopAt  int64        // where decoding stopped (== size when it reached the end)
	problem frameProblem // why it stopped early ("" if it reached the end)
	// badAt is the position of the frame that did not decode, or -1 when
	// the scan stopped for another reason (end of file, an Append cut short
	// by it); badRecord is the record that frame would have been (relative
	// to the base).
	badAt     int64
	badRecord int
}

// scanStore decodes every frame from the header to size, verifying
// checksums, and calls onRecord for each record of each complete Append (a
// run of frames ending with a bit-30 frame). Only I/O failures are errors;
// bad bytes end the scan and are described in the result.
func scanStore(f File, base uint64, size int64, maxLen int, onRecord func(i int, pos int64) error) (scanResult, error) {
	return scan(f, base, headerSize, 0, size, maxLen, onRecord, nil)
}

// scanFrom is scanStore starting at position pos with record index first
// (relative to base); onRecord also gets the payload, which aliases the
// scan's buffer (valid during the call only).
func scanFrom(f File, base uint64, pos int64, first int, size int64, maxLen int, onRecord func(i int, pos int64, payload []byte) error) (scanResult, error) {
	return scan(f, base, pos, first, size, maxLen, nil, onRecord)
}

// scan is scanStore and scanFrom: at most one of onPos and onRecord is set
// (onPos saves finding the payloads again).
func scan(f File, base uint64, pos int64, first int, size int64, maxLen int, onPos func(i int, pos int64) error, onRecord func(i int, pos int64, payload []byte) error) (scanResult, error) {
	const chunk = 1 << 20
	var (
		buf      = make([]byte, 0, chunk)
		bufStart = pos // file position of buf[0]
		res      = scanResult{end: pos, badAt: -1, count: first}
		batch    []int64 // positions of the open Append's frames
	)
	// fill makes buf hold [pos, pos+need) (clamped to size).
	fill := func(need int) error {
		if pos+int64(need) > size {
			need = int(size - pos)
		}
		if pos >= bufStart && pos+int64(need) <= bufStart+int64(len(buf)) {
			return nil
		}
		want := max(chunk, need)
		if int64(want) > size-pos {
			want = int(size - pos)
		}
		if cap(buf) < want {
			buf = make([]byte, want)
		}
		buf = buf[:want]
		bufStart = pos
		if _, err := f.ReadAt(buf, pos); err != nil && err != io.EOF {
			return err
		} else if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	emit := func() error {
		for _, bp := range batch {
			if onPos != nil {
				if err := onPos(res.count, bp); err != nil {
					return err
				}
			}
			if onRecord != nil {
				// The Append's frames may have been read in an earlier
				// buffer: decode each again from the file if so.
				var payload []byte
				if bp >= bufStart {
					n, _, _, _ := parseFrameHeader(buf[bp-bufStart:], maxLen)
					payload = buf[bp-bufStart+frameHeaderSize : bp-bufStart+frameHeaderSize+int64(n)]
				} else {
					var err error
					if payload, err = readPayload(f, bp, maxLen); err != nil {
						return err
					}
				}
				if err := onRecord(res.count, bp, payload); err != nil {
					return err
				}
			}
			res.count++
		}
		batch = batch[:0]
		return nil
	}
	for pos < size {
		if err := fill(frameHeaderSize); err != nil {
			return res, err
		}
		b := buf[pos-bufStart:]
		n, _, _, p := parseFrameHeader(b, maxLen)
		if p == frameOK && int64(frameHeaderSize+n) > size-pos {
			p = frameTruncated
		}
		if p != frameOK {
			res.stopAt, res.problem = pos, p
			res.badAt, res.badRecord = pos, res.count+len(batch)
			return res, nil
		}
		// A batch's earlier frames must stay in buf while it is open, or
		// be re-read by emit; refilling from pos keeps the common case in
		// one buffer.
		if err := fill(frameHeaderSize + n); err != nil {
			return res, err
		}
		b = buf[pos-bufStart:]
		off := base + uint64(res.count+len(batch))
		_, fsize, last, p := decodeFrame(b, off, maxLen)
		if p != frameOK {
			res.stopAt, res.problem = pos, p
			res.badAt, res.badRecord = pos, res.count+len(batch)
			return res, nil
		}
		batch = append(batch, pos)
		pos += int64(fsize)
		if last {
			if err := emit(); err != nil {
				return res, err
			}
			res.end = pos
		}
	}
	res.stopAt = pos
	if len(batch) > 0 {
		res.problem = "Append cut short: frames without their last-record frame"
		res.stopAt = res.end
	}
	return res, nil
}

// preallocated reports whether the bytes after the last complete Append of
// a last segment are only the zeros the committer writes ahead (doc.go,
// "Preallocation"): zeros to the end of the file, and no index entry for a
// record past that Append (an entry says a record was written there).
func preallocated(f File, size int64, res scanResult, idx []byte) (bool, error) {
	if res.end >= size || indexedEntries(idx) > res.count {
		return false, nil
	}
	buf := make([]byte, min(1<<20, size-res.end))
	for pos := res.end; pos < size; {
		b := buf[:min(int64(len(buf)), size-pos)]
		n, err := f.ReadAt(b, pos)
		if n < len(b) && err == io.EOF { // shorter than sized: not zeros we wrote
			return false, nil
		}
		if err != nil && err != io.EOF {
			return false, err
		}
		if !allZero(b) {
			return false, nil
		}
		pos += int64(len(b))
	}
	return true, nil
}

func allZero(b []byte) bool {
	for ; len(b) >= 8; b = b[8:] {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readPayload reads the payload of the frame at pos (already validated).
func readPayload(f File, pos int64, maxLen int) ([]byte, error) {
	var h [frameHeaderSize]byte
	if _, err := f.ReadAt(h[:], pos); err != nil {
		return nil, err
	}
	n, _, _, p := parseFrameHeader(h[:], maxLen)
	if p != frameOK {
		return nil, fmt.Errorf("wal: frame at %d changed while read", pos)
	}
	payload := make([]byte, n)
	if _, err := f.ReadAt(payload, pos+frameHeaderSize); err != nil {
		return nil, err
	}
	return payload, nil
}

// validFrame is a frame found intact after damage.
type validFrame struct {
	record uint64 // its log offset
	pos    int64  // its position in the store
	size   int    // its framed length
	last   bool   // it ends an Append

	viaIndex bool // found through an index entry
}

// maxFollowSkip bounds how many lost records findFollowing assumes between
// the damage and a valid frame (each lost record took at least one frame
// header of bytes, so it is also bounded by the distance).
const maxFollowSkip = 1 << 16

// findFollowing looks for an intact frame after the bad frame at badAt
// (which would have been record base+badRecord): first through the index
// entries (idx, raw bytes; may be nil), then by trying every byte position
// with every record offset that the distance allows. Intact means the
// checksum, which covers the record's offset, matches: stale or random
// bytes do not pass. It returns nil when nothing intact follows.
func findFollowing(f File, size int64, base uint64, badAt int64, badRecord int, idx []byte, maxLen int) (*validFrame, error) {
	for i := 0; (i+1)*indexEntrySize <= len(idx); i++ {
		e := idx[i*indexEntrySize:]
		rel, pos := binary.LittleEndian.Uint32(e[0:4]), int64(binary.LittleEndian.Uint32(e[4:8]))
		if rel != uint32(i) || pos <= badAt || pos+frameHeaderSize > size {
			continue
		}
		if vf, err := frameAt(f, size, base, pos, uint64(i), uint64(i), maxLen, nil); err != nil || vf != nil {
			if vf != nil {
				vf.viaIndex = true
			}
			return vf, err
		}
	}
	const window = 1 << 20
	var (
		buf     []byte
		bufPos  int64
		scratch []byte
	)
	for p := badAt + 1; p+frameHeaderSize <= size; p++ {
		if p < bufPos || p+frameHeaderSize > bufPos+int64(len(buf)) {
			n := min(int64(window), size-p)
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			buf = buf[:n]
			if _, err := f.ReadAt(buf, p); err != nil && err != io.EOF {
				return nil, err
			}
			bufPos = p
		}
		h := buf[p-bufPos:]
		n, _, _, pr := parseFrameHeader(h, maxLen)
		if pr != frameOK || p+int64(frameHeaderSize+n) > size {
			continue
		}
		lo := uint64(badRecord)
		hi := lo + uint64(min((p-badAt)/frameHeaderSize, maxFollowSkip))
		var frame []byte
		if end := p + int64(frameHeaderSize+n); end <= bufPos+int64(len(buf)) {
			frame = h[:frameHeaderSize+n]
		} else {
			if cap(scratch) < frameHeaderSize+n {
				scratch = make([]byte, frameHeaderSize+n)
			}
			frame = scratch[:frameHeaderSize+n]
			if _, err := f.ReadAt(frame, p); err != nil {
				return nil, err
			}
		}
		if vf, err := frameAt(f, size, base, p, lo, hi, maxLen, frame); err != nil || vf != nil {
			return vf, err
		}
	}
	return nil, nil
}

// frameAt checks whether an intact frame of a record in [base+lo,
// base+hi] starts at pos. frame holds its bytes if the caller has them.
func frameAt(f File, size int64, base uint64, pos int64, lo, hi uint64, maxLen int, frame []byte) (*validFrame, error) {
	if frame == nil {
		var h [frameHeaderSize]byte
		if _, err := f.ReadAt(h[:], pos); err != nil && err != io.EOF {
			return nil, err
		}
		n, _, _, p := parseFrameHeader(h[:], maxLen)
		if p != frameOK || pos+int64(frameHeaderSize+n) > size {
			return nil, nil
		}
		frame = make([]byte, frameHeaderSize+n)
		if _, err := f.ReadAt(frame, pos); err != nil && err != io.EOF {
			return nil, err
		}
	}
	n, last, crc, p := parseFrameHeader(frame, maxLen)
	if p != frameOK || len(frame) < frameHeaderSize+n {
		return nil, nil
	}
	pcrc := payloadCRC(frame[frameHeaderSize : frameHeaderSize+n])
	word := binary.LittleEndian.Uint32(frame[0:4])
	for k := lo; k <= hi; k++ {
		if frameCRC(pcrc, word, base+k) == crc {
			return &validFrame{record: base + k, pos: pos, size: frameHeaderSize + n, last: last}, nil
		}
	}
	return nil, nil
}

// Run is a stretch of consecutive intact records in one store file.
type Run struct {
	First uint64 // offset of the first record
	Next  uint64 // one past the last record
	Pos   int64  // store position of the first record's frame
	End   int64  // store position just after the last record's frame
	// CompleteNext and CompleteEnd mark the end of the last whole Append in
	// the run (its bit-30 frame); records after it belong to an Append the
	// run does not finish. Equal to First and Pos when there is none.
	CompleteNext uint64
	CompleteEnd  int64
}

// salvage decodes every intact frame of a store, stepping over damage: each
// time decoding fails it looks for the next intact frame (findFollowing)
// and goes on from there. The runs are in position order. Only I/O
// failures are errors.
func salvage(f File, base uint64, size int64, idx []byte, maxLen int) ([]Run, error) {
	var runs []Run
	pos, rec := int64(headerSize), 0
	for pos < size {
		res, err := scanFrom(f, base, pos, rec, size, maxLen, nil)
		if err != nil {
			return runs, err
		}
		r := Run{First: base + uint64(rec), Pos: pos,
			Next: base + uint64(res.count), End: res.end,
			CompleteNext: base + uint64(res.count), CompleteEnd: res.end}
		// The frames of an Append the scan did not see finish.
		for p, i := res.end, res.count; p < size && (res.badAt < 0 || p < res.badAt); {
			vf, err := frameAt(f, size, base, p, uint64(i), uint64(i), maxLen, nil)
			if err != nil {
				return runs, err
			}
			if vf == nil {
				break
			}
			i++
			p += int64(vf.size)
			r.Next, r.End = base+uint64(i), p
		}
		if r.Next > r.First {
			runs = append(runs, r)
		}
		if res.badAt < 0 {
			break
		}
		vf, err := findFollowing(f, size, base, res.badAt, res.badRecord, idx, maxLen)
		if err != nil || vf == nil {
			return runs, err
		}
		pos, rec = vf.pos, int(vf.record-base)
	}
	return runs, nil
}
