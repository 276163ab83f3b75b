//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// reexec replaces the process with the same program and arguments under
// env (same process ID, so supervisors and signals see no difference). It
// returns only when that fails.
func reexec(env []string) {
	exe, err := reexecPath()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}

// reexecPath is the path to start this program by again: the one it was
// started by (os.Args[0], looked up in PATH when it has no slash) when
// that is this very file, so that the process keeps its name (what ps,
// top and pgrep show, the base name of the path started: through a
// symbolic link, the link's), else the file's own path. Not
// /proc/self/exe, whose name is "exe".
func reexecPath() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil && sameFile(p, self) {
		return p, nil
	}
	return self, nil
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
