//go:build unix

package resp

import "syscall"

// processCPU is the CPU time this process used, in seconds, in system and
// in user mode (INFO cpu, as Redis reports its own).
func processCPU() (sys, user float64, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, false
	}
	return float64(ru.Stime.Nano()) / 1e9, float64(ru.Utime.Nano()) / 1e9, true
}
