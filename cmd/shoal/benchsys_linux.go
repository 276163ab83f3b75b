package main

import "syscall"

// childProcAttr puts a bench's child in a process group of its own and
// has the kernel send it SIGTERM if the bench dies first (it then shuts
// down gracefully like on Ctrl-C), so that no child outlives the bench.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
