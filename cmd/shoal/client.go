package main

import (
	"bufio"
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
	"strconv"
	"strings"
	"time"
)

// Client speaks shoal's HTTP API. The zero value is not usable: set Addr.
type Client struct {
	Addr  string       // base URL, e.g. http://127.0.0.1:7070
	Token string       // bearer token; "" sends none
	HTTP  *http.Client // nil = a client with no overall timeout (watch streams)
}

// APIError is an error answer of the server: its status and the message of
// its {"error": "..."} body.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// newHTTPClient returns an HTTP client that trusts caFile (a PEM bundle) in
// addition to the system roots when it is set.
func newHTTPClient(caFile string, insecure bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" || insecure {
		cfg := &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // explicit opt-in flag
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, err
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no PEM certificate found", caFile)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr}, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// keyPath is the API path of a key; the key is escaped as one path segment
// so keys holding '/', '?', '%' or spaces travel intact.
func keyPath(key string, action ...string) string {
	p := "/v1/kv/" + url.PathEscape(key)
	for _, a := range action {
		p += "/" + a
	}
	return p
}

// newRequest builds a request with the token and, when body is not nil, its
// JSON encoding (a json.RawMessage is sent as is).
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	base := strings.TrimRight(c.Addr, "/")
	if base == "" {
		return nil, errors.New("no server address (--addr or SHOAL_ADDR)")
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
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
				return nil, err
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
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// Do sends one request and decodes a JSON answer into out (when out is not
// nil and the answer has a body). An error status becomes an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		b, err := io.ReadAll(resp.Body)
		*raw = b
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// readAPIError turns an error answer into an *APIError, keeping the
// server's message.
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	} else if s := strings.TrimSpace(string(b)); s != "" {
		msg = s
	}
	return &APIError{Status: resp.StatusCode, Message: msg}
}

// ValueAnswer is the answer of the key endpoints.
type ValueAnswer struct {
	Key      string          `json:"key"`
	Type     string          `json:"type"`
	Value    json.RawMessage `json:"value,omitempty"`
	Siblings []SiblingAnswer `json:"siblings,omitempty"`
}

// SiblingAnswer is one concurrent value of a register (GET ?siblings=true).
type SiblingAnswer struct {
	Value  json.RawMessage `json:"value"`
	Origin string          `json:"origin"`
	Time   string          `json:"time"`
}

// KeyInfoAnswer is one entry of GET /v1/kv.
type KeyInfoAnswer struct {
	Key  string `json:"key"`
	Type string `json:"type"`
}

// Event is one change event of GET /v1/watch.
type Event struct {
	ID    string          `json:"-"` // the SSE id: the WAL offset of the change
	Raw   json.RawMessage `json:"-"` // the event's data as sent
	Key   string          `json:"key"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value,omitempty"`
	// Deleted reports that the key was removed.
	Deleted bool   `json:"deleted,omitempty"`
	Origin  string `json:"origin,omitempty"`
	Offset  uint64 `json:"offset"`
}

// Get reads a key. siblings asks for the concurrent values of a register.
func (c *Client) Get(ctx context.Context, key string, siblings bool) (*ValueAnswer, error) {
	var q url.Values
	if siblings {
		q = url.Values{"siblings": {"true"}}
	}
	var a ValueAnswer
	if err := c.Do(ctx, http.MethodGet, keyPath(key), q, nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Put writes a register; value is the JSON text of the value.
func (c *Client) Put(ctx context.Context, key string, value json.RawMessage) (*ValueAnswer, error) {
	var a ValueAnswer
	if err := c.Do(ctx, http.MethodPut, keyPath(key), nil, value, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Delete removes a key.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.Do(ctx, http.MethodDelete, keyPath(key), nil, nil, nil)
}

// Incr adds by to a counter and returns its new local value.
func (c *Client) Incr(ctx context.Context, key string, by int64) (*ValueAnswer, error) {
	var a ValueAnswer
	if err := c.Do(ctx, http.MethodPost, keyPath(key, "incr"), nil, map[string]int64{"by": by}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SetAdd adds members to a set.
func (c *Client) SetAdd(ctx context.Context, key string, members ...string) (*ValueAnswer, error) {
	var a ValueAnswer
	if err := c.Do(ctx, http.MethodPost, keyPath(key, "add"), nil, map[string][]string{"members": members}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SetRemove removes members from a set.
func (c *Client) SetRemove(ctx context.Context, key string, members ...string) (*ValueAnswer, error) {
	var a ValueAnswer
	if err := c.Do(ctx, http.MethodPost, keyPath(key, "remove"), nil, map[string][]string{"members": members}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Patch updates fields of a document; patch is the JSON body of PATCH
// /v1/kv/{key}.
func (c *Client) Patch(ctx context.Context, key string, patch json.RawMessage) (*ValueAnswer, error) {
	var a ValueAnswer
	if err := c.Do(ctx, http.MethodPatch, keyPath(key), nil, patch, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Keys lists keys under prefix, sorted; limit <= 0 lists all.
func (c *Client) Keys(ctx context.Context, prefix string, limit int) ([]KeyInfoAnswer, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var a struct {
		Keys []KeyInfoAnswer `json:"keys"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/kv", q, nil, &a); err != nil {
		return nil, err
	}
	return a.Keys, nil
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (map[string]any, error) {
	var a map[string]any
	if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, nil, &a); err != nil {
		return nil, err
	}
	return a, nil
}

// Digest returns the state digest of the node.
func (c *Client) Digest(ctx context.Context) (string, error) {
	var a struct {
		Digest string `json:"digest"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, nil, &a); err != nil {
		return "", err
	}
	return a.Digest, nil
}

// WatchOptions select where a watch starts.
type WatchOptions struct {
	Prefix string
	// From, when not nil, starts at this WAL offset (inclusive): the events
	// the log still holds from there are replayed first.
	From *uint64
	// LastEventID, when not empty, resumes after the event with this id (the
	// SSE way; it wins over From on the server).
	LastEventID string
}

// Watch streams change events until ctx ends or the server closes the
// stream. fn is called for every event in order; an error from fn stops the
// watch and is returned.
func (c *Client) Watch(ctx context.Context, o WatchOptions, fn func(Event) error) error {
	q := url.Values{}
	if o.Prefix != "" {
		q.Set("prefix", o.Prefix)
	}
	if o.From != nil {
		q.Set("from", strconv.FormatUint(*o.From, 10))
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/watch", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if o.LastEventID != "" {
		req.Header.Set("Last-Event-ID", o.LastEventID)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	return readSSE(resp.Body, fn)
}

// readSSE decodes a text/event-stream body: "id:", "event:" and "data:"
// lines, a blank line ending each event, ':' lines being comments
// (keep-alives). An "error" event ends the stream with the server's error.
func readSSE(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, kind string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data == nil {
				id, kind = "", ""
				continue
			}
			if kind == "error" {
				var e struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal(data, &e)
				return &APIError{Status: http.StatusServiceUnavailable, Message: e.Error}
			}
			ev := Event{ID: id, Raw: append(json.RawMessage(nil), data...)}
			if err := json.Unmarshal(data, &ev); err != nil {
				return fmt.Errorf("watch: bad event %q: %w", data, err)
			}
			if err := fn(ev); err != nil {
				return err
			}
			id, kind, data = "", "", nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				kind = value
			case "data":
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// WaitSynced waits until the given peers (all members when empty) hold
// every write this node made before the call, or the timeout passes.
func (c *Client) WaitSynced(ctx context.Context, peers []string, timeout time.Duration) (map[string]any, error) {
	body := map[string]any{"peers": peers}
	if timeout > 0 {
		body["timeout"] = timeout.String()
	}
	var a map[string]any
	if err := c.Do(ctx, http.MethodPost, "/v1/sync/wait", nil, body, &a); err != nil {
		return nil, err
	}
	return a, nil
}
