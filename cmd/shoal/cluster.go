package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/node"
)

// configureGossip puts the gossip settings of the agent into the node
// options. Every agent gossips: with no --join it is simply the first
// member, and peers that join it later sync with it.
func (c *AgentCommand) configureGossip(opts *node.Options) error {
	cfg := c.Config
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return usageError("--gossip %q: %v", cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return usageError("--gossip %q: bad port", cfg.GossipAddr)
	}
	var g *gossip.Config
	switch cfg.GossipProfile {
	case "local":
		g = gossip.DefaultLocalConfig()
	case "lan":
		g = gossip.DefaultLANConfig()
	default: // auto: the fast local timings when bound to loopback
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
			g = gossip.DefaultLocalConfig()
		} else {
			g = gossip.DefaultLANConfig()
		}
	}
	g.Name = cfg.Name
	g.BindAddr, g.BindPort = host, port
	g.DataPort = cfg.DataPort
	g.Label = cfg.ClusterLabel
	if cfg.Advertise != "" {
		ah, ap, err := net.SplitHostPort(cfg.Advertise)
		if err != nil {
			return usageError("--advertise %q: %v", cfg.Advertise, err)
		}
		g.AdvertiseAddr = ah
		if g.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return usageError("--advertise %q: bad port", cfg.Advertise)
		}
	}
	keys, err := cfg.keys()
	if err != nil {
		return err
	}
	g.SecretKeys = keys
	opts.Gossip = g
	return nil
}

// loadKeys reads the gossip encryption keys: one base64 key, or a keyring
// file of base64 keys, one a line (blank lines and # comments skipped), the
// first being the primary.
func loadKeys(key, file string) ([][]byte, error) {
	var texts []string
	if key != "" {
		texts = append(texts, key)
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--keyring-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				texts = append(texts, l)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--keyring-file: %w", err)
		}
		if len(texts) == 0 {
			return nil, fmt.Errorf("--keyring-file %s holds no key", file)
		}
	}
	var keys [][]byte
	for i, t := range texts {
		k, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return nil, usageError("encryption key %d is not base64: %v", i+1, err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, usageError("encryption key %d is %d bytes; want 16, 24 or 32 (AES-128/192/256)", i+1, n)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// joinCluster joins the --join peers. Peers that are not up yet are not an
// error: the node works alone and keeps re-joining them in the background.
func (c *AgentCommand) joinCluster(ctx context.Context, log *slog.Logger) error {
	log.Info("gossip listening", "addr", c.GossipAddr())
	if len(c.Config.Join) == 0 {
		return nil
	}
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.node.Join(jctx, c.Config.Join...); err != nil {
		if ctx.Err() != nil {
			return err
		}
		log.Warn("no peer answered yet; running alone and retrying in the background", "join", c.Config.Join, "err", err)
		return nil
	}
	log.Info("joined the cluster", "join", c.Config.Join, "members", len(c.node.Members()))
	return nil
}

// leaveCluster tells the peers this node leaves, so they forget it at once
// instead of waiting for failure detection.
func (c *AgentCommand) leaveCluster(ctx context.Context, log *slog.Logger) error {
	if c.node == nil {
		return nil
	}
	if err := c.node.Leave(ctx); err != nil && !errors.Is(err, node.ErrOffline) && !errors.Is(err, node.ErrClosed) {
		log.Warn("leaving the cluster", "err", err)
	}
	return nil
}

// GossipAddr is the address gossip listens on (the real port when --gossip
// asked for port 0), once Run returned.
func (c *AgentCommand) GossipAddr() string {
	if c.node != nil {
		for _, m := range c.node.Members() {
			if m.Self && m.Addr != "" {
				return m.Addr
			}
		}
	}
	return c.Config.GossipAddr
}
