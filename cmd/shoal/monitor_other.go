//go:build !unix

package main

// reexec is not available here: the server keeps the runtime's default.
func reexec(env []string) {}
