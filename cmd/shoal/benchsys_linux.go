package main

import (
	"os"
	"syscall"
)

// childProcAttr puts a bench's child in a process group of its own and
// has the kernel send it SIGTERM if the bench dies first (it then shuts
// down gracefully like on Ctrl-C), so that no child outlives the bench.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// fdatasync makes the data written to f durable (not its metadata, like
// the WAL's own sync).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// onTmpfs reports whether dir is on a tmpfs, where fsync costs nothing and
// a durable-write benchmark measures memory.
func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

// processCPUSeconds is the CPU time (user and system) this process used.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
