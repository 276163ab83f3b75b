//go:build !linux

package wal

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func fallocate(f *os.File, off, n int64) error { return errAllocUnsupported }

type dirLock struct{}

// lockDir is a no-op where flock is not used; one process per directory is
// then the caller's duty.
func lockDir(dir string) (*dirLock, error) { return &dirLock{}, nil }

func (d *dirLock) unlock() {}
