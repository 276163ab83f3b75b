// Command shoal is the shoal node binary and its command-line client.
//
//	shoal agent ...            run a node (HTTP API + gossip)
//	shoal dev --nodes 3        a local development cluster in one process
//	shoal get|put|del|...      the client side of the HTTP API
//	shoal wal verify|dump DIR  check or print a data directory offline
//	shoal bench put|http|cluster|all  measure against baselines in the same run
//	shoal bench resp           redis-benchmark against the RESP endpoint and Redis
//
// Run "shoal help" or "shoal COMMAND --help" for details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed (the server's error is printed)
	exitUsage = 2 // the command line was wrong
)

func main() {
	keepMonitorAwake(os.Args[1:]) // returns unless it starts the program again (monitor.go)
	m := NewMain()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	m.Signals = sigs
	reloads := make(chan os.Signal, 1)
	signal.Notify(reloads, syscall.SIGHUP)
	m.Reloads = reloads
	os.Exit(m.Main(context.Background(), os.Args[1:]))
}

// Main is the program: it dispatches to the subcommands. Tests run it in
// process with their own streams and environment.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (SHOAL_* defaults); nil = os.Getenv.
	Getenv func(string) string
	// Signals, when not nil, delivers the shutdown signals of long-running
	// commands (agent, dev). main wires SIGINT and SIGTERM.
	Signals <-chan os.Signal
	// Reloads, when not nil, delivers the signals that make an agent reread
	// its key files (main wires SIGHUP).
	Reloads <-chan os.Signal
	// Exit ends the process at once on a second signal; nil = os.Exit.
	Exit func(code int)
}

// NewMain returns a Main wired to the process.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Exit: os.Exit}
}

const mainUsage = `shoal is a replicated key-value and document store: every replica accepts
reads and writes on its own and replicas converge by exchanging CRDT deltas.

Usage: shoal COMMAND [arguments] [flags]

Run a node:
  agent         run a node: HTTP API, gossip, data directory
  dev           run a local development cluster in one process

Client (talks to a node's HTTP API, --addr, default http://127.0.0.1:7070):
%s
Tools:
  wal verify    check every segment, index and snapshot of a data directory
  wal dump      print the decoded operations of a data directory as JSON lines
  restore       create a data directory from a backup (shoal backup FILE)
  bench put     embedded durable writes against raw group commit and bbolt
  bench http    the HTTP API against a no-op server (closed or open loop)
  bench cluster N agents on loopback: sustained rate, convergence latency
  bench resp    redis-benchmark against shoal's RESP endpoint and Redis, same run
  bench all     every figure and plot of the README's benchmark section
  version       print the version

Run "shoal COMMAND --help" for the flags of a command.
`

func mainUsageText() string {
	var b strings.Builder
	for _, c := range clientCommands {
		fmt.Fprintf(&b, "  %-12s  %s\n", c.name, c.summary)
	}
	return fmt.Sprintf(mainUsage, b.String())
}

// version may be set at build time with -ldflags "-X main.version=...";
// otherwise versionString reads what the Go toolchain recorded.
var version = ""

// versionString is the module version of an installed binary (go install
// ...@v1.2.3), or for a build from a checkout "(devel)" with the VCS
// revision, its time and whether the tree was modified.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" %.12s%s %s", rev, dirty, at)
	}
	return strings.TrimSpace(v + " " + bi.GoVersion)
}

// Main runs the command line args and returns the process exit code.
func (m *Main) Main(ctx context.Context, args []string) int {
	err := m.Run(ctx, args)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(m.Stderr, "Error: %s\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		fmt.Fprintln(m.Stderr, `Run "shoal help" or "shoal COMMAND --help" for usage.`)
		return exitUsage
	default:
		fmt.Fprintf(m.Stderr, "Error: %s\n", err)
		return exitError
	}
}

// Run runs one command.
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, mainUsageText())
		return usageError("no command given")
	}
	cmd, rest := args[0], args[1:]
	if m.Signals != nil && !serverCommand(args) {
		// Short-lived commands end on the first signal through ctx; the
		// servers above handle their signals themselves (graceful shutdown).
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-m.Signals:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	switch cmd {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return m.Run(ctx, []string{rest[0], "--help"})
		}
		fmt.Fprint(m.Stdout, mainUsageText())
		return nil
	case "version", "--version":
		fmt.Fprintf(m.Stdout, "shoal %s\n", versionString())
		return nil
	case "bench":
		return m.runBench(ctx, rest)
	}
	if r, ok := m.extraCommands()[cmd]; ok {
		return r(ctx, rest)
	}
	if cc := findClientCommand(cmd); cc != nil {
		return m.runClientCommand(ctx, cc, rest)
	}
	return usageError("unknown command %q", cmd)
}
