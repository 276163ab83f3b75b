package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestBenchCommands: bench lists its measurements, each answers --help,
// and bad flags are usage errors before anything starts.
func TestBenchCommands(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		err := m.Run(context.Background(), append([]string{"bench"}, args...))
		return out.String(), err
	}
	out, err := run("--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"put", "http", "cluster", "all", "noop-server"} {
		if !strings.Contains(out, "  "+s) && !strings.Contains(out, "bench "+s) {
			t.Errorf("bench --help does not list %s:\n%s", s, out)
		}
	}
	for _, cmd := range []string{"put", "http", "cluster", "all"} {
		if out, err := run(cmd, "--help"); err != nil && !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "Usage: shoal bench "+cmd) {
			t.Errorf("bench %s --help: %v\n%s", cmd, err, out)
		}
	}
	for _, args := range [][]string{
		{"all", "--scale", "0"}, {"all", "-o", "xml"}, {"all", "extra"},
		{"cluster", "--nodes", "0"}, {"cluster", "--rate", "0"}, {"cluster", "--nodes", "2", "--writers-on", "3"},
		{"http", "--rate", "-1"}, {"nothing"},
	} {
		if _, err := run(args...); !errors.Is(err, errUsage) {
			t.Errorf("bench %q: %v, want a usage error", args, err)
		}
	}
}
