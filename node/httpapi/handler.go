package httpapi

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/shoaldb/shoal/node"

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
	// DefaultMaxWatchers bounds the open watch streams.
	DefaultMaxWatchers = 1024
	// DefaultWriteTimeout bounds how long one answer, or one event of a
	// watch stream, may take to reach a client that does not read.
	DefaultWriteTimeout = 30 * time.Second
	// maxLoggedError bounds an error's text in the log (the value it
	// quotes may be a megabyte).
	maxLoggedError = 512
)

// Options configure NewHandler. The zero value (and nil) means
// defaults; NewHandler copies the struct.
type Options struct {
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
	// MaxWatchers bounds the open watch streams: one more is answered 503.
	// 0 = DefaultMaxWatchers.
	MaxWatchers int
	// WriteTimeout bounds the writing of one answer or one watch event to
	// a client; a client that does not read is disconnected after it.
	// 0 = DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives one line per failed request that is the server's
	// fault (5xx); nil = off.
	Logger *slog.Logger
	// Registerer, when set, receives shoal_http_request_duration_seconds
	// (by route and status code).
	Registerer prometheus.Registerer
}

// Handler serves the HTTP API of one node (see the design's HTTP API
// section). It is an http.Handler; the caller decides where to serve it.
// All methods are safe for concurrent use.
type Handler struct {
	n       *node.Node
	opts    Options
	metrics http.Handler

	drainCtx context.Context // cancelled by Drain
	drain    context.CancelFunc
	watchers atomic.Int64 // open watch streams

	watchResumes atomic.Int64 // watch streams that went on from the log after falling behind

	durations *prometheus.HistogramVec // nil without Options.Registerer
	observers sync.Map                 // durationKey -> prometheus.Observer: the label lookup once per route and code
}

type durationKey struct {
	route string
	code  int
}

// routes are the route labels of the request metrics: fixed names, never
// a key (one series per key would be unbounded).
var routes = []string{"kv", "kv_list", "watch", "status", "members", "batch", "sync", "sync_wait", "backup", "metrics", "healthz", "other"}

func routeOf(path string) string {
	switch {
	case path == "/v1/kv" || path == "/v1/kv/":
		return "kv_list"
	case strings.HasPrefix(path, "/v1/kv/"):
		return "kv"
	case path == "/v1/sync/wait":
		return "sync_wait"
	case path == "/metrics":
		return "metrics"
	case path == "/healthz":
		return "healthz"
	case strings.HasPrefix(path, "/v1/") && slices.Contains(routes, path[len("/v1/"):]):
		return path[len("/v1/"):]
	}
	return "other"
}

// statusWriter records the status code of an answer for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Watchers is the number of open watch (SSE) streams.
func (h *Handler) Watchers() int { return int(h.watchers.Load()) }

// WatchResumes is how many times a watch stream fell behind the live feed
// and went on from the log instead of ending.
func (h *Handler) WatchResumes() int64 { return h.watchResumes.Load() }

// NewHandler returns the HTTP API handler of n.
func NewHandler(n *node.Node, opts *Options) *Handler {
	var o Options
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
	if o.MaxWatchers <= 0 {
		o.MaxWatchers = DefaultMaxWatchers
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{n: n, opts: o}
	h.drainCtx, h.drain = context.WithCancel(context.Background())
	if o.Gatherer != nil {
		h.metrics = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})
	}
	if o.Registerer != nil {
		h.durations = registerDurations(o.Registerer, o.Logger)
	}
	return h
}

// registerDurations registers the request duration histogram, or finds
// the one an earlier handler registered on the same registry.
func registerDurations(reg prometheus.Registerer, log *slog.Logger) *prometheus.HistogramVec {
	d := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shoal_http_request_duration_seconds",
		Help:    "Duration of HTTP API requests, by route and status code (watch streams and waits last as long as they are open).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "code"})
	if err := reg.Register(d); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				return old
			}
		}
		log.Error("http metrics not registered", "err", err)
		return nil
	}
	// Every route shows from the start, not after its first request.
	for _, r := range routes {
		d.WithLabelValues(r, "200")
	}
	return d
}

// serveBackup streams a consistent backup of the node (node.Backup). Each
// write must reach the client within WriteTimeout, not the whole backup.
func (h *Handler) serveBackup(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	dw := &deadlineWriter{w: w, rc: rc, timeout: h.opts.WriteTimeout}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="shoal-%s-%s.backup"`, h.n.ReplicaID(), time.Now().UTC().Format("20060102T150405Z")))
	started := false
	lw := writerFunc(func(p []byte) (int, error) {
		started = true
		return dw.Write(p)
	})
	info, err := h.n.Backup(r.Context(), lw)
	if err != nil && !started {
		return err
	}
	if err != nil {
		// The answer is under way: it ends without the backup's trailer,
		// which every reader of a backup refuses.
		h.opts.Logger.Warn("backup cut off", "err", truncate(err.Error(), maxLoggedError))
		return nil
	}
	h.opts.Logger.Info("backup sent", "keys", info.Keys, "bytes", info.Bytes)
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Drain starts a graceful shutdown: from now on writes are refused with 503,
// /healthz answers 503 and open watch streams end, so that an http.Server's
// Shutdown does not wait on them. Reads keep working until the node closes.
// Safe to call more than once.
func (h *Handler) Drain() { h.drain() }

func (h *Handler) isDraining() bool { return h.drainCtx.Err() != nil }

// Errors of the HTTP layer itself; the node's errors map through the same
// table.
var (
	errHTTPBadRequest   = errors.New("bad request")
	errHTTPUnauthorized = errors.New("missing or wrong bearer token")
	errHTTPNoEndpoint   = errors.New("no such endpoint")
	errHTTPMethod       = errors.New("method not allowed")
	errHTTPDraining     = errors.New("node: shutting down")
	errHTTPTooBusy      = errors.New("too many open watch streams")
	errHTTPKeyTooLong   = fmt.Errorf("%w: key longer than %d bytes", node.ErrTooLarge, node.MaxKeyBytes)
)

// httpErrorStatuses maps error kinds to HTTP statuses and to the
// machine-readable codes of error answers, in one place. The first match
// wins; anything else is a 500 with code "internal". Codes are part of the
// API: never rename one (clients map them back to node's sentinel errors).
var httpErrorStatuses = []struct {
	err    error
	status int
	code   string
}{
	{errHTTPBadRequest, http.StatusBadRequest, "bad_request"},
	{node.ErrInvalidKey, http.StatusBadRequest, "invalid_key"},
	{node.ErrInvalidValue, http.StatusBadRequest, "invalid_value"},
	{errHTTPUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{node.ErrNotFound, http.StatusNotFound, "not_found"},
	{errHTTPNoEndpoint, http.StatusNotFound, "no_endpoint"},
	{errHTTPMethod, http.StatusMethodNotAllowed, "method_not_allowed"},
	{node.ErrWrongType, http.StatusConflict, "wrong_type"},
	{node.ErrOffline, http.StatusConflict, "offline"},
	{node.ErrOverflow, http.StatusConflict, "overflow"},
	{node.ErrOffsetUnavailable, http.StatusGone, "offset_unavailable"},
	{node.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{errHTTPDraining, http.StatusServiceUnavailable, "shutting_down"},
	{errHTTPTooBusy, http.StatusServiceUnavailable, "too_busy"},
	{node.ErrClosed, http.StatusServiceUnavailable, "closed"},
	{node.ErrReadOnly, http.StatusServiceUnavailable, "read_only"},
	{node.ErrSlowSubscriber, http.StatusServiceUnavailable, "slow_subscriber"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
}

// ErrorStatus is the HTTP status the API answers err with.
func ErrorStatus(err error) int {
	status, _ := errorKind(err)
	return status
}

// ErrorCode is the machine-readable code of err in the API's error answers
// (their "code" field): "not_found", "wrong_type", ... from the same table
// as ErrorStatus, "internal" for an error it does not know.
func ErrorCode(err error) string {
	_, code := errorKind(err)
	return code
}

func errorKind(err error) (status int, code string) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "too_large"
	}
	for _, e := range httpErrorStatuses {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

// httpErrorBody is the body of an error answer and the data of the SSE
// event that ends a watch stream.
type httpErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// httpBadRequest wraps a message as a 400.
func httpBadRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errHTTPBadRequest, fmt.Sprintf(format, args...))
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorKind(err)
	msg := err.Error()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		msg = fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		h.opts.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", truncate(msg, maxLoggedError))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
	}
	httpWriteJSON(w, status, httpErrorBody{Error: msg, Code: code})
}

// truncate cuts s to at most n bytes (on a rune boundary), saying so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes more)", s[:cut], len(s)-cut)
}

// marshal encodes v as JSON without HTML escaping ("<", ">" and "&" stay
// themselves, as the node stores them). No trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// rawValue is a value as the node's canonical JSON (no number rounded, no
// HTML escaping), for an answer's "value".
func rawValue(v any) (json.RawMessage, error) {
	b, err := node.EncodeValue(v)
	return json.RawMessage(b), err
}

// httpWriteJSON writes v as the JSON body of a status answer.
func httpWriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encoding the answer: " + err.Error()})
	}
	httpWriteBody(w, status, append(b, '\n'))
}

// httpWriteBody writes b, JSON ending in a newline, as the body of a
// status answer.
func httpWriteBody(w http.ResponseWriter, status int, b []byte) {
	hd := w.Header()
	hd["Content-Type"] = httpJSONType
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
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
	if h.durations == nil {
		h.serve(w, r, path)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h.serve(sw, r, path)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	h.observer(routeOf(path), sw.code).Observe(time.Since(start).Seconds())
}

// observer returns the duration histogram of route and code.
func (h *Handler) observer(route string, code int) prometheus.Observer {
	k := durationKey{route, code}
	if o, ok := h.observers.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o := h.durations.WithLabelValues(route, strconv.Itoa(code))
	h.observers.Store(k, o)
	return o
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, path string) {
	if path == "/healthz" {
		h.serveHealth(w, r)
		return
	}
	if !h.authorized(r) {
		h.writeError(w, r, errHTTPUnauthorized)
		return
	}
	if path != "/v1/watch" && path != "/v1/sync/wait" && path != "/v1/backup" {
		// A client that does not read its answer holds a goroutine and a
		// buffer only this long (watch and wait set their own deadlines).
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
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
	case path == "/v1/kv" || (path == "/v1/kv/" && (r.Method == http.MethodGet || r.Method == http.MethodHead)):
		err = h.only(r, http.MethodGet, func() error { return h.serveList(w, r) })
	case strings.HasPrefix(path, "/v1/kv/"):
		err = h.serveKey(w, r, path[len("/v1/kv/"):])
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
	case path == "/v1/backup":
		err = h.only(r, http.MethodGet, func() error { return h.serveBackup(w, r) })
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
	if err := h.n.Err(); errors.Is(err, node.ErrClosed) {
		h.writeError(w, r, err)
		return
	} else if err != nil {
		// Reads are still served: healthy, but say why writes are refused.
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
	if len(key) > node.MaxKeyBytes {
		return "", errHTTPKeyTooLong
	}
	if key == "" {
		return "", fmt.Errorf("%w: empty key", node.ErrInvalidKey)
	}
	if !utf8.ValidString(key) {
		return "", fmt.Errorf("%w: key is not valid UTF-8", node.ErrInvalidKey)
	}
	return key, nil
}

// serveKey serves /v1/kv/{key} and /v1/kv/{key}/{incr,add,remove,expire}. For POST
// the last path segment is the action, so a key may itself hold '/'.
func (h *Handler) serveKey(w http.ResponseWriter, r *http.Request, rest string) error {
	action := ""
	if r.Method == http.MethodPost {
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			return fmt.Errorf("%w: POST %s (want .../incr, .../add, .../remove or .../expire)", errHTTPMethod, r.URL.Path)
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
		case "expire":
			return h.serveExpire(w, r, key)
		}
		return fmt.Errorf("%w: POST .../%s (want incr, add, remove or expire)", errHTTPNoEndpoint, action)
	}
	return fmt.Errorf("%w: %s %s", errHTTPMethod, r.Method, r.URL.Path)
}

// httpValueAnswer is the answer of the key endpoints.
type httpValueAnswer struct {
	Key      string          `json:"key"`
	Type     string          `json:"type"`
	Value    json.RawMessage `json:"value"`
	Sets     [][]string      `json:"sets,omitempty"`
	Expires  string          `json:"expires,omitempty"` // RFC 3339, UTC; absent when the key does not expire
	Siblings []httpSibling   `json:"siblings,omitempty"`
}

// httpTime formats an expiry for an answer: RFC 3339 with nanoseconds, UTC;
// "" for none.
func httpTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTTL reads a TTL given as a Go duration ("30s", "1h30m"). A TTL
// that is not one, or not in (0, node.MaxTTL], is a 400 naming the limit.
func parseTTL(s string) (time.Duration, error) {
	ttl, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: ttl %q is not a duration such as \"30s\" or \"1h30m\" (positive, at most %v)", node.ErrInvalidValue, s, node.MaxTTL)
	}
	if err := node.CheckTTL(ttl); err != nil {
		return 0, err
	}
	return ttl, nil
}

// queryTTL reads the optional ?ttl= of a write (0: none given).
func queryTTL(r *http.Request) (time.Duration, error) {
	if r.URL.RawQuery == "" { // the common case: no map to build
		return 0, nil
	}
	q := r.URL.Query()
	if !q.Has("ttl") {
		return 0, nil
	}
	return parseTTL(q.Get("ttl"))
}

// setPaths lists the paths of the set fields of a map value, sorted: in
// JSON a set field and a register field holding an array of strings look
// alike, so answers and events carry them ("sets") for clients that
// decode values into the Go types of node.Value.Data. Only sets are
// []string there (registers decode to []any), so the Go types tell them
// apart. nil for other values and maps without set fields.
func setPaths(data any) [][]string {
	m, ok := data.(map[string]any)
	if !ok {
		return nil
	}
	var out [][]string
	var walk func(m map[string]any, path []string)
	walk = func(m map[string]any, path []string) {
		for f, v := range m {
			switch x := v.(type) {
			case []string:
				out = append(out, append(slices.Clone(path), f))
			case map[string]any:
				walk(x, append(path, f))
			}
		}
	}
	walk(m, nil)
	slices.SortFunc(out, slices.Compare)
	return out
}

type httpSibling struct {
	Value  json.RawMessage `json:"value"`
	Origin string          `json:"origin"`
	Time   string          `json:"time"`
}

func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, key string) error {
	var a httpValueAnswer
	// A register answers its stored bytes as they are; other types (whose
	// set fields the answer names) their view, encoded the same way.
	rv, err := h.n.GetRaw(key)
	if err != nil {
		return err
	}
	if rv.Type == node.TypeRegister {
		a = httpValueAnswer{Key: key, Type: string(rv.Type), Value: rv.JSON, Expires: httpTime(rv.Expires)}
	} else {
		v, err := h.n.Get(key)
		if err != nil {
			return err
		}
		val, err := rawValue(v.Data)
		if err != nil {
			return err
		}
		a = httpValueAnswer{Key: key, Type: string(v.Type), Value: val, Sets: setPaths(v.Data), Expires: httpTime(v.Expires)}
	}
	if sib, _ := strconv.ParseBool(r.URL.Query().Get("siblings")); sib {
		// field=F (repeated for a nested path) names a register field of
		// a map: its concurrent values.
		sibs, err := h.n.FieldSiblings(key, r.URL.Query()["field"]...)
		if err != nil {
			return err
		}
		for _, s := range sibs {
			val, err := rawValue(s.Data)
			if err != nil {
				return err
			}
			a.Siblings = append(a.Siblings, httpSibling{
				Value: val, Origin: s.Origin, Time: s.Time.UTC().Format(time.RFC3339Nano),
			})
		}
	}
	if a.Siblings != nil {
		httpWriteJSON(w, http.StatusOK, a)
		return nil
	}
	bp := httpBufPool.Get().(*[]byte)
	defer httpBufPool.Put(bp)
	out := append(appendValueAnswer((*bp)[:0], &a), '\n')
	httpWriteBody(w, http.StatusOK, out)
	if cap(out) <= httpPooledBufMax {
		*bp = out[:0]
	}
	return nil
}

// httpReadBody reads a size-limited request body. An empty body is a 400 unless
// allowEmpty.
func httpReadBody(w http.ResponseWriter, r *http.Request, limit int64, allowEmpty bool) ([]byte, error) {
	return httpReadBodyInto(nil, w, r, limit, allowEmpty)
}

// httpReadBodyInto is httpReadBody reading into dst's spare capacity when
// it suffices (dst is reset first).
func httpReadBodyInto(dst []byte, w http.ResponseWriter, r *http.Request, limit int64, allowEmpty bool) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var b []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= 64<<10 {
		// The usual case: a small body of known length, read in one
		// allocation (one more byte proves the length was right).
		if int64(cap(dst)) > n {
			b = dst[:n]
		} else {
			b = make([]byte, n, n+1)
		}
		if _, err = io.ReadFull(body, b); err == nil {
			var one [1]byte
			if m, _ := body.Read(one[:]); m > 0 {
				b = append(b, one[0])
				var rest []byte
				rest, err = io.ReadAll(body)
				b = append(b, rest...)
			}
		}
	} else {
		b, err = io.ReadAll(body)
	}
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
	ttl, err := queryTTL(r)
	if err != nil {
		return err
	}
	// PUT is the hot path of write-heavy clients: its buffers are pooled
	// (Put copies what it keeps, and the answer is copied by the writer).
	bp := httpBufPool.Get().(*[]byte)
	defer httpBufPool.Put(bp)
	b, err := httpReadBodyInto((*bp)[:0], w, r, h.opts.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	// The node parses and canonicalises the JSON itself (malformed JSON is
	// ErrInvalidValue, a 400), so the body is handed over as is, and the
	// answer is the value as stored (canonical), appended by the node.
	op := httpBufPool.Get().(*[]byte)
	defer httpBufPool.Put(op)
	out := append((*op)[:0], `{"key":`...)
	out = httpAppendString(out, key)
	out = append(out, `,"type":"register","value":`...)
	out, err = h.n.PutJSONAppend(out, key, b, node.WriteOptions{TTL: ttl})
	if err != nil {
		return err
	}
	out = append(out, "}\n"...)
	httpWriteBody(w, http.StatusOK, out)
	if cap(b) <= httpPooledBufMax {
		*bp = b[:0]
	}
	if cap(out) <= httpPooledBufMax {
		*op = out[:0]
	}
	return nil
}

// httpJSONType is the Content-Type header value of JSON answers (shared:
// net/http only reads header values).
var httpJSONType = []string{"application/json"}

// httpBufPool holds the buffers of PUT requests; buffers that grew beyond
// httpPooledBufMax are not kept.
var httpBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const httpPooledBufMax = 64 << 10

// appendValueAnswer appends a, which has no siblings, as marshal encodes
// it, byte for byte (TestAppendValueAnswerMatchesMarshal): GET is the read
// of every client, and encoding/json cost it ~2.5 µs.
func appendValueAnswer(b []byte, a *httpValueAnswer) []byte {
	b = append(b, `{"key":`...)
	b = httpAppendString(b, a.Key)
	b = append(b, `,"type":`...)
	b = httpAppendString(b, a.Type)
	b = append(b, `,"value":`...)
	if len(a.Value) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, a.Value...) // compact canonical JSON, as encoding/json would copy it
	}
	if len(a.Sets) > 0 {
		b = append(b, `,"sets":`...)
		b = appendSets(b, a.Sets)
	}
	if a.Expires != "" {
		b = append(b, `,"expires":`...)
		b = httpAppendString(b, a.Expires)
	}
	return append(b, '}')
}

// appendSets appends the paths of an answer's or event's sets as a JSON
// array of arrays of strings.
func appendSets(b []byte, sets [][]string) []byte {
	b = append(b, '[')
	for i, path := range sets {
		if i > 0 {
			b = append(b, ',')
		}
		if path == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, f := range path {
			if j > 0 {
				b = append(b, ',')
			}
			b = httpAppendString(b, f)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

// httpAppendString appends s as a JSON string, as marshal writes it (no
// HTML escaping, like every answer). Printable ASCII without quotes or
// backslashes, nearly every key, is copied as it is; anything else goes
// through encoding/json.
func httpAppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			q, _ := marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
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
	a := httpValueAnswer{Key: key, Type: string(node.TypeCounter), Value: strconv.AppendInt(nil, v, 10)}
	httpWriteBody(w, http.StatusOK, append(appendValueAnswer(make([]byte, 0, 64+len(key)), &a), '\n'))
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
		val, err := rawValue(v.Data)
		if err != nil {
			return err
		}
		httpWriteJSON(w, http.StatusOK, httpValueAnswer{Key: key, Type: string(v.Type), Value: val, Sets: setPaths(v.Data), Expires: httpTime(v.Expires)})
	case errors.Is(err, node.ErrNotFound):
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
func (p *httpPatchBody) toPatch(depth int) (node.Patch, error) {
	if depth > node.MaxDepth {
		return node.Patch{}, httpBadRequest("patch nested deeper than %d", node.MaxDepth)
	}
	out := node.Patch{Delete: p.Delete, Incr: p.Incr, Add: p.Add, Remove: p.Remove, Enable: p.Enable, Disable: p.Disable}
	if len(p.Set) > 0 {
		out.Set = make(map[string]any, len(p.Set))
		for f, raw := range p.Set {
			out.Set[f] = raw // the node validates and canonicalises it
		}
	}
	if len(p.Nested) > 0 {
		out.Nested = make(map[string]node.Patch, len(p.Nested))
		for f, np := range p.Nested {
			if np == nil {
				return node.Patch{}, httpBadRequest("nested %q: null patch", f)
			}
			c, err := np.toPatch(depth + 1)
			if err != nil {
				return node.Patch{}, err
			}
			out.Nested[f] = c
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
	ttl, err := queryTTL(r)
	if err != nil {
		return err
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
	if err := h.n.UpdateWith(key, p, node.WriteOptions{TTL: ttl}); err != nil {
		return err
	}
	return h.answerCurrent(w, key, "map")
}

// httpExpireBody is the body of POST /v1/kv/{key}/expire: a ttl, or
// persist to remove the expiry.
type httpExpireBody struct {
	TTL     *string `json:"ttl"`
	Persist bool    `json:"persist"`
}

// parse returns the TTL of an expire body, 0 for a persist.
func (e *httpExpireBody) parse() (time.Duration, error) {
	switch {
	case e.TTL != nil && e.Persist:
		return 0, httpBadRequest(`give either "ttl" or "persist": true, not both`)
	case e.Persist:
		return 0, nil
	case e.TTL == nil:
		return 0, httpBadRequest(`give "ttl" (such as "30s", at most %v) or "persist": true`, node.MaxTTL)
	}
	return parseTTL(*e.TTL)
}

func (h *Handler) serveExpire(w http.ResponseWriter, r *http.Request, key string) error {
	if h.isDraining() {
		return errHTTPDraining
	}
	b, err := httpReadBody(w, r, h.opts.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	var body httpExpireBody
	if err := httpDecodeObject(b, &body); err != nil {
		return err
	}
	ttl, err := body.parse()
	if err != nil {
		return err
	}
	if ttl == 0 {
		err = h.n.Persist(key)
	} else {
		err = h.n.Expire(key, ttl)
	}
	if err != nil {
		return err
	}
	return h.answerCurrent(w, key, "")
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

func (h *Handler) name(st *node.Status) string {
	if h.opts.Name != "" {
		return h.opts.Name
	}
	return st.Replica
}

// httpStatus is the answer of GET /v1/status.
type httpStatus struct {
	Node        string `json:"node"`
	Replica     string `json:"replica"`
	Members     int    `json:"members"`
	Keys        int    `json:"keys"`
	Digest      string `json:"digest"`
	Incarnation uint64 `json:"incarnation"`
	Sync        string `json:"sync"`
	ReadOnly    bool   `json:"read_only"`
	Error       string `json:"error,omitempty"`
	Draining    bool   `json:"draining,omitempty"`
	FirstOffset uint64 `json:"wal_first_offset"`
	NextOffset  uint64 `json:"wal_next_offset"`
	WALBytes    int64  `json:"wal_bytes"`
}

func (h *Handler) serveStatus(w http.ResponseWriter) error {
	st := h.n.Status()
	if st.Closed {
		return node.ErrClosed
	}
	alive := 0
	for _, m := range h.n.Members() {
		if m.State == "alive" {
			alive++
		}
	}
	httpWriteJSON(w, http.StatusOK, httpStatus{
		Node: h.name(&st), Replica: st.Replica, Members: alive, Keys: st.Keys,
		Digest: h.n.Digest(), Incarnation: st.Incarnation, Sync: st.Sync,
		ReadOnly: st.ReadOnly, Error: st.Error, Draining: h.isDraining(),
		FirstOffset: st.FirstOffset, NextOffset: st.NextOffset, WALBytes: st.WALBytes,
	})
	return nil
}

// httpMember is one entry of GET /v1/members.
type httpMember struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	State     string `json:"state"`
	Replica   string `json:"replica,omitempty"`
	Self      bool   `json:"self,omitempty"`
	Connected bool   `json:"connected,omitempty"`
	Acked     uint64 `json:"acked,omitempty"`
}

// members lists the cluster members; an offline node lists itself under
// the handler's name.
func (h *Handler) members(st *node.Status) []httpMember {
	ms := h.n.Members()
	out := make([]httpMember, 0, len(ms))
	for _, m := range ms {
		hm := httpMember{Name: m.Name, Addr: m.Addr, State: m.State, Replica: m.Replica,
			Self: m.Self, Connected: m.Connected, Acked: m.Acked}
		if m.Self && m.Addr == "" {
			hm.Name = h.name(st)
		}
		out = append(out, hm)
	}
	return out
}

func (h *Handler) serveMembers(w http.ResponseWriter) error {
	st := h.n.Status()
	if st.Closed {
		return node.ErrClosed
	}
	httpWriteJSON(w, http.StatusOK, map[string]any{"members": h.members(&st)})
	return nil
}

// httpPeerSync is one peer of GET /v1/sync.
type httpPeerSync struct {
	Name    string `json:"name"`
	Replica string `json:"replica,omitempty"`
	State   string `json:"state"`
	Acked   uint64 `json:"acked"`
	Synced  bool   `json:"synced"`
	Updated string `json:"updated,omitempty"`
}

// serveSync answers how far each peer holds this node's writes. An offline
// node has no peers.
func (h *Handler) serveSync(w http.ResponseWriter) error {
	ss, err := h.n.SyncStatus()
	offline := errors.Is(err, node.ErrOffline)
	if err != nil && !offline {
		return err
	}
	if offline {
		ss.Replica = h.n.ReplicaID()
	}
	peers := make([]httpPeerSync, 0, len(ss.Peers))
	synced := true
	for _, p := range ss.Peers {
		ps := httpPeerSync{Name: p.Name, Replica: p.Replica, State: p.State, Acked: p.Acked, Synced: p.Synced}
		if !p.Updated.IsZero() {
			ps.Updated = p.Updated.UTC().Format(time.RFC3339Nano)
		}
		synced = synced && (p.Synced || p.State != "alive")
		peers = append(peers, ps)
	}
	httpWriteJSON(w, http.StatusOK, map[string]any{
		"replica": ss.Replica, "local": ss.Local, "offline": offline, "synced": synced, "peers": peers,
	})
	return nil
}

// httpWaitBody is the body of POST /v1/sync/wait.
type httpWaitBody struct {
	Peers   []string `json:"peers"`   // default: every member alive now
	Timeout string   `json:"timeout"` // Go duration; default 30s
}

// DefaultWaitSyncedTimeout bounds POST /v1/sync/wait without a timeout.
const DefaultWaitSyncedTimeout = 30 * time.Second

// MaxWaitSyncedTimeout bounds the timeout a client may ask of
// POST /v1/sync/wait (each waiting request holds a goroutine).
const MaxWaitSyncedTimeout = 10 * time.Minute

// serveWaitSynced waits until peers hold every write this node made before
// the request: 200 {"synced": true}, or 504 when the timeout passes first.
func (h *Handler) serveWaitSynced(w http.ResponseWriter, r *http.Request) error {
	b, err := httpReadBody(w, r, h.opts.MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var body httpWaitBody
	if len(bytes.TrimSpace(b)) > 0 {
		if err := httpDecodeObject(b, &body); err != nil {
			return err
		}
	}
	timeout := DefaultWaitSyncedTimeout
	if body.Timeout != "" {
		if timeout, err = time.ParseDuration(body.Timeout); err != nil || timeout <= 0 || timeout > MaxWaitSyncedTimeout {
			return httpBadRequest("timeout %q is not a positive duration up to %s, like 5s", body.Timeout, MaxWaitSyncedTimeout)
		}
	}
	// Answer within WriteTimeout once the wait is over.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + h.opts.WriteTimeout))
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	stop := context.AfterFunc(h.drainCtx, cancel)
	defer stop()
	if err := h.n.WaitSynced(ctx, body.Peers...); err != nil {
		if h.isDraining() {
			return errHTTPDraining
		}
		return err
	}
	httpWriteJSON(w, http.StatusOK, map[string]any{"synced": true})
	return nil
}

// httpBatchOp is one operation of POST /v1/batch.
type httpBatchOp struct {
	Op      string          `json:"op"` // put, delete, incr, add, remove, patch, expire, persist
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`   // put
	By      *int64          `json:"by"`      // incr; default 1
	Members []string        `json:"members"` // add, remove
	Patch   *httpPatchBody  `json:"patch"`   // patch
	TTL     *string         `json:"ttl"`     // expire; put and patch: optional
}

type httpBatchBody struct {
	Ops []httpBatchOp `json:"ops"`
}

// serveBatch commits several operations on several keys atomically: one
// WAL record, all or none.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request) error {
	if h.isDraining() {
		return errHTTPDraining
	}
	b, err := httpReadBody(w, r, h.opts.MaxBatchBodyBytes, false)
	if err != nil {
		return err
	}
	var body httpBatchBody
	if err := httpDecodeObject(b, &body); err != nil {
		return err
	}
	if len(body.Ops) == 0 {
		return httpBadRequest(`"ops" must list at least one operation`)
	}
	var batch node.Batch
	for i, op := range body.Ops {
		if len(op.Key) > node.MaxKeyBytes {
			return fmt.Errorf("ops[%d]: %w", i, errHTTPKeyTooLong)
		}
		var ttl time.Duration
		if op.TTL != nil {
			if op.Op != "put" && op.Op != "patch" && op.Op != "expire" {
				return httpBadRequest("ops[%d]: %s takes no ttl (put, patch and expire do)", i, op.Op)
			}
			var err error
			if ttl, err = parseTTL(*op.TTL); err != nil {
				return fmt.Errorf("ops[%d]: %w", i, err)
			}
		}
		switch op.Op {
		case "put":
			if len(op.Value) == 0 {
				return httpBadRequest("ops[%d]: put needs a value", i)
			}
			batch.PutWith(op.Key, op.Value, node.WriteOptions{TTL: ttl})
		case "expire":
			if op.TTL == nil {
				return httpBadRequest("ops[%d]: expire needs a ttl (such as \"30s\", at most %v)", i, node.MaxTTL)
			}
			batch.Expire(op.Key, ttl)
		case "persist":
			batch.Persist(op.Key)
		case "delete", "del":
			batch.Delete(op.Key)
		case "incr":
			by := int64(1)
			if op.By != nil {
				by = *op.By
			}
			batch.Incr(op.Key, by)
		case "add", "remove":
			if len(op.Members) == 0 {
				return httpBadRequest("ops[%d]: %s needs members", i, op.Op)
			}
			if op.Op == "add" {
				batch.SetAdd(op.Key, op.Members...)
			} else {
				batch.SetRemove(op.Key, op.Members...)
			}
		case "patch":
			if op.Patch == nil || op.Patch.empty() {
				return httpBadRequest("ops[%d]: patch needs a non-empty patch", i)
			}
			p, err := op.Patch.toPatch(0)
			if err != nil {
				return fmt.Errorf("ops[%d]: %w", i, err)
			}
			batch.UpdateWith(op.Key, p, node.WriteOptions{TTL: ttl})
		default:
			return httpBadRequest("ops[%d]: unknown op %q (want put, delete, incr, add, remove, patch, expire or persist)", i, op.Op)
		}
	}
	if err := h.n.Commit(&batch); err != nil {
		return err
	}
	httpWriteJSON(w, http.StatusOK, map[string]int{"ops": len(body.Ops)})
	return nil
}

// httpEvent is the data of one SSE change event.
type httpEvent struct {
	Kind    string          `json:"kind,omitempty"` // "" (a change), "reset", "state", "synced", "expired"
	Key     string          `json:"key"`
	Type    string          `json:"type,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Sets    [][]string      `json:"sets,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
	Origin  string          `json:"origin"`
	Offset  uint64          `json:"offset"`
}

// serveWatch streams change events as Server-Sent Events. Each event's data
// is one JSON change; the SSE id is the WAL offset of the record that made
// it, sent only on the last event of each record, so a client resuming
// with Last-Event-ID (or ?from=id+1) gets every record after the last one
// it fully received: none skipped. ?from=OFFSET starts at that offset
// (inclusive); Last-Event-ID wins over it, as a reconnecting browser sends
// both.
func (h *Handler) serveWatch(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	var from uint64
	resume := false
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return httpBadRequest("Last-Event-ID %q is not a WAL offset", s)
		}
		from, resume = id+1, true
	} else if s := q.Get("from"); s != "" {
		f, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return httpBadRequest("from %q is not a WAL offset", s)
		}
		from, resume = f, true
	}
	if h.isDraining() {
		return errHTTPDraining
	}
	if h.watchers.Add(1) > int64(h.opts.MaxWatchers) {
		h.watchers.Add(-1)
		return fmt.Errorf("%w (at most %d)", errHTTPTooBusy, h.opts.MaxWatchers)
	}
	defer h.watchers.Add(-1)
	// The stream ends with the request or when the handler drains.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(h.drainCtx, cancel)
	defer stop()
	var sub *node.Subscription
	var err error
	if resume {
		sub, err = h.n.SubscribeFrom(ctx, prefix, from)
	} else {
		sub, err = h.n.Subscribe(ctx, prefix)
	}
	if err != nil {
		return err
	}
	defer sub.Close()

	rc := http.NewResponseController(w)
	// Every write must reach the client within WriteTimeout: a watcher
	// that stops reading is disconnected, not waited for.
	w = &deadlineWriter{w: w, rc: rc, timeout: h.opts.WriteTimeout}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A comment first, so the client sees the stream open at once.
	if _, err := io.WriteString(w, ": shoal watch\n\n"); err != nil {
		return nil
	}
	if rc.Flush() != nil {
		return nil
	}
	nowait, cancelNowait := context.WithCancel(ctx)
	cancelNowait()
	var buf []byte
	var pending *node.Event
	// Where a resume would start: after the last id written, else at the
	// first live event's record.
	var resumeAt uint64
	canResume := false
	for {
		var ev node.Event
		var err error
		if pending != nil {
			// Peek without waiting: the events of one record are published
			// together, so if the next one is not there yet, pending was the
			// record's last.
			ev, err = sub.Next(nowait)
		} else {
			wctx, wcancel := context.WithTimeout(ctx, h.opts.WatchKeepAlive)
			ev, err = sub.Next(wctx)
			wcancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				if _, werr := io.WriteString(w, ": keep-alive\n\n"); werr != nil || rc.Flush() != nil {
					return nil
				}
				continue
			}
		}
		if err != nil && pending != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
			// Nothing more queued: flush pending as the end of its record.
			buf = AppendEvent(buf[:0], pending, true)
			pending = nil
			if _, werr := w.Write(buf); werr != nil || rc.Flush() != nil {
				return nil
			}
			continue
		}
		if err != nil && errors.Is(err, node.ErrSlowSubscriber) && canResume && ctx.Err() == nil {
			// The reader fell behind the live feed: go on from the log,
			// as a client reconnecting with Last-Event-ID would (the
			// catch-up sends each changed key's current value, then
			// synced), instead of ending the stream. pending was not
			// written; its record comes again.
			if next, rerr := h.n.SubscribeFrom(ctx, prefix, resumeAt); rerr == nil {
				sub.Close()
				sub, pending = next, nil
				h.watchResumes.Add(1)
				continue
			}
		}
		if err != nil {
			if pending != nil {
				// Without an id: the subscription may have ended in the
				// middle of pending's record (a slow reader's queue is
				// dropped), so a client resuming after the previous id
				// must get the whole record again.
				buf = AppendEvent(buf[:0], pending, false)
				_, _ = w.Write(buf)
			}
			if ctx.Err() == nil || (h.isDraining() && r.Context().Err() == nil) {
				// The subscription ended for a reason the client should see
				// (a slow reader, the node closing, the server draining).
				if ctx.Err() != nil {
					err = errHTTPDraining
				}
				_, _ = w.Write(AppendErrorEvent(buf[:0], err))
			}
			_ = rc.Flush()
			return nil
		}
		if pending != nil {
			// pending ends its record unless ev is of the same record (an
			// expiry belongs to none, whatever its Offset).
			withID := pending.Offset != ev.Offset || ev.Kind == node.EventExpired
			buf = AppendEvent(buf[:0], pending, withID)
			if _, werr := w.Write(buf); werr != nil {
				return nil
			}
			if id, ok := eventID(pending, withID); ok {
				resumeAt, canResume = id+1, true
			}
		}
		if !canResume && ev.Kind == node.EventChange {
			resumeAt, canResume = ev.Offset, true
		}
		pending = &ev
	}
}

// eventID is the id AppendEvent writes for ev, if any.
func eventID(ev *node.Event, withID bool) (uint64, bool) {
	switch ev.Kind {
	case node.EventReset, node.EventState, node.EventExpired:
		// An expiry comes from no record (its Offset is the last one's).
		return 0, false
	case node.EventSynced:
		return ev.Offset - 1, withID && ev.Offset > 0
	}
	return ev.Offset, withID
}

// deadlineWriter sets the connection's write deadline before each write.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Header() http.Header         { return d.w.Header() }
func (d *deadlineWriter) WriteHeader(code int)        { d.w.WriteHeader(code) }
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.w }
func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.w.Write(p)
}

// AppendEvent appends an event to b as the watch stream sends it
// (Server-Sent Events): an "id:" line when withID (the last event of its
// record: the record's WAL offset), then one "data:" line of JSON. Events
// of a full resend (reset, state) never carry an id, since a resume from
// the middle of one would miss keys; the synced event that ends a
// catch-up carries the offset before it (none when that is the log's
// start).
func AppendEvent(b []byte, ev *node.Event, withID bool) []byte {
	if id, hasID := eventID(ev, withID); hasID {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, '\n')
	}
	e := httpEvent{Kind: string(ev.Kind), Key: ev.Key, Type: string(ev.Type), Sets: setPaths(ev.Data),
		Deleted: ev.Deleted, Origin: ev.Origin, Offset: ev.Offset}
	var err error
	if ev.Data != nil {
		e.Value, err = rawValue(ev.Data)
	}
	b = append(b, "data: "...)
	if err == nil {
		b = appendEventJSON(b, &e)
	} else {
		data, _ := marshal(map[string]any{"key": ev.Key, "offset": ev.Offset, "error": truncate(err.Error(), maxLoggedError)})
		b = append(b, data...)
	}
	return append(b, '\n', '\n')
}

// appendEventJSON appends e as marshal encodes it, byte for byte
// (TestAppendEventJSONMatchesMarshal), without reflection: a watch stream
// encodes every change, and encoding/json was a twentieth of a receiving
// agent's CPU in the cluster bench. e.Value is compact canonical JSON
// (EncodeValue), which encoding/json would copy as it is.
func appendEventJSON(b []byte, e *httpEvent) []byte {
	b = append(b, '{')
	if e.Kind != "" {
		b = append(b, `"kind":`...)
		b = httpAppendString(b, e.Kind)
		b = append(b, ',')
	}
	b = append(b, `"key":`...)
	b = httpAppendString(b, e.Key)
	if e.Type != "" {
		b = append(b, `,"type":`...)
		b = httpAppendString(b, e.Type)
	}
	if len(e.Value) > 0 {
		b = append(b, `,"value":`...)
		b = append(b, e.Value...)
	}
	if len(e.Sets) > 0 {
		b = append(b, `,"sets":`...)
		b = appendSets(b, e.Sets)
	}
	if e.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	b = append(b, `,"origin":`...)
	b = httpAppendString(b, e.Origin)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, e.Offset, 10)
	return append(b, '}')
}

// AppendErrorEvent appends to b the event that ends a watch stream because
// of err: "event: error" with the error answer's JSON as data
// ({"error", "code"}).
func AppendErrorEvent(b []byte, err error) []byte {
	data, _ := json.Marshal(httpErrorBody{Error: err.Error(), Code: ErrorCode(err)})
	b = append(b, "event: error\ndata: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}
