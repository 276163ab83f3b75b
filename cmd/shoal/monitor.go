package main

import (
	"os"
	"strings"
)

// The Go runtime's monitor thread (sysmon) sleeps deeply while every
// processor is idle. The next system call wakes it, and it then polls every
// 20 µs until it has found nothing to do for a millisecond, and only then
// backs off (to 10 ms). A node between a peer's deliveries, a millisecond
// or so apart, goes idle and wakes again each time, so its monitor polls
// every 20 µs for as long as the node works: on the reference VM a fifth of
// a receiving node's CPU (node/PERFORMANCE.md, "The runtime's monitor").
// The runtime has no setting for this (golang/go#18236), but its scheduler
// trace needs the monitor awake: with GODEBUG=schedtrace set the monitor
// never sleeps deeply, and at the largest period (2^31-1 ms, 24.8 days) the
// trace itself prints nothing until the host's monotonic clock (its uptime)
// passes that period, then one line per period on stderr.
//
// The servers (agent, dev, bench noop-server) therefore start again with
// it when the environment does not say otherwise: GODEBUG=schedtrace=0
// keeps the runtime's default.
const monitorGODEBUG = "schedtrace=2147483647"

// serverCommand reports whether args (without the program name) run one of
// the long-lived servers, which handle their own signals and keep the
// runtime's monitor awake.
func serverCommand(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "agent", "dev":
		return true
	case "bench":
		return len(args) > 1 && args[1] == "noop-server"
	}
	return false
}

// monitorEnv returns env with monitorGODEBUG added to GODEBUG, or false
// when GODEBUG already sets schedtrace (the operator's choice stands).
func monitorEnv(env []string) ([]string, bool) {
	out := make([]string, 0, len(env)+1)
	godebug := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v // the last one wins, as in os.Getenv
			continue
		}
		out = append(out, kv)
	}
	for _, f := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(f), "schedtrace=") {
			return nil, false
		}
	}
	if godebug != "" {
		godebug += ","
	}
	return append(out, "GODEBUG="+godebug+monitorGODEBUG), true
}

// keepMonitorAwake starts the program again with monitorGODEBUG when args
// run a server and the environment does not set schedtrace. It returns
// only when it did not (or could not: the server then runs with the
// runtime's default).
func keepMonitorAwake(args []string) {
	if !serverCommand(args) {
		return
	}
	env, ok := monitorEnv(os.Environ())
	if !ok {
		return
	}
	reexec(env)
}
