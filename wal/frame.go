package wal

import (
	"encoding/binary"
	"hash/crc32"
)

// Sizes and flags of the on-disk format; see doc.go.
const (
	headerSize      = 24
	frameHeaderSize = 8
	indexEntrySize  = 8
	formatVersion   = 1

	frameBitPresent = 1 << 31
	frameBitLast    = 1 << 30
	frameLenMask    = 1<<30 - 1
)

var (
	segmentMagic = [8]byte{'S', 'H', 'O', 'A', 'L', 'W', 'A', 'L'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// frameCRC finishes a frame checksum given the checksum of the payload:
// crc32.Update over word (4 bytes) and offset (8 bytes), little endian,
// done a byte at a time here because crc32.Update's slice escapes (one
// allocation per frame on the read paths).
func frameCRC(payloadCRC, word uint32, offset uint64) uint32 {
	crc := ^payloadCRC
	for i := 0; i < 32; i += 8 {
		crc = castagnoli[byte(crc)^byte(word>>i)] ^ crc>>8
	}
	for i := 0; i < 64; i += 8 {
		crc = castagnoli[byte(crc)^byte(offset>>i)] ^ crc>>8
	}
	return ^crc
}

func payloadCRC(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// appendFrame appends the frame of record rec with offset off to dst.
// pcrc must be payloadCRC(rec).
func appendFrame(dst []byte, off uint64, rec []byte, pcrc uint32, last bool) []byte {
	word := uint32(frameBitPresent) | uint32(len(rec))
	if last {
		word |= frameBitLast
	}
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], word)
	binary.LittleEndian.PutUint32(h[4:8], frameCRC(pcrc, word, off))
	dst = append(dst, h[:]...)
	return append(dst, rec...)
}

// frameProblem says why bytes are not a frame; "" means they are.
type frameProblem string

const (
	frameOK        frameProblem = ""
	frameShort     frameProblem = "truncated frame header"
	frameNoMarker  frameProblem = "frame word without its marker bit (zeroes or garbage)"
	frameTooLong   frameProblem = "frame length above MaxRecordBytes"
	frameTruncated frameProblem = "frame payload runs past the end of the data"
	frameChecksum  frameProblem = "frame checksum mismatch"
)

// parseFrameHeader decodes the 8-byte header at the start of b. It checks the
// marker bit and the length against maxLen, but not the checksum.
func parseFrameHeader(b []byte, maxLen int) (n int, last bool, crc uint32, p frameProblem) {
	if len(b) < frameHeaderSize {
		return 0, false, 0, frameShort
	}
	word := binary.LittleEndian.Uint32(b[0:4])
	if word&frameBitPresent == 0 {
		return 0, false, 0, frameNoMarker
	}
	n = int(word & frameLenMask)
	if n > maxLen {
		return 0, false, 0, frameTooLong
	}
	return n, word&frameBitLast != 0, binary.LittleEndian.Uint32(b[4:8]), frameOK
}

// decodeFrame decodes the frame of record off at the start of b. payload
// aliases b; size is the frame's total length. It never allocates and never
// panics, whatever b holds.
func decodeFrame(b []byte, off uint64, maxLen int) (payload []byte, size int, last bool, p frameProblem) {
	n, last, crc, p := parseFrameHeader(b, maxLen)
	if p != frameOK {
		return nil, 0, false, p
	}
	if len(b)-frameHeaderSize < n {
		return nil, 0, false, frameTruncated
	}
	payload = b[frameHeaderSize : frameHeaderSize+n]
	word := binary.LittleEndian.Uint32(b[0:4])
	if frameCRC(payloadCRC(payload), word, off) != crc {
		return nil, 0, false, frameChecksum
	}
	return payload, frameHeaderSize + n, last, frameOK
}

// encodeHeader returns the store header for base.
func encodeHeader(base uint64) []byte {
	h := make([]byte, headerSize)
	copy(h[0:8], segmentMagic[:])
	binary.LittleEndian.PutUint32(h[8:12], formatVersion)
	binary.LittleEndian.PutUint64(h[12:20], base)
	binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(h[0:20], castagnoli))
	return h
}

// checkHeader validates a store header; "" means good.
func checkHeader(h []byte, base uint64) string {
	switch {
	case len(h) < headerSize:
		return "store shorter than its header"
	case [8]byte(h[0:8]) != segmentMagic:
		return "bad magic"
	case binary.LittleEndian.Uint32(h[20:24]) != crc32.Checksum(h[0:20], castagnoli):
		return "header checksum mismatch"
	case binary.LittleEndian.Uint32(h[8:12]) != formatVersion:
		return "unknown format version"
	case binary.LittleEndian.Uint64(h[12:20]) != base:
		return "base offset in header differs from the file name"
	}
	return ""
}
