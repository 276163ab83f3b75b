//go:build !linux

package main

import "syscall"

// childProcAttr: elsewhere than Linux, children keep the default
// attributes (the bench still stops them on exit and on Ctrl-C).
func childProcAttr() *syscall.SysProcAttr { return nil }
