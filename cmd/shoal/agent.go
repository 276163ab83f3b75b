package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

const agentUsage = `Usage: shoal agent [flags]

Runs a shoal node: opens (or creates) the data directory, serves the HTTP API
and joins the cluster over gossip. With no --join it starts alone and is fully
usable offline; peers that join it later sync with it.

Every flag also reads SHOAL_<NAME> from the environment (--data-dir reads
SHOAL_DATA_DIR); flags win over the environment, which wins over the defaults.
Addresses default to loopback: pass e.g. --http 0.0.0.0:7070 to serve others.

SIGINT or SIGTERM shuts down gracefully: stop accepting writes, end watches,
leave the cluster, finish in-flight requests, flush and close the data
directory. A second signal exits at once.
`

// AgentConfig is the configuration of one node process, from flags and
// environment.
type AgentConfig struct {
	Name        string
	DataDir     string
	HTTPAddr    string
	GossipAddr  string
	Join        []string
	Token       string
	EncryptKey  string
	KeyringFile string
	TLSCert     string
	TLSKey      string

	DataPort      int    // replication data streams; 0 = a free port (advertised over gossip)
	Advertise     string // gossip address peers use to reach us; "" = the bound one
	ClusterLabel  string
	GossipProfile string // auto, local or lan

	Sync               string
	SyncInterval       time.Duration
	SnapshotEveryOps   int
	SnapshotEveryBytes int64
	SegmentBytes       int64
	MaxValueBytes      int64
	MaxBodyBytes       int64

	LogLevel  string
	LogFormat string
	Pprof     bool // serve /debug/pprof/ on the HTTP API (behind the token)

	ShutdownTimeout time.Duration
}

// AgentCommand runs one node: ParseFlags, Run (returns once serving), then
// Close (graceful shutdown). End-to-end tests and `shoal dev` reuse it in
// process.
type AgentCommand struct {
	Config AgentConfig
	// Logger, when not nil, is used instead of one built from the log flags.
	Logger *slog.Logger
	// Stderr is where logs go when Logger is nil.
	Stderr io.Writer

	node     *node.Node
	handler  *httpapi.Handler
	server   *http.Server
	ln       net.Listener
	registry *prometheus.Registry
	url      string
	serveErr chan error

	closeOnce sync.Once
	closeErr  error
}

// NewAgentCommand returns an agent with the built-in defaults.
func NewAgentCommand(stderr io.Writer) *AgentCommand {
	return &AgentCommand{Stderr: stderr, Config: defaultAgentConfig()}
}

func defaultAgentConfig() AgentConfig {
	host, _ := os.Hostname()
	if host == "" {
		host = "shoal"
	}
	return AgentConfig{
		Name:            host,
		DataDir:         "./shoal-data",
		HTTPAddr:        "127.0.0.1:7070",
		GossipAddr:      "127.0.0.1:7946",
		GossipProfile:   "auto",
		Sync:            "always",
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 10 * time.Second,
	}
}

// registerAgentFlags binds the agent flags to cfg (whose values are the
// defaults shown).
func registerAgentFlags(fs *flag.FlagSet, cfg *AgentConfig) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "node name, unique in the cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (WAL, snapshots, identity)")
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "address the HTTP API listens on")
	fs.StringVar(&cfg.GossipAddr, "gossip", cfg.GossipAddr, "address gossip (memberlist) binds to, TCP and UDP")
	fs.Var((*listFlag)(&cfg.Join), "join", "gossip addresses of peers to join, comma list (host:port,...)")
	fs.StringVar(&cfg.Token, "token", cfg.Token, "bearer token required on every API call (empty = no auth)")
	fs.StringVar(&cfg.EncryptKey, "encrypt-key", cfg.EncryptKey, "base64 AES key (16, 24 or 32 bytes) encrypting gossip and replication traffic")
	fs.StringVar(&cfg.KeyringFile, "keyring-file", cfg.KeyringFile, "file of base64 keys, one a line, the first the primary (key rotation)")
	fs.IntVar(&cfg.DataPort, "data-port", cfg.DataPort, "port of the replication data streams, on the --gossip host (0 = a free port, advertised over gossip)")
	fs.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "gossip address other nodes use to reach this one (default: the --gossip address)")
	fs.StringVar(&cfg.ClusterLabel, "cluster-label", cfg.ClusterLabel, "cluster label: nodes with another label are refused")
	fs.StringVar(&cfg.GossipProfile, "gossip-profile", cfg.GossipProfile, "gossip timings: local (fast, one machine), lan, or auto (local on loopback)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate: serve the HTTP API over HTTPS")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&cfg.Sync, "sync", cfg.Sync, "WAL durability: always (a write returns once fsynced), interval, never")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", cfg.SyncInterval, "fsync period under --sync interval (0 = 1s)")
	fs.IntVar(&cfg.SnapshotEveryOps, "snapshot-every-ops", cfg.SnapshotEveryOps, "snapshot after this many WAL records (0 = default, -1 = never by count)")
	fs.Var((*sizeFlag)(&cfg.SnapshotEveryBytes), "snapshot-every-bytes", "snapshot after this many WAL bytes, e.g. 256MiB (0 = default)")
	fs.Var((*sizeFlag)(&cfg.SegmentBytes), "segment-bytes", "WAL segment size, e.g. 64MiB (0 = default)")
	fs.Var((*sizeFlag)(&cfg.MaxValueBytes), "max-value-bytes", "largest value of one write (0 = node default, 1MiB)")
	fs.Var((*sizeFlag)(&cfg.MaxBodyBytes), "max-body-bytes", "largest HTTP request body (0 = default, 4MiB)")
	fs.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "serve Go profiling at /debug/pprof/ on the HTTP API (requires the token when one is set)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful shutdown waits for in-flight requests")
}

// ParseFlags reads the configuration from args and the environment.
func (c *AgentCommand) ParseFlags(args []string, getenv func(string) string) error {
	fs := newFlagSet("agent", c.stderr(), agentUsage+"\n")
	registerAgentFlags(fs, &c.Config)
	pos, err := parseArgs(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("agent takes no arguments, got %q", pos)
	}
	return c.Config.validate()
}

func (cfg *AgentConfig) validate() error {
	if _, err := parseSyncPolicy(cfg.Sync); err != nil {
		return usageError("--sync: %v", err)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if cfg.EncryptKey != "" && cfg.KeyringFile != "" {
		return usageError("give --encrypt-key or --keyring-file, not both")
	}
	if _, err := parseLogLevel(cfg.LogLevel); err != nil {
		return usageError("--log-level: %v", err)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return usageError("--log-format: want text or json, got %q", cfg.LogFormat)
	}
	switch cfg.GossipProfile {
	case "auto", "local", "lan":
	default:
		return usageError("--gossip-profile: want auto, local or lan, got %q", cfg.GossipProfile)
	}
	if _, err := loadKeys(cfg.EncryptKey, cfg.KeyringFile); err != nil {
		return err
	}
	if cfg.Name == "" || cfg.DataDir == "" || cfg.HTTPAddr == "" || cfg.GossipAddr == "" {
		return usageError("--name, --data-dir, --http and --gossip must not be empty")
	}
	return nil
}

func parseSyncPolicy(s string) (node.SyncPolicy, error) {
	switch strings.ToLower(s) {
	case "always", "":
		return node.SyncAlways, nil
	case "interval":
		return node.SyncInterval, nil
	case "never":
		return node.SyncNever, nil
	}
	return 0, fmt.Errorf("want always, interval or never, got %q", s)
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// newLogger builds the process logger from the log flags.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLogLevel(level)
	o := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func (c *AgentCommand) stderr() io.Writer {
	if c.Stderr != nil {
		return c.Stderr
	}
	return os.Stderr
}

// URL is the base URL of the HTTP API, once Run returned.
func (c *AgentCommand) URL() string { return c.url }

// Node is the running node, once Run returned.
func (c *AgentCommand) Node() *node.Node { return c.node }

// Err delivers a fatal serving error (the listener failed); it is closed
// when the server stops.
func (c *AgentCommand) Err() <-chan error { return c.serveErr }

// Run opens the node and starts serving; it returns once the API listens.
// On error the caller still calls Close.
func (c *AgentCommand) Run(ctx context.Context) error {
	cfg := c.Config
	if c.Logger == nil {
		c.Logger = newLogger(c.stderr(), cfg.LogLevel, cfg.LogFormat)
	}
	log := c.Logger.With("node", cfg.Name)
	c.serveErr = make(chan error, 1)

	policy, err := parseSyncPolicy(cfg.Sync)
	if err != nil {
		return usageError("--sync: %v", err)
	}
	c.registry = prometheus.NewRegistry()
	c.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	opts := &node.Options{
		Sync:               policy,
		SyncInterval:       cfg.SyncInterval,
		SegmentBytes:       cfg.SegmentBytes,
		MaxValueBytes:      int(cfg.MaxValueBytes),
		SnapshotEveryOps:   cfg.SnapshotEveryOps,
		SnapshotEveryBytes: cfg.SnapshotEveryBytes,
		Logger:             log,
		Registerer:         c.registry,
	}
	if err := c.configureGossip(opts); err != nil {
		return err
	}
	n, err := node.Open(cfg.DataDir, opts)
	if err != nil {
		return fmt.Errorf("opening %s: %w", cfg.DataDir, err)
	}
	c.node = n

	c.handler = httpapi.NewHandler(n, &httpapi.Options{
		Name:         cfg.Name,
		Token:        cfg.Token,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Gatherer:     c.registry,
		Logger:       log,
	})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP API: %w", err)
	}
	c.ln = ln
	scheme := "http"
	var handler http.Handler = c.handler
	if cfg.Pprof {
		handler = withPprof(c.handler, cfg.Token)
	}
	c.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("loading the TLS certificate: %w", err)
		}
		c.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	c.url = scheme + "://" + ln.Addr().String()
	go func() {
		defer close(c.serveErr)
		var err error
		if scheme == "https" {
			err = c.server.ServeTLS(ln, "", "")
		} else {
			err = c.server.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.serveErr <- fmt.Errorf("HTTP API: %w", err)
		}
	}()
	log.Info("serving the HTTP API", "url", c.url, "auth", cfg.Token != "")
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && cfg.Token == "" {
		log.Warn("the HTTP API is reachable beyond this machine and requires no token (set --token)")
	}
	return c.joinCluster(ctx, log)
}

// maxLeaveTime bounds the leave step of a graceful shutdown.
const maxLeaveTime = 3 * time.Second

// Close shuts the node down gracefully: stop accepting writes and end the
// watches, leave the cluster, let in-flight requests finish (up to
// --shutdown-timeout), then close the node (flush and fsync the WAL). Safe
// to call twice; safe after a failed Run.
func (c *AgentCommand) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *AgentCommand) close() error {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := c.Config.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if c.handler != nil {
		c.handler.Drain()
	}
	// Leaving is a courtesy to the peers (they forget us at once instead of
	// detecting a failure): bounded so that it never holds up the flush.
	lctx, lcancel := context.WithTimeout(ctx, min(timeout, maxLeaveTime))
	if err := c.leaveCluster(lctx, log); err != nil {
		errs = append(errs, err)
	}
	lcancel()
	if c.server != nil {
		if err := c.server.Shutdown(ctx); err != nil {
			log.Warn("in-flight requests did not finish in time", "err", err)
			_ = c.server.Close()
		}
	} else if c.ln != nil {
		_ = c.ln.Close()
	}
	if c.node != nil {
		if err := c.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the node: %w", err))
		}
		log.Info("node closed")
	}
	return errors.Join(errs...)
}

// withPprof serves net/http/pprof under /debug/pprof/ next to the API,
// with the same bearer token.
func withPprof(api http.Handler, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			api.ServeHTTP(w, r)
			return
		}
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
			http.Error(w, `{"error":"missing or wrong bearer token"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
