//go:build !unix

package resp

// processCPU is not measured here: INFO leaves its cpu section out.
func processCPU() (sys, user float64, ok bool) { return 0, 0, false }
