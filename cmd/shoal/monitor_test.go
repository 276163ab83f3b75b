package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMonitorEnv(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string // GODEBUG's value after; "" = left alone
	}{
		{[]string{"PATH=/bin"}, monitorGODEBUG},
		{[]string{"GODEBUG=madvdontneed=1", "PATH=/bin"}, "madvdontneed=1," + monitorGODEBUG},
		{[]string{"GODEBUG=", "PATH=/bin"}, monitorGODEBUG},
		{[]string{"GODEBUG=schedtrace=0"}, ""},
		{[]string{"GODEBUG=gctrace=1, schedtrace=1000"}, ""},
		{[]string{"GODEBUG=schedtrace=0", "GODEBUG=gctrace=1"}, "gctrace=1," + monitorGODEBUG}, // the last one counts
	} {
		got, ok := monitorEnv(tc.env)
		if tc.want == "" {
			if ok {
				t.Errorf("%q: changed to %q, want it left alone", tc.env, got)
			}
			continue
		}
		if !ok {
			t.Errorf("%q: left alone, want GODEBUG=%s", tc.env, tc.want)
			continue
		}
		var godebug []string
		for _, kv := range got {
			if v, found := strings.CutPrefix(kv, "GODEBUG="); found {
				godebug = append(godebug, v)
			}
		}
		if !slices.Equal(godebug, []string{tc.want}) || !slices.Contains(got, "PATH=/bin") && slices.Contains(tc.env, "PATH=/bin") {
			t.Errorf("%q: got %q, want one GODEBUG=%s and the rest kept", tc.env, got, tc.want)
		}
	}
}

func TestServerCommand(t *testing.T) {
	for args, want := range map[string]bool{
		"agent --data-dir x":  true,
		"dev":                 true,
		"bench noop-server":   true,
		"bench http":          false,
		"bench":               false,
		"get k":               false,
		"":                    false,
		"version":             false,
		"wal verify dir":      false,
		"backup http://x out": false,
	} {
		if got := serverCommand(strings.Fields(args)); got != want {
			t.Errorf("serverCommand(%q) = %v, want %v", args, got, want)
		}
	}
}

// TestAgentKeepsMonitorAwake: a real agent process runs with the monitor
// setting in its environment unless the operator's GODEBUG sets schedtrace.
func TestAgentKeepsMonitorAwake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/environ (Linux)")
	}
	bin := shoalBinary(t)
	// Started through a symbolic link, as installs often are, the process
	// keeps the link's name too.
	link := filepath.Join(t.TempDir(), "shoal-link")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ bin, godebug, want string }{
		{bin, "", monitorGODEBUG},
		{bin, "madvdontneed=1", "madvdontneed=1," + monitorGODEBUG},
		{bin, "schedtrace=0", "schedtrace=0"},
		{link, "", monitorGODEBUG},
	} {
		t.Run(filepath.Base(tc.bin)+"/GODEBUG="+tc.godebug, func(t *testing.T) {
			httpAddr, err := freeLoopbackAddr()
			if err != nil {
				t.Fatal(err)
			}
			gossip, err := freeLoopbackAddr()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(tc.bin, "agent", "--data-dir", t.TempDir(), "--http", httpAddr, "--gossip", gossip, "--log-level", "warn")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, "SHOAL_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			if tc.godebug != "" {
				cmd.Env = append(cmd.Env, "GODEBUG="+tc.godebug)
			}
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}()
			if err := waitHealthy(context.Background(), "http://"+httpAddr, "", 30*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			// The process that serves is the one started (same ID), its
			// environment the one it serves with.
			env, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
			if err != nil {
				t.Fatal(err)
			}
			var godebug []string
			for kv := range strings.SplitSeq(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					godebug = append(godebug, v)
				}
			}
			if !slices.Equal(godebug, []string{tc.want}) {
				t.Errorf("agent's GODEBUG: %q, want %q", godebug, tc.want)
			}
			// Still named after its program (pgrep and top go by it).
			comm, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.TrimSpace(string(comm)), filepath.Base(tc.bin); got != want {
				t.Errorf("process name %q, want %q", got, want)
			}
		})
	}
}
