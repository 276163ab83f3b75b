package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

const devUsage = `Usage: shoal dev [flags]

Runs a local development cluster of --nodes nodes in one process (like
"consul agent -dev"): each node has its own data directory, HTTP API and
gossip port on loopback, and they join each other. It prints each node's URL.
Data goes to a temporary directory removed on exit, unless --data-dir is
given (then node<i>/ under it is kept and reused).
`

// DevCommand runs a local cluster in one process.
type DevCommand struct {
	Nodes      int
	DataDir    string
	HTTPPort   int // first HTTP port; 0 = free ports
	GossipPort int // first gossip port; 0 = free ports
	Token      string
	Sync       string
	LogLevel   string
	LogFormat  string
	Stdout     io.Writer
	Stderr     io.Writer

	agents  []*AgentCommand
	tempDir string
	errc    chan error
	once    sync.Once
	err     error
}

// ParseFlags reads the dev cluster's flags.
func (d *DevCommand) ParseFlags(args []string, getenv func(string) string) error {
	fs := newFlagSet("dev", d.Stderr, devUsage+"\n")
	fs.IntVar(&d.Nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&d.DataDir, "data-dir", "", "keep the data under this directory (default: a temporary directory)")
	fs.IntVar(&d.HTTPPort, "http-port", 7070, "HTTP port of the first node; the others count up (0 = free ports)")
	fs.IntVar(&d.GossipPort, "gossip-port", 7946, "gossip port of the first node; the others count up (0 = free ports)")
	fs.StringVar(&d.Token, "token", "", "bearer token required by every node's API")
	fs.StringVar(&d.Sync, "sync", "always", "WAL durability: always, interval, never")
	fs.StringVar(&d.LogLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&d.LogFormat, "log-format", "text", "log format: text or json")
	pos, err := parseArgs(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("dev takes no arguments, got %q", pos)
	}
	if d.Nodes < 1 || d.Nodes > 64 {
		return usageError("--nodes: want 1 to 64, got %d", d.Nodes)
	}
	return nil
}

func portAddr(base, i int) (string, error) {
	if base == 0 {
		return freeLoopbackAddr()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)), nil
}

// Run starts the nodes, each joining the first, and prints their URLs.
func (d *DevCommand) Run(ctx context.Context) error {
	d.errc = make(chan error, d.Nodes)
	root := d.DataDir
	if root == "" {
		dir, err := os.MkdirTemp("", "shoal-dev-")
		if err != nil {
			return err
		}
		d.tempDir, root = dir, dir
	}
	var firstGossip string
	for i := 0; i < d.Nodes; i++ {
		httpAddr, err := portAddr(d.HTTPPort, i)
		if err != nil {
			return err
		}
		gossipAddr, err := portAddr(d.GossipPort, i)
		if err != nil {
			return err
		}
		a := NewAgentCommand(d.Stderr)
		a.Config.Name = fmt.Sprintf("node%d", i+1)
		a.Config.DataDir = filepath.Join(root, a.Config.Name)
		a.Config.HTTPAddr = httpAddr
		a.Config.GossipAddr = gossipAddr
		a.Config.Token = d.Token
		a.Config.Sync = d.Sync
		a.Config.LogLevel = d.LogLevel
		a.Config.LogFormat = d.LogFormat
		if i > 0 {
			a.Config.Join = []string{firstGossip}
		}
		if err := a.Config.validate(); err != nil {
			return err
		}
		d.agents = append(d.agents, a)
		if err := a.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", a.Config.Name, err)
		}
		firstGossip = d.agents[0].GossipAddr()
		go func(a *AgentCommand) {
			if err, ok := <-a.Err(); ok && err != nil {
				d.errc <- fmt.Errorf("%s: %w", a.Config.Name, err)
			}
		}(a)
	}
	where := root
	if d.tempDir != "" {
		where += " (removed on exit)"
	}
	fmt.Fprintf(d.Stdout, "shoal dev: %d nodes, data in %s\n", d.Nodes, where)
	for _, a := range d.agents {
		fmt.Fprintf(d.Stdout, "  %-8s %s   gossip %s\n", a.Config.Name, a.URL(), a.GossipAddr())
	}
	if len(d.agents) > 1 {
		fmt.Fprintf(d.Stdout, "Try:\n  shoal put hello '\"world\"' --addr %s\n  shoal get hello --addr %s\n",
			d.agents[0].URL(), d.agents[len(d.agents)-1].URL())
	}
	fmt.Fprintln(d.Stdout, "Press Ctrl-C to stop.")
	return nil
}

// Agents are the running nodes.
func (d *DevCommand) Agents() []*AgentCommand { return d.agents }

// Err delivers the first fatal error of any node.
func (d *DevCommand) Err() <-chan error { return d.errc }

// Close shuts every node down gracefully, one after the other (a node
// leaving while the others are up is acknowledged at once; all leaving
// together would wait on each other), and removes the temporary data
// directory. Safe to call twice.
func (d *DevCommand) Close() error {
	d.once.Do(func() {
		var errs []error
		for i := len(d.agents) - 1; i >= 0; i-- {
			a := d.agents[i]
			if err := a.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a.Config.Name, err))
			}
		}
		if d.tempDir != "" {
			errs = append(errs, os.RemoveAll(d.tempDir))
		}
		d.err = errors.Join(errs...)
	})
	return d.err
}

func (m *Main) runDev(ctx context.Context, args []string) error {
	d := &DevCommand{Stdout: m.Stdout, Stderr: m.Stderr}
	if err := d.ParseFlags(args, m.Getenv); err != nil {
		return err
	}
	if err := d.Run(ctx); err != nil {
		_ = d.Close()
		return err
	}
	return m.runUntilSignal(ctx, d)
}
