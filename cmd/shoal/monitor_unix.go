//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
)

// reexec replaces the process with the same program and arguments under
// env (same process ID, so supervisors and signals see no difference). It
// returns only when that fails.
func reexec(env []string) {
	exe := "/proc/self/exe" // this very binary, even if its file was replaced since
	if runtime.GOOS != "linux" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return
		}
	}
	_ = syscall.Exec(exe, os.Args, env)
}
