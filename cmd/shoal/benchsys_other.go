//go:build !linux

package main

import (
	"os"
	"syscall"
)

// childProcAttr: elsewhere than Linux, children keep the default
// attributes (the bench still stops them on exit and on Ctrl-C).
func childProcAttr() *syscall.SysProcAttr { return nil }

// fdatasync falls back to a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }

// onTmpfs is only known on Linux.
func onTmpfs(string) bool { return false }

// processCPUSeconds is not measured here.
func processCPUSeconds() float64 { return 0 }
