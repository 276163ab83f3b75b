package gossip

import (
	"errors"
	"testing"

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
	if g.cfg.MaxFrameBytes != DefaultLANConfig().MaxFrameBytes || g.cfg.AntiEntropyInterval != DefaultLANConfig().AntiEntropyInterval {
		t.Fatalf("defaults not applied: %+v", g.cfg)
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
