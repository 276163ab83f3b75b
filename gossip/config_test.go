package gossip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestNewRejectsBadConfig(t *testing.T) {
	h := newTestStore("x")
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"empty name", func(c *Config) { c.Name = "" }},
		{"long name", func(c *Config) { c.Name = string(make([]byte, 256)) }},
		{"long label", func(c *Config) { c.Label = string(make([]byte, 256)) }},
		{"bad key", func(c *Config) { c.SecretKeys = [][]byte{[]byte("short")} }},
		{"tiny frames", func(c *Config) { c.MaxFrameBytes = 100 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("x", nil)
			tc.mod(c)
			if g, err := New(c, h); !errors.Is(err, ErrInvalidConfig) {
				if g != nil {
					g.Close()
				}
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := New(testConfig("x", nil), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New without handler: %v", err)
	}
}

// New copies the config and never writes into it; zero fields get the
// LAN defaults.
func TestConfigCopiedAndDefaulted(t *testing.T) {
	c := &Config{Name: "solo", BindAddr: "127.0.0.1", SecretKeys: [][]byte{key1}}
	before := *c
	g, err := New(c, newTestStore("solo"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if c.BindPort != before.BindPort || c.MaxFrameBytes != 0 || c.AckInterval != 0 {
		t.Fatalf("New wrote into the caller's config: %+v", c)
	}
	d := DefaultLANConfig()
	if g.cfg.MaxFrameBytes != d.MaxFrameBytes || g.cfg.AntiEntropyInterval != d.AntiEntropyInterval ||
		g.cfg.HandshakeTimeout != d.HandshakeTimeout || g.cfg.MaxPendingHandshakes != d.MaxPendingHandshakes ||
		g.cfg.MaxPendingPerAddr != d.MaxPendingPerAddr || g.cfg.MaxInboundSessions != d.MaxInboundSessions ||
		g.cfg.MaxSessionsPerAddr != d.MaxSessionsPerAddr || g.cfg.IdleTimeout != d.IdleTimeout ||
		g.cfg.PingTimeout != d.PingTimeout || g.cfg.ServeCreditTimeout != d.ServeCreditTimeout || g.cfg.LogInterval != d.LogInterval {
		t.Fatalf("defaults not applied: %+v", g.cfg)
	}
	// The frame limit carries node's largest record (its WAL's 16 MiB).
	if g.MaxPayload() < 16<<20 {
		t.Fatalf("MaxPayload %d below 16 MiB", g.MaxPayload())
	}
}

// A failed New (here: metrics already registered by another instance)
// leaves nothing running (goleak checks at the end) and frees its ports.
func TestNewFailureCleansUp(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := startNode(t, "a", nil, func(c *Config) { c.Registerer = reg })
	c := testConfig("b", nil)
	c.Registerer = reg
	if g, err := New(c, newTestStore("b")); err == nil {
		g.Close()
		t.Fatal("two instances registered on one registry")
	}
	if err := a.g.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed: its metrics are unregistered, so a new instance may register.
	b := startNode(t, "b", nil, func(c *Config) { c.Registerer = reg })
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	_ = b
}

// TestMemberlistMetrics: memberlist's own measurements reach each node's
// Registerer (through the go-metrics sink), each to its own node's.
func TestMemberlistMetrics(t *testing.T) {
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	a := startNode(t, "a", nil, func(c *Config) { c.Registerer = regs[0] })
	b := startNode(t, "b", nil, func(c *Config) { c.Registerer = regs[1] })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.g.Join(ctx, a.g.LocalPeer().Addr); err != nil {
		t.Fatal(err)
	}
	probes := func(reg *prometheus.Registry) (uint64, float64) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		var alive float64
		for _, mf := range mfs {
			switch mf.GetName() {
			case "shoal_memberlist_probenode":
				n = mf.GetMetric()[0].GetSummary().GetSampleCount()
			case "shoal_memberlist_msg_alive_total":
				alive = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return n, alive
	}
	eventually(t, 20*time.Second, func() bool {
		na, aa := probes(regs[0])
		nb, ab := probes(regs[1])
		return na > 0 && nb > 0 && aa > 0 && ab > 0
	}, "memberlist's probe timings and alive messages did not reach both registries")
	// After Close an instance's measurements stop going anywhere.
	if err := a.g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := mlSinks.Load(a.g.mlm.id); ok {
		t.Fatal("a closed instance still receives memberlist metrics")
	}
}
