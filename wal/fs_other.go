//go:build !linux

package wal

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func fallocate(f *os.File, off, n int64) error { return errAllocUnsupported }
