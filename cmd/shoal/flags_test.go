package main

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseArgsInterspersedAndEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantPos []string
		wantA   string
		wantN   int
		wantB   bool
		wantErr bool
	}{
		{name: "defaults", args: []string{"k"}, wantPos: []string{"k"}, wantA: "def", wantN: 1},
		{name: "flag after positional", args: []string{"k", "--addr", "x", "v"}, wantPos: []string{"k", "v"}, wantA: "x", wantN: 1},
		{name: "flag=value", args: []string{"--addr=y", "k"}, wantPos: []string{"k"}, wantA: "y", wantN: 1},
		{name: "negative number is positional", args: []string{"k", "-5", "--num", "3"}, wantPos: []string{"k", "-5"}, wantA: "def", wantN: 3},
		{name: "negative flag value", args: []string{"--num", "-7", "k"}, wantPos: []string{"k"}, wantA: "def", wantN: -7},
		{name: "bool flag takes no value", args: []string{"--bool", "k"}, wantPos: []string{"k"}, wantA: "def", wantN: 1, wantB: true},
		{name: "double dash ends flags", args: []string{"--", "--addr", "-x"}, wantPos: []string{"--addr", "-x"}, wantA: "def", wantN: 1},
		{name: "env fills unset flags", args: []string{"k"}, env: map[string]string{"SHOAL_ADDR": "e", "SHOAL_NUM": "9", "SHOAL_BOOL": "true"}, wantPos: []string{"k"}, wantA: "e", wantN: 9, wantB: true},
		{name: "flag beats env", args: []string{"--addr", "f"}, env: map[string]string{"SHOAL_ADDR": "e"}, wantA: "f", wantN: 1},
		{name: "bad env value", args: nil, env: map[string]string{"SHOAL_NUM": "x"}, wantErr: true},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: true},
		{name: "dashed name maps to underscore", args: nil, env: map[string]string{"SHOAL_DATA_DIR": "/d"}, wantA: "def", wantN: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			a := fs.String("addr", "def", "")
			n := fs.Int("num", 1, "")
			b := fs.Bool("bool", false, "")
			dd := fs.String("data-dir", "", "")
			pos, err := parseArgs(fs, tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr {
				if !errors.Is(err, errUsage) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) {
				t.Errorf("positional = %q, want %q", pos, tt.wantPos)
			}
			if *a != tt.wantA || *n != tt.wantN || *b != tt.wantB {
				t.Errorf("addr=%q num=%d bool=%v, want %q %d %v", *a, *n, *b, tt.wantA, tt.wantN, tt.wantB)
			}
			if want := tt.env["SHOAL_DATA_DIR"]; *dd != want {
				t.Errorf("data-dir = %q, want %q", *dd, want)
			}
		})
	}
}

func TestParseArgsHelp(t *testing.T) {
	fs := newFlagSet("x", io.Discard, "usage")
	if _, err := parseArgs(fs, []string{"--help"}, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "4k": 4096, "4KiB": 4096, "64MiB": 64 << 20, "1 GB": 1 << 30, "10b": 10} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5m", "k"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): want an error", in)
		}
	}
}

func TestDurationOrMillis(t *testing.T) {
	for in, want := range map[string]time.Duration{"250": 250 * time.Millisecond, "2s": 2 * time.Second, "1m": time.Minute} {
		got, err := durationOrMillis(in)
		if err != nil || got != want {
			t.Errorf("durationOrMillis(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestListFlag(t *testing.T) {
	var l listFlag
	_ = l.Set("a, b,,c")
	_ = l.Set("d")
	if want := []string{"a", "b", "c", "d"}; !reflect.DeepEqual([]string(l), want) {
		t.Fatalf("list = %q, want %q", l, want)
	}
}

func TestSummarize(t *testing.T) {
	var lat []time.Duration
	for i := 1000; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	r := summarize(lat)
	if r.P50 != 500 || r.P99 != 990 || r.P999 != 999 || r.Max != 1000 || r.Count != 1000 {
		t.Fatalf("summary = %+v", r)
	}
	if (summarize(nil) != latencyReport{}) {
		t.Fatal("empty summary not zero")
	}
}

// TestVersion: the version comes from the build information, not a
// constant ("dev" was printed for installed binaries).
func TestVersion(t *testing.T) {
	out := mustShoal(t, "version")
	if !strings.HasPrefix(out, "shoal ") || strings.Contains(out, "dev\n") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version: %q", out)
	}
}
