package main

import (
	"context"
	"crypto/subtle"
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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
	"github.com/shoaldb/shoal/node/resp"
)

const agentUsage = `Usage: shoal agent [flags]

Runs a shoal node: opens (or creates) the data directory, serves the HTTP API
and joins the cluster over gossip. With no --join it starts alone and is fully
usable offline; peers that join it later sync with it.

Every flag also reads SHOAL_<NAME> from the environment (--data-dir reads
SHOAL_DATA_DIR); flags win over the environment, which wins over the defaults.
Addresses default to loopback: pass e.g. --http 0.0.0.0:7070 to serve others.
--resp 6380 also serves the Redis protocol (any Redis client; AUTH takes the
API token).

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
	RESPAddr    string // the Redis-protocol endpoint; "" = off
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

	// Secrets from files (not visible in ps), and the explicit opt-outs of
	// the closed-by-default rule.
	TokenFile            string
	EncryptKeyFile       string
	InsecureNoAuth       bool // serve the HTTP API beyond loopback with no token
	InsecureNoEncryption bool // gossip and replicate beyond loopback with no key

	MaxConnections  int           // open HTTP connections at most (0 = default)
	HTTPReadTimeout time.Duration // a request (headers and body) must arrive within this

	// SecretFlags names the secrets given as command-line flags (visible to
	// other users in ps), for a warning.
	SecretFlags []string

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
	resp     *resp.Server
	respAddr string
	respDone chan struct{}
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
		MaxConnections:  defaultMaxConnections,
		HTTPReadTimeout: 30 * time.Second,
	}
}

// defaultMaxConnections bounds the HTTP API's open connections (each watch
// holds one).
const defaultMaxConnections = 1024

// registerAgentFlags binds the agent flags to cfg (whose values are the
// defaults shown).
func registerAgentFlags(fs *flag.FlagSet, cfg *AgentConfig) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "node name, unique in the cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (WAL, snapshots, identity)")
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "address the HTTP API listens on")
	fs.StringVar(&cfg.RESPAddr, "resp", cfg.RESPAddr, "address of the Redis-protocol (RESP) endpoint, e.g. 127.0.0.1:6380 (a bare port means loopback; off when empty); AUTH takes the API token")
	fs.StringVar(&cfg.GossipAddr, "gossip", cfg.GossipAddr, "address gossip (memberlist) binds to, TCP and UDP")
	fs.Var((*listFlag)(&cfg.Join), "join", "gossip addresses of peers to join, comma list (host:port,...)")
	fs.StringVar(&cfg.Token, "token", cfg.Token, "bearer token required on every API call (prefer --token-file or SHOAL_TOKEN: flags show in ps)")
	fs.StringVar(&cfg.TokenFile, "token-file", cfg.TokenFile, "file holding the bearer token")
	fs.StringVar(&cfg.EncryptKey, "encrypt-key", cfg.EncryptKey, "base64 key (16, 24 or 32 bytes) encrypting gossip and replication traffic (prefer --encrypt-key-file or SHOAL_ENCRYPT_KEY)")
	fs.StringVar(&cfg.EncryptKeyFile, "encrypt-key-file", cfg.EncryptKeyFile, "file holding the base64 encryption key")
	fs.StringVar(&cfg.KeyringFile, "keyring-file", cfg.KeyringFile, "file of base64 keys, one a line, the first the primary (key rotation; SIGHUP rereads it)")
	fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", cfg.InsecureNoAuth, "serve the HTTP API beyond loopback with no token: anyone who reaches it reads and writes everything")
	fs.BoolVar(&cfg.InsecureNoEncryption, "insecure-no-encryption", cfg.InsecureNoEncryption, "gossip and replicate beyond loopback with no key: traffic is readable and forgeable on the network")
	fs.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "open HTTP API connections at most (watches included), and as many on the RESP endpoint")
	fs.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", cfg.HTTPReadTimeout, "time a client has to send a whole request (headers and body)")
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
	c.Config.SecretFlags = secretFlagsIn(args)
	return c.Config.validate()
}

// secretFlagsIn names the secret-bearing flags given on the command line.
func secretFlagsIn(args []string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "token" || name == "encrypt-key") {
			out = append(out, "--"+name)
		}
	}
	return out
}

func (cfg *AgentConfig) validate() error {
	if _, err := parseSyncPolicy(cfg.Sync); err != nil {
		return usageError("--sync: %v", err)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if n := countSet(cfg.EncryptKey, cfg.EncryptKeyFile, cfg.KeyringFile); n > 1 {
		return usageError("give one of --encrypt-key, --encrypt-key-file and --keyring-file")
	}
	if cfg.Token != "" && cfg.TokenFile != "" {
		return usageError("give --token or --token-file, not both")
	}
	if cfg.MaxConnections <= 0 {
		return usageError("--max-connections must be positive")
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
	keys, err := cfg.keys()
	if err != nil {
		return err
	}
	token, err := cfg.token()
	if err != nil {
		return err
	}
	if cfg.RESPAddr != "" {
		addr, err := respListenAddr(cfg.RESPAddr)
		if err != nil {
			return err
		}
		cfg.RESPAddr = addr
	}
	if cfg.Name == "" || cfg.DataDir == "" || cfg.HTTPAddr == "" || cfg.GossipAddr == "" {
		return usageError("--name, --data-dir, --http and --gossip must not be empty")
	}
	return cfg.checkExposure(len(keys) > 0, token != "")
}

func countSet(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}

// token is the bearer token, from --token or --token-file.
func (cfg *AgentConfig) token() (string, error) {
	if cfg.TokenFile == "" {
		return cfg.Token, nil
	}
	b, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return "", usageError("--token-file: %v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", usageError("--token-file %s is empty", cfg.TokenFile)
	}
	return t, nil
}

// keys are the gossip keys, from --encrypt-key, --encrypt-key-file or
// --keyring-file.
func (cfg *AgentConfig) keys() ([][]byte, error) {
	if cfg.EncryptKeyFile != "" {
		b, err := os.ReadFile(cfg.EncryptKeyFile)
		if err != nil {
			return nil, usageError("--encrypt-key-file: %v", err)
		}
		return loadKeys(strings.TrimSpace(string(b)), "")
	}
	return loadKeys(cfg.EncryptKey, cfg.KeyringFile)
}

// checkExposure is the closed-by-default rule: beyond loopback, gossip and
// the data streams need a key and the HTTP API a token, unless an insecure
// flag says the operator knows.
func (cfg *AgentConfig) checkExposure(keyed, authed bool) error {
	gossipHosts := []string{cfg.GossipAddr}
	if cfg.Advertise != "" {
		gossipHosts = append(gossipHosts, cfg.Advertise)
	}
	for _, a := range gossipHosts {
		if !keyed && !cfg.InsecureNoEncryption && !loopbackAddr(a) {
			return usageError("gossip on %s is reachable beyond this machine, and without a key anyone on the network can join, read and write the data: "+
				"give --encrypt-key-file (or --keyring-file, SHOAL_ENCRYPT_KEY), or --insecure-no-encryption to run open", a)
		}
	}
	if !authed && !cfg.InsecureNoAuth && !loopbackAddr(cfg.HTTPAddr) {
		return usageError("the HTTP API on %s is reachable beyond this machine, and without a token anyone who reaches it reads and writes everything: "+
			"give --token-file (or SHOAL_TOKEN), or --insecure-no-auth to run open", cfg.HTTPAddr)
	}
	if cfg.RESPAddr != "" && !authed && !cfg.InsecureNoAuth && !loopbackAddr(cfg.RESPAddr) {
		return usageError("the RESP endpoint on %s is reachable beyond this machine, and without a token (its AUTH password) anyone who reaches it reads and writes everything: "+
			"give --token-file (or SHOAL_TOKEN), or --insecure-no-auth to run open", cfg.RESPAddr)
	}
	return nil
}

// respListenAddr completes --resp: a bare port means loopback (the
// default host everywhere in the agent); host:port and :port (every
// interface, as for --http) are taken as they are.
func respListenAddr(a string) (string, error) {
	if _, err := strconv.ParseUint(a, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", a), nil
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", usageError("--resp: want host:port or a port, got %q", a)
	}
	return a, nil
}

// loopbackAddr reports whether host:port listens on loopback only: a
// loopback IP, or a name all of whose addresses are loopback. An empty or
// unspecified host (all interfaces) is not.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip.IsLoopback()
	}
	if host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
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
		buildInfo(),
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

	token, err := cfg.token()
	if err != nil {
		return err
	}
	c.handler = httpapi.NewHandler(n, &httpapi.Options{
		Name:         cfg.Name,
		Token:        token,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Gatherer:     c.registry,
		Registerer:   c.registry,
		Logger:       log,
	})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP API: %w", err)
	}
	ln = netutil.LimitListener(ln, cfg.MaxConnections)
	c.ln = ln
	scheme := "http"
	var handler http.Handler = c.handler
	if cfg.Pprof {
		handler = withPprof(c.handler, token)
	}
	c.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.HTTPReadTimeout,
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
	log.Info("serving the HTTP API", "url", c.url, "auth", token != "")
	if cfg.RESPAddr != "" {
		if err := c.serveRESP(cfg, token, log); err != nil {
			return err
		}
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && token == "" {
		log.Warn("--insecure-no-auth: the HTTP API is reachable beyond this machine and requires no token")
	}
	if opts.Gossip != nil && len(opts.Gossip.SecretKeys) == 0 && !loopbackAddr(cfg.GossipAddr) {
		log.Warn("--insecure-no-encryption: gossip and replication are reachable beyond this machine with no key")
	}
	for _, f := range cfg.SecretFlags {
		log.Warn("a secret was given on the command line, where other users of this machine can read it (ps); use a file or the environment", "flag", f)
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
	if c.resp != nil {
		// Its connections end after the command they are running: the
		// writes the node accepted commit before the node closes.
		_ = c.resp.Close()
		<-c.respDone
	}
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

// bearerMatches checks an Authorization header against the token in
// constant time; the scheme is case-insensitive (RFC 9110).
func bearerMatches(header, token string) bool {
	scheme, cred, ok := strings.Cut(header, " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(token)) == 1
}

// ReloadKeys rereads the key flags (--keyring-file, --encrypt-key-file)
// and puts the keys in use without a restart: the first is the primary,
// keys no longer listed are removed. The agent calls it on SIGHUP.
func (c *AgentCommand) ReloadKeys() error {
	if c.node == nil {
		return errors.New("reload keys: the node is not running")
	}
	keys, err := c.Config.keys()
	if err != nil {
		return fmt.Errorf("reload keys: %w", err)
	}
	if len(keys) == 0 {
		return errors.New("reload keys: the agent runs without encryption; a key cannot be added without a restart")
	}
	if err := c.node.SetKeys(keys); err != nil {
		return fmt.Errorf("reload keys: %w", err)
	}
	return nil
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
		if token != "" && !bearerMatches(r.Header.Get("Authorization"), token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
			http.Error(w, `{"error":"missing or wrong bearer token"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveRESP starts the Redis-protocol endpoint (package resp) with the
// HTTP API's token as its password and the same connection cap.
func (c *AgentCommand) serveRESP(cfg AgentConfig, token string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.RESPAddr)
	if err != nil {
		return fmt.Errorf("RESP endpoint: %w", err)
	}
	c.resp = resp.New(c.node, &resp.Options{
		Password:       token,
		Version:        versionString(),
		MaxConnections: cfg.MaxConnections,
		MaxBulkBytes:   int(cfg.MaxBodyBytes),
		Logger:         log,
	})
	c.respAddr = ln.Addr().String()
	c.respDone = make(chan struct{})
	go func() {
		defer close(c.respDone)
		if err := c.resp.Serve(ln); err != nil && !errors.Is(err, resp.ErrServerClosed) {
			log.Error("the RESP endpoint stopped", "err", err) // the HTTP API goes on
		}
	}()
	log.Info("serving the Redis protocol (RESP)", "addr", c.respAddr, "auth", token != "")
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && token == "" {
		log.Warn("--insecure-no-auth: the RESP endpoint is reachable beyond this machine and requires no password")
	}
	return nil
}

// RESPAddr is the address of the RESP endpoint once Run returned ("" when
// off).
func (c *AgentCommand) RESPAddr() string { return c.respAddr }

// buildInfo is shoal_build_info: 1, labelled with the version and the Go
// toolchain, so dashboards can show which build each node runs.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "shoal_build_info",
		Help:        "1, labelled with the shoal version and the Go version that built it.",
		ConstLabels: prometheus.Labels{"version": versionString(), "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
