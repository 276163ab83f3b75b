// Command board is a collaborative board (columns of cards with a title,
// notes, tags and votes) in the browser, to watch shoal replicas converge.
// It starts two (or --nodes N) embedded replicas in one process, joined
// over loopback gossip; each serves the same page and the HTTP API (under
// /v1) on a port of its own:
//
//	go run ./examples/board            # prints http://127.0.0.1:8080/ and :8081/
//	go run ./examples/board --nodes 3 --port 0
//
// Open two URLs side by side and edit. A card is a map document: title and
// notes are registers (concurrent edits keep a sibling, shown next to the
// winner with a button to keep either), tags a set, votes a counter. Each
// page has an "offline" switch that cuts its replica off from its peers
// (the page keeps working on its own replica); switching back shows the
// merge. The page applies changes from GET /v1/watch and writes with the
// HTTP API; nothing but the API and a small /board endpoint for the switch.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

//go:embed static
var staticFiles embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "board:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fset := flag.NewFlagSet("board", flag.ContinueOnError)
	nodes := fset.Int("nodes", 2, "how many replicas to start")
	port := fset.Int("port", 8080, "HTTP port of the first replica (the others take the next ones; 0 = any free ports)")
	dir := fset.String("data-dir", "", "keep the replicas' data here (default: a temporary directory removed on exit)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 {
		return fmt.Errorf("--nodes %d: want at least 1", *nodes)
	}
	b, err := Start(ctx, Options{Nodes: *nodes, Port: *port, Dir: *dir})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintln(out, "shoal board: open these side by side (Ctrl-C stops)")
	for _, r := range b.Replicas {
		fmt.Fprintf(out, "  %s  %s\n", r.Name, r.URL)
	}
	<-ctx.Done()
	return nil
}

// Options configure a board.
type Options struct {
	Nodes  int    // replicas; 0 = 2
	Port   int    // HTTP port of the first replica, the next ones follow; 0 = free ports
	Dir    string // data directory ("" = a temporary one, removed by Close)
	Logger *slog.Logger
}

// Board is N replicas in one process, each serving the page and the API.
type Board struct {
	Replicas []*Replica
	faults   *gossip.FaultNet
	tempDir  string
}

// Replica is one replica of the board and its web server.
type Replica struct {
	Name string // gossip node name
	URL  string // where its page is served
	Node *node.Node

	board   *Board
	api     *httpapi.Handler
	srv     *http.Server
	served  chan struct{}
	offline atomic.Bool
}

// Start opens the replicas, joins them over loopback gossip and starts
// their web servers. Close stops them.
func Start(ctx context.Context, opts Options) (_ *Board, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.Nodes < 1 || opts.Nodes > 16 {
		return nil, fmt.Errorf("--nodes %d: want 1 to 16", opts.Nodes)
	}
	if opts.Port < 0 || opts.Port+opts.Nodes-1 > 65535 {
		return nil, fmt.Errorf("--port %d: not a port range for %d replicas", opts.Port, opts.Nodes)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The offline switch cuts a replica's traffic in this process's
	// transports: the replicas share one FaultNet.
	b := &Board{faults: gossip.NewFaultNet()}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shoal-board-"); err != nil {
			return nil, err
		}
		b.tempDir = dir
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	var seed string
	for i := range opts.Nodes {
		name := fmt.Sprintf("board%d", i+1)
		g := gossip.DefaultLocalConfig()
		g.Name, g.Faults, g.Logger = name, b.faults, log
		n, err := node.Open(filepath.Join(dir, name), &node.Options{Gossip: g, Logger: log})
		if err != nil {
			return nil, err
		}
		r := &Replica{Name: name, Node: n, board: b, served: make(chan struct{})}
		b.Replicas = append(b.Replicas, r)
		if seed == "" {
			seed = gossipAddr(n)
		} else if err := n.Join(ctx, seed); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		port := 0
		if opts.Port != 0 {
			port = opts.Port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r.URL = "http://" + ln.Addr().String() + "/"
		r.api = httpapi.NewHandler(n, &httpapi.Options{Logger: log})
		mux := http.NewServeMux()
		mux.Handle("/v1/", r.api)
		mux.HandleFunc("/board", r.serveBoard)
		mux.Handle("/", http.FileServerFS(static))
		r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			defer close(r.served)
			_ = r.srv.Serve(ln) // ends with Shutdown
		}()
	}
	return b, nil
}

// gossipAddr is the node's own gossip address.
func gossipAddr(n *node.Node) string {
	for _, m := range n.Members() {
		if m.Self {
			return m.Addr
		}
	}
	return ""
}

// SetOffline cuts the replica off from its peers (true) or reconnects it.
func (r *Replica) SetOffline(offline bool) {
	if r.offline.Swap(offline) == offline {
		return
	}
	if offline {
		r.board.faults.Isolate(r.Name)
	} else {
		r.board.faults.Reconnect(r.Name)
	}
}

// boardState is the answer of /board: who this replica is, whether it is
// offline, and its siblings' pages.
type boardState struct {
	Name     string        `json:"name"`
	Offline  bool          `json:"offline"`
	Replicas []replicaLink `json:"replicas"`
}

type replicaLink struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// serveBoard answers GET /board, and POST /board {"offline": bool} flips
// the offline switch.
func (r *Replica) serveBoard(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet:
	case http.MethodPost:
		var body struct {
			Offline *bool `json:"offline"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Offline == nil {
			msg := `want {"offline": true|false}`
			if err != nil {
				msg += ": " + err.Error()
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
			return
		}
		r.SetOffline(*body.Offline)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET or POST /board"})
		return
	}
	st := boardState{Name: r.Name, Offline: r.offline.Load()}
	for _, o := range r.board.Replicas {
		st.Replicas = append(st.Replicas, replicaLink{Name: o.Name, URL: o.URL})
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Close stops the web servers (ending the pages' watch streams), then
// closes the replicas, and removes the temporary data directory. Safe to
// call twice.
func (b *Board) Close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range b.Replicas {
		if r.srv != nil {
			r.api.Drain()
			if err := r.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
				_ = r.srv.Close()
			}
			<-r.served
			r.srv = nil
		}
	}
	for _, r := range b.Replicas {
		if err := r.Node.Close(); err != nil && !errors.Is(err, node.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
		}
	}
	if b.tempDir != "" {
		errs = append(errs, os.RemoveAll(b.tempDir))
		b.tempDir = ""
	}
	return errors.Join(errs...)
}
