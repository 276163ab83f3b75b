package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/shoaldb/shoal/node"
)

// Defaults of the reconnection backoff of subscriptions.
const (
	DefaultReconnectDelay    = 100 * time.Millisecond
	DefaultMaxReconnectDelay = 5 * time.Second
)

// Options configure New. The zero value (and nil) means defaults; New
// copies the struct and never writes into the caller's value.
type Options struct {
	// Token is the bearer token sent with every request; "" sends none.
	Token string

	// TLSConfig is the TLS configuration for https addresses; nil = Go's
	// defaults. New clones it.
	TLSConfig *tls.Config
	// CAFile is a PEM file of certificates to trust for https addresses,
	// in addition to TLSConfig.RootCAs (or the system's roots).
	CAFile string
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool

	// HTTPClient sends the requests; nil = a client of New's own with a
	// copy of http.DefaultTransport. It must not have a Timeout (that would
	// cut subscriptions; use Options.Timeout), and it excludes TLSConfig,
	// CAFile and InsecureSkipVerify: configure its transport instead.
	HTTPClient *http.Client

	// Timeout bounds each call, from sending the request to reading the
	// answer; 0 = no bound. It does not bound WaitSynced (its ctx does) nor
	// subscriptions once their stream is open.
	Timeout time.Duration

	// ReconnectDelay is the first wait before a subscription reconnects
	// after its stream dropped; it doubles at each failed attempt up to
	// MaxReconnectDelay, and a server's "retry:" field replaces it. 0 =
	// DefaultReconnectDelay, and 0 MaxReconnectDelay =
	// DefaultMaxReconnectDelay.
	ReconnectDelay, MaxReconnectDelay time.Duration
	// MaxReconnects bounds how many reconnection attempts in a row a
	// subscription makes without receiving an event before it ends with
	// the last error: 0 = no bound, negative = it never reconnects (a
	// dropped stream ends it, with the error that dropped it).
	MaxReconnects int
}

// Client is a client of a shoal node's HTTP API with the methods of an
// embedded *node.Node: the same names, arguments, values and sentinel
// errors. It is safe for concurrent use, and a node.Store.
//
// Calls use the context of WithContext (none by default) and are bounded
// by Options.Timeout; WaitSynced and Subscribe take their own context too.
type Client struct {
	base    string // scheme://host[:port][/path], without a trailing '/'
	token   string
	hc      *http.Client
	ownHC   bool // New made hc: Close closes its idle connections
	timeout time.Duration
	retry   retryPolicy
	ctx     context.Context // nil = context.Background()
	state   *clientState    // shared by the copies WithContext makes
}

var _ node.Store = (*Client)(nil)

// clientState is what a Client and its WithContext copies share.
type clientState struct {
	mu     sync.Mutex
	closed bool
	subs   map[*Subscription]struct{}
}

// retryPolicy is how subscriptions reconnect.
type retryPolicy struct {
	delay, maxDelay time.Duration
	max             int
}

// New returns a client of the node whose HTTP API is at addr: a URL such as
// http://127.0.0.1:7070 or https://db.example:7070, or host:port (http).
// A path in addr prefixes every request's (a node behind a proxy).
func New(addr string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	hc, own, err := httpClient(&o)
	if err != nil {
		return nil, err
	}
	base, err := baseURL(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, token: o.Token, hc: hc, ownHC: own, timeout: o.Timeout,
		retry: retryPolicy{delay: o.ReconnectDelay, maxDelay: o.MaxReconnectDelay, max: o.MaxReconnects},
		state: &clientState{subs: map[*Subscription]struct{}{}}}
	if c.retry.delay <= 0 {
		c.retry.delay = DefaultReconnectDelay
	}
	if c.retry.maxDelay <= 0 {
		c.retry.maxDelay = DefaultMaxReconnectDelay
	}
	c.retry.maxDelay = max(c.retry.maxDelay, c.retry.delay)
	return c, nil
}

// baseURL checks and normalizes the address of New.
func baseURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("client: no server address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("client: server address: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("client: server address %q: want http or https", addr)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("client: server address %q: want scheme://host:port[/path]", addr)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// httpClient returns the HTTP client of the options and whether New made
// it.
func httpClient(o *Options) (*http.Client, bool, error) {
	tlsOpts := o.TLSConfig != nil || o.CAFile != "" || o.InsecureSkipVerify
	if o.HTTPClient != nil {
		if tlsOpts {
			return nil, false, errors.New("client: Options.HTTPClient excludes TLSConfig, CAFile and InsecureSkipVerify (configure its transport)")
		}
		return o.HTTPClient, false, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsOpts {
		cfg := &tls.Config{}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		if o.InsecureSkipVerify {
			cfg.InsecureSkipVerify = true //nolint:gosec // an explicit option, for tests
		}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, false, err
			}
			pool := cfg.RootCAs
			if pool == nil {
				if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
					pool = x509.NewCertPool()
				}
			} else {
				pool = pool.Clone()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, false, fmt.Errorf("%s: no PEM certificate found", o.CAFile)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr}, true, nil
}

// WithContext returns a shallow copy of c whose calls use ctx: they end
// with ctx's error when it is done (as http.Request.WithContext). The copy
// shares c's connections and subscriptions; closing either closes both.
func (c *Client) WithContext(ctx context.Context) *Client {
	if ctx == nil {
		panic("client: WithContext with a nil context")
	}
	c2 := *c
	c2.ctx = ctx
	return &c2
}

func (c *Client) context() context.Context {
	if c.ctx == nil {
		return context.Background()
	}
	return c.ctx
}

// Close ends the client's open subscriptions (waiting for them) and closes
// its idle connections; later calls return an error wrapping
// node.ErrClosed. Safe to call more than once.
func (c *Client) Close() error {
	c.state.mu.Lock()
	c.state.closed = true
	subs := make([]*Subscription, 0, len(c.state.subs))
	for s := range c.state.subs {
		subs = append(subs, s)
	}
	c.state.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
	return nil
}

var errClientClosed = fmt.Errorf("%w: client closed", node.ErrClosed)

func (c *Client) closed() bool {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	return c.state.closed
}

// Do sends one request to the API and decodes its JSON answer into out:
// for the endpoints and answer fields the typed methods do not cover (the
// status's digest and name, the members' raw answer, metrics). path is the
// API path ("/v1/status"), query its parameters (nil for none). body, when
// not nil, is sent as JSON: a json.RawMessage or []byte as is, anything
// else encoded with encoding/json. out may be nil (the answer is
// discarded), a *json.RawMessage (it receives the bytes) or what
// json.Unmarshal accepts. An error answer is an *APIError (see the error
// mapping in the package documentation).
func (c *Client) Do(method, path string, query url.Values, body, out any) error {
	ctx, cancel := c.callContext()
	defer cancel()
	return c.do(ctx, method, path, query, body, out)
}

// callContext is the context of one call: the client's, bounded by
// Options.Timeout.
func (c *Client) callContext() (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(c.context(), c.timeout)
	}
	return context.WithCancel(c.context())
}

// newRequest builds a request with the token and, when body is not nil, its
// JSON encoding.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	if c.closed() {
		return nil, errClientClosed
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		var b []byte
		switch v := body.(type) {
		case json.RawMessage:
			b = v
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				return nil, fmt.Errorf("client: encoding the body of %s %s: %w", method, path, err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends one request and decodes a JSON answer into out (see Do).
// Transport errors are returned as net/http gives them (they name the
// method and URL).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	req, err := c.newRequest(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		*raw = b
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}
