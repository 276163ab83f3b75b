//go:build unix

package main

import (
	"os"
	"syscall"
)

// reexec replaces the process with the same program and arguments under
// env (same process ID, so supervisors and signals see no difference). It
// returns only when that fails. The program is named by its path, not by
// /proc/self/exe, which would make the process's name "exe" (what ps, top
// and pgrep show).
func reexec(env []string) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}
