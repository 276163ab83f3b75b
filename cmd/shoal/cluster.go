//go:build shoal_http_draft

package main

import (
	"context"
	"log/slog"

	"github.com/shoaldb/shoal/node"
)

// configureGossip puts the gossip settings into the node options.
// Replication is wired here once node offers it.
func (c *AgentCommand) configureGossip(opts *node.Options) error { return nil }

// joinCluster joins the --join peers.
func (c *AgentCommand) joinCluster(ctx context.Context, log *slog.Logger) error { return nil }

// leaveCluster leaves the cluster gracefully.
func (c *AgentCommand) leaveCluster(ctx context.Context, log *slog.Logger) error { return nil }

// GossipAddr is the address gossip listens on.
func (c *AgentCommand) GossipAddr() string { return c.Config.GossipAddr }
