// Package wal is shoal's segmented write-ahead log of opaque records.
//
// The byte-by-byte format specification follows in this file (being written).
package wal
