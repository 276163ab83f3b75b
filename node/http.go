//go:build shoal_http_draft

package node

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP API limits and defaults.
const (
	// DefaultMaxBodyBytes bounds the body of one key request (PUT, PATCH,
	// incr, add, remove): a 1 MiB value with room for its JSON spelling.
	DefaultMaxBodyBytes = 4 << 20
	// DefaultMaxBatchBodyBytes bounds the body of POST /v1/batch.
	DefaultMaxBatchBodyBytes = 16 << 20
	// DefaultWatchKeepAlive is the period of the SSE comment line that keeps
	// idle watch connections (and proxies) alive.
	DefaultWatchKeepAlive = 15 * time.Second
)

// HandlerOptions configure NewHandler. The zero value (and nil) means
// defaults; NewHandler copies the struct.
type HandlerOptions struct {
	// Name is the node's name in /v1/status and /v1/members; "" = the
	// replica ID.
	Name string
	// Token, when not empty, is the bearer token every request must carry
	// (Authorization: Bearer <token>), except GET /healthz.
	Token string
	// MaxBodyBytes bounds the body of a key request; 0 =
	// DefaultMaxBodyBytes. Larger bodies get 413.
	MaxBodyBytes int64
	// MaxBatchBodyBytes bounds the body of POST /v1/batch; 0 =
	// DefaultMaxBatchBodyBytes.
	MaxBatchBodyBytes int64
	// Gatherer is what GET /metrics exposes (typically the registry the node's
	// Options.Registerer writes to, plus Go and process collectors); nil =
	// /metrics answers 404.
	Gatherer prometheus.Gatherer
	// WatchKeepAlive is the SSE keep-alive period; 0 = DefaultWatchKeepAlive.
	WatchKeepAlive time.Duration
	// Logger receives one line per failed request that is the server's
	// fault (5xx); nil = off.
	Logger *slog.Logger
}

// Handler serves the HTTP API of one node (see the design's HTTP API
// section). It is an http.Handler; the caller decides where to serve it.
// All methods are safe for concurrent use.
type Handler struct {
	n       *Node
	opts    HandlerOptions
	metrics http.Handler

	drainOnce sync.Once
	draining  chan struct{} // closed by Drain
}

// NewHandler returns the HTTP API handler of n.
func NewHandler(n *Node, opts *HandlerOptions) *Handler {
	var o HandlerOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxBatchBodyBytes <= 0 {
		o.MaxBatchBodyBytes = DefaultMaxBatchBodyBytes
	}
	if o.WatchKeepAlive <= 0 {
		o.WatchKeepAlive = DefaultWatchKeepAlive
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{n: n, opts: o, draining: make(chan struct{})}
	if o.Gatherer != nil {
		h.metrics = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})
	}
	return h
}

// Drain starts a graceful shutdown: from now on writes are refused with 503,
// /healthz answers 503 and open watch streams end, so that an http.Server's
// Shutdown does not wait on them. Reads keep working until the node closes.
// Safe to call more than once.
func (h *Handler) Drain() {
	h.drainOnce.Do(func() { close(h.draining) })
}

func (h *Handler) isDraining() bool {
	select {
	case <-h.draining:
		return true
	default:
		return false
	}
}

// Errors of the HTTP layer itself; the node's errors map through the same
// table.
var (
	errHTTPBadRequest   = errors.New("bad request")
	errHTTPUnauthorized = errors.New("missing or wrong bearer token")
	errHTTPNoEndpoint   = errors.New("no such endpoint")
	errHTTPMethod       = errors.New("method not allowed")
	errHTTPDraining     = errors.New("node: shutting down")
	errHTTPKeyTooLong   = fmt.Errorf("%w: key longer than %d bytes", ErrTooLarge, MaxKeyBytes)
)

// httpErrorStatuses maps error kinds to HTTP statuses, in one place. The first
// match wins; anything else is a 500.
var httpErrorStatuses = []struct {
	err    error
	status int
}{
	{errHTTPBadRequest, http.StatusBadRequest},
	{ErrInvalidKey, http.StatusBadRequest},
	{ErrInvalidValue, http.StatusBadRequest},
	{errHTTPUnauthorized, http.StatusUnauthorized},
	{ErrNotFound, http.StatusNotFound},
	{errHTTPNoEndpoint, http.StatusNotFound},
	{errHTTPMethod, http.StatusMethodNotAllowed},
	{ErrWrongType, http.StatusConflict},
	{ErrOverflow, http.StatusConflict},
	{ErrOffsetUnavailable, http.StatusGone},
	{ErrTooLarge, http.StatusRequestEntityTooLarge},
	{errHTTPDraining, http.StatusServiceUnavailable},
	{ErrClosed, http.StatusServiceUnavailable},
	{ErrReadOnly, http.StatusServiceUnavailable},
	{ErrSlowSubscriber, http.StatusServiceUnavailable},
	{context.DeadlineExceeded, http.StatusGatewayTimeout},
}

// ErrorStatus is the HTTP status the API answers err with.
func ErrorStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	for _, e := range httpErrorStatuses {
		if errors.Is(err, e.err) {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// httpBadRequest wraps a message as a 400.
func httpBadRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errHTTPBadRequest, fmt.Sprintf(format, args...))
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := ErrorStatus(err)
	msg := err.Error()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		msg = fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		h.opts.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
	}
	httpWriteJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// httpWriteJSON writes v as the JSON body of a status answer.
func httpWriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encoding the answer: " + err.Error()})
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// authorized checks the bearer token in constant time.
func (h *Handler) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(auth[len(prefix):]), []byte(h.opts.Token)) == 1
}

// ServeHTTP routes a request. Keys travel escaped in the path, so the
// routing reads the escaped path itself instead of a cleaned one: a key may
// hold '/', "..", '%' or spaces.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if path == "/healthz" {
		h.serveHealth(w, r)
		return
	}
	if !h.authorized(r) {
		h.writeError(w, r, errHTTPUnauthorized)
		return
	}
	var err error
	switch {
	case path == "/metrics":
		if h.metrics == nil {
			err = errHTTPNoEndpoint
			break
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			err = errHTTPMethod
			break
		}
		h.metrics.ServeHTTP(w, r)
	case strings.HasPrefix(path, "/v1/kv/"):
		err = h.serveKey(w, r, path[len("/v1/kv/"):])
	case path == "/v1/kv" || path == "/v1/kv/":
		err = h.only(r, http.MethodGet, func() error { return h.serveList(w, r) })
	case path == "/v1/watch":
		err = h.only(r, http.MethodGet, func() error { return h.serveWatch(w, r) })
	case path == "/v1/status":
		err = h.only(r, http.MethodGet, func() error { return h.serveStatus(w) })
	case path == "/v1/members":
		err = h.only(r, http.MethodGet, func() error { return h.serveMembers(w) })
	case path == "/v1/batch":
		err = h.only(r, http.MethodPost, func() error { return h.serveBatch(w, r) })
	case path == "/v1/sync":
		err = h.only(r, http.MethodGet, func() error { return h.serveSync(w) })
	case path == "/v1/sync/wait":
		err = h.only(r, http.MethodPost, func() error { return h.serveWaitSynced(w, r) })
	default:
		err = fmt.Errorf("%w: %s", errHTTPNoEndpoint, r.URL.Path)
	}
	if err != nil {
		h.writeError(w, r, err)
	}
}

// only runs fn when the request has the given method.
func (h *Handler) only(r *http.Request, method string, fn func() error) error {
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		return fmt.Errorf("%w: %s %s (want %s)", errHTTPMethod, r.Method, r.URL.Path, method)
	}
	return fn()
}

func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if h.isDraining() {
		h.writeError(w, r, errHTTPDraining)
		return
	}
	if err := h.n.Err(); errors.Is(err, ErrClosed) {
		h.writeError(w, r, err)
		return
	} else if err != nil {
		httpWriteJSON(w, http.StatusOK, map[string]string{"status": "read-only", "error": err.Error()})
		return
	}
	httpWriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// httpPathKey unescapes a key taken from the path and checks its size.
func httpPathKey(escaped string) (string, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return "", httpBadRequest("key %q is not a valid escaped path segment", escaped)
	}
	if len(key) > MaxKeyBytes {
		return "", errHTTPKeyTooLong
	}
	if key == "" {
		return "", fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if !utf8.ValidString(key) {
		return "", fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidKey)
	}
	return key, nil
}

// serveKey serves /v1/kv/{key} and /v1/kv/{key}/{incr,add,remove}. For POST
// the last path segment is the action, so a key may itself hold '/'.
func (h *Handler) serveKey(w http.ResponseWriter, r *http.Request, rest string) error {
	action := ""
	if r.Method == http.MethodPost {
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			return fmt.Errorf("%w: POST %s (want .../incr, .../add or .../remove)", errHTTPMethod, r.URL.Path)
		}
		rest, action = rest[:i], rest[i+1:]
	}
	key, err := httpPathKey(rest)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.serveGet(w, r, key)
	case http.MethodPut:
		return h.servePut(w, r, key)
	case http.MethodDelete:
		if h.isDraining() {
			return errHTTPDraining
		}
		if err := h.n.Delete(key); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		return h.servePatch(w, r, key)
	case http.MethodPost:
		switch action {
		case "incr":
			return h.serveIncr(w, r, key)
		case "add", "remove":
			return h.serveSetOp(w, r, key, action)
		}
		return fmt.Errorf("%w: POST .../%s (want incr, add or remove)", errHTTPNoEndpoint, action)
	}
	return fmt.Errorf("%w: %s %s", errHTTPMethod, r.Method, r.URL.Path)
}

// httpValueAnswer is the answer of the key endpoints.
type httpValueAnswer struct {
	Key      string        `json:"key"`
	Type     string        `json:"type"`
	Value    any           `json:"value"`
	Siblings []httpSibling `json:"siblings,omitempty"`
}

type httpSibling struct {
	Value   any    `json:"value"`
	Replica string `json:"replica"`
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
}

func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, key string) error {
	v, err := h.n.Get(key)
	if err != nil {
		return err
	}
	a := httpValueAnswer{Key: key, Type: string(v.Type), Value: v.Data}
	if sib, _ := strconv.ParseBool(r.URL.Query().Get("siblings")); sib {
		sibs, err := h.n.Siblings(key)
		if err != nil {
			return err
		}
		for _, s := range sibs {
			a.Siblings = append(a.Siblings, httpSibling{
				Value: s.Value, Replica: s.Replica.String(), Seq: s.Seq,
				Time: s.Time.UTC().Format(time.RFC3339Nano),
			})
		}
	}
	httpWriteJSON(w, http.StatusOK, a)
	return nil
}

// httpReadBody reads a size-limited request body. An empty body is a 400 unless
// allowEmpty.
func httpReadBody(w http.ResponseWriter, r *http.Request, limit int64, allowEmpty bool) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, httpBadRequest("reading the body: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 && !allowEmpty {
		return nil, httpBadRequest("empty body: want JSON")
	}
	return b, nil
}

// httpDecodeObject decodes a JSON object body into dst, refusing unknown fields
// and trailing data.
func httpDecodeObject(b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return httpBadRequest("field %q: want %s, got JSON %s", ute.Field, ute.Type, ute.Value)
		}
		return httpBadRequest("body is not the expected JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return httpBadRequest("body holds more than one JSON value")
	}
	return nil
}

func (h *Handler) servePut(w http.ResponseWriter, r *http.Request, key string) error {
	if h.isDraining() {
		return errHTTPDraining
	}
	b, err := httpReadBody(w, r, h.opts.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	// The node parses and canonicalises the JSON itself (malformed JSON is
	// ErrInvalidValue, a 400), so the body is handed over as is.
	if err := h.n.Put(key, json.RawMessage(b)); err != nil {
		return err
	}
	// Answer with the value as written, without encoding it again.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return httpBadRequest("body is not valid JSON: %v", err)
	}
	httpWriteJSON(w, http.StatusOK, httpValueAnswer{Key: key, Type: "register", Value: json.RawMessage(buf.Bytes())})
	return nil
}

type httpIncrBody struct {
	By *int64 `json:"by"`
}

func (h *Handler) serveIncr(w http.ResponseWriter, r *http.Request, key string) error {
	if h.isDraining() {
		return errHTTPDraining
	}
	b, err := httpReadBody(w, r, h.opts.MaxBodyBytes, true)
	if err != nil {
		return err
	}
	by := int64(1)
	if len(bytes.TrimSpace(b)) > 0 {
		var body httpIncrBody
		if err := httpDecodeObject(b, &body); err != nil {
			return err
		}
		if body.By != nil {
			by = *body.By
		}
	}
	v, err := h.n.Incr(key, by)
	if err != nil {
		return err
	}
	httpWriteJSON(w, http.StatusOK, httpValueAnswer{Key: key, Type: "counter", Value: v})
	return nil
}

type httpMembersBody struct {
	Members []string `json:"members"`
}

func (h *Handler) serveSetOp(w http.ResponseWriter, r *http.Request, key, op string) error {
	if h.isDraining() {
		return errHTTPDraining
	}
	b, err := httpReadBody(w, r, h.opts.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	var body httpMembersBody
	if err := httpDecodeObject(b, &body); err != nil {
		return err
	}
	if len(body.Members) == 0 {
		return httpBadRequest(`"members" must list at least one member`)
	}
	if op == "add" {
		err = h.n.SetAdd(key, body.Members...)
	} else {
		err = h.n.SetRemove(key, body.Members...)
	}
	if err != nil {
		return err
	}
	return h.answerCurrent(w, key, "set")
}

// answerCurrent answers with the key's current value after a write (which
// may already include concurrent writes); a key that vanished in between
// (a concurrent delete) answers without a value.
func (h *Handler) answerCurrent(w http.ResponseWriter, key, typ string) error {
	v, err := h.n.Get(key)
	switch {
	case err == nil:
		httpWriteJSON(w, http.StatusOK, httpValueAnswer{Key: key, Type: string(v.Type), Value: v.Data})
	case errors.Is(err, ErrNotFound):
		httpWriteJSON(w, http.StatusOK, httpValueAnswer{Key: key, Type: typ})
	default:
		return err
	}
	return nil
}

// httpPatchBody is the JSON of a document update. set, delete and incr are the
// design's; add/remove (set fields), enable/disable (flag fields) and nested
// (a patch of a nested document field) extend it.
type httpPatchBody struct {
	Set     map[string]json.RawMessage `json:"set"`
	Delete  []string                   `json:"delete"`
	Incr    map[string]int64           `json:"incr"`
	Add     map[string][]string        `json:"add"`
	Remove  map[string][]string        `json:"remove"`
	Enable  []string                   `json:"enable"`
	Disable []string                   `json:"disable"`
	Nested  map[string]*httpPatchBody  `json:"nested"`
}

// toPatch converts a decoded patch body into the node's Patch, decoding the
// set values; depth bounds nesting.
func (p *httpPatchBody) toPatch(depth int) (Patch, error) {
	if depth > MaxDepth {
		return Patch{}, httpBadRequest("patch nested deeper than %d", MaxDepth)
	}
	out := Patch{Delete: p.Delete, Incr: p.Incr, Add: p.Add, Remove: p.Remove, Enable: p.Enable, Disable: p.Disable}
	if len(p.Set) > 0 {
		out.Set = make(map[string]any, len(p.Set))
		for f, raw := range p.Set {
			out.Set[f] = raw // the node validates and canonicalises it
		}
	}
	if len(p.Nested) > 0 {
		out.Nested = make(map[string]*Patch, len(p.Nested))
		for f, np := range p.Nested {
			if np == nil {
				return Patch{}, httpBadRequest("nested %q: null patch", f)
			}
			c, err := np.toPatch(depth + 1)
			if err != nil {
				return Patch{}, err
			}
			out.Nested[f] = &c
		}
	}
	return out, nil
}

func (p *httpPatchBody) empty() bool {
	return len(p.Set) == 0 && len(p.Delete) == 0 && len(p.Incr) == 0 && len(p.Add) == 0 &&
		len(p.Remove) == 0 && len(p.Enable) == 0 && len(p.Disable) == 0 && len(p.Nested) == 0
}

func (h *Handler) servePatch(w http.ResponseWriter, r *http.Request, key string) error {
	if h.isDraining() {
		return errHTTPDraining
	}
	b, err := httpReadBody(w, r, h.opts.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	var body httpPatchBody
	if err := httpDecodeObject(b, &body); err != nil {
		return err
	}
	if body.empty() {
		return httpBadRequest("empty patch: give set, delete, incr, add, remove, enable, disable or nested")
	}
	p, err := body.toPatch(0)
	if err != nil {
		return err
	}
	if err := h.n.Update(key, p); err != nil {
		return err
	}
	return h.answerCurrent(w, key, "map")
}

type httpKeyInfo struct {
	Key  string `json:"key"`
	Type string `json:"type"`
}

func (h *Handler) serveList(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return httpBadRequest("limit must be a non-negative integer, got %q", s)
		}
		limit = n
	}
	keys, err := h.n.Keys(q.Get("prefix"), limit)
	if err != nil {
		return err
	}
	out := make([]httpKeyInfo, len(keys))
	for i, k := range keys {
		out[i] = httpKeyInfo{Key: k.Key, Type: string(k.Type)}
	}
	httpWriteJSON(w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

func (h *Handler) serveStatus(w http.ResponseWriter) error {
	st := h.n.Status()
	name := h.opts.Name
	if name == "" {
		name = st.Replica
	}
	a := map[string]any{
		"node": name, "replica": st.Replica, "members": 1, "keys": st.Keys,
		"digest": h.n.Digest(), "read_only": st.ReadOnly, "wal_next_offset": st.NextOffset,
	}
	httpWriteJSON(w, http.StatusOK, a)
	return nil
}

func (h *Handler) serveMembers(w http.ResponseWriter) error {
	st := h.n.Status()
	name := h.opts.Name
	if name == "" {
		name = st.Replica
	}
	httpWriteJSON(w, http.StatusOK, map[string]any{"members": []map[string]any{
		{"name": name, "replica": st.Replica, "state": "alive", "addr": ""},
	}})
	return nil
}

func (h *Handler) serveSync(w http.ResponseWriter) error {
	httpWriteJSON(w, http.StatusOK, map[string]any{"peers": []any{}})
	return nil
}

func (h *Handler) serveWaitSynced(w http.ResponseWriter, r *http.Request) error {
	httpWriteJSON(w, http.StatusOK, map[string]any{"synced": true})
	return nil
}

func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) error {
	return errHTTPNoEndpoint
}

func (h *Handler) serveWatch(w http.ResponseWriter, r *http.Request) error {
	return errHTTPNoEndpoint
}
