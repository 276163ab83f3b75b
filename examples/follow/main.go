// Command follow keeps a local, always-current copy of the keys under a
// prefix of a shoal node, using nothing but the HTTP API and net/http: it
// reads the changes as Server-Sent Events from GET /v1/watch and, when the
// connection drops (a network blip, the node restarting), reconnects with
// the id of the last event it fully received (Last-Event-ID) so that no
// change is missed. This is how a cache, a search indexer or a UI backend
// would tail shoal.
//
//	follow -addr http://127.0.0.1:7070 -prefix users/
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "http://127.0.0.1:7070", "URL of a shoal node's HTTP API")
	prefix := flag.String("prefix", "", "follow the keys starting with this prefix")
	token := flag.String("token", os.Getenv("SHOAL_TOKEN"), "bearer token, if the node requires one")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f := &Follower{Addr: *addr, Prefix: *prefix, Token: *token, Log: os.Stderr,
		OnChange: func(c Change) {
			if c.Deleted {
				fmt.Printf("%s deleted\n", c.Key)
			} else {
				fmt.Printf("%s = %s\n", c.Key, c.Value)
			}
		}}
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "follow:", err)
		os.Exit(1)
	}
}

// Change is one change event of GET /v1/watch.
type Change struct {
	Key     string          `json:"key"`
	Type    string          `json:"type"`
	Value   json.RawMessage `json:"value"`
	Deleted bool            `json:"deleted"`
	Origin  string          `json:"origin"`
	Offset  uint64          `json:"offset"`
}

// Follower mirrors the keys under Prefix. The first connection replays the
// node's log from offset 0 (every key's current value once), later ones
// resume after the last event received.
type Follower struct {
	Addr, Prefix, Token string
	OnChange            func(Change) // called in order, from Run's goroutine
	Log                 io.Writer    // reconnect notices; nil = none
	Backoff             time.Duration

	mu     sync.Mutex
	lastID string
	view   map[string]json.RawMessage
}

// View returns a copy of the mirrored keys and values.
func (f *Follower) View() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]json.RawMessage, len(f.view))
	for k, v := range f.view {
		out[k] = v
	}
	return out
}

// Keys returns the mirrored keys, sorted.
func (f *Follower) Keys() []string {
	v := f.View()
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Run follows until ctx ends, reconnecting after every error.
func (f *Follower) Run(ctx context.Context) error {
	backoff := f.Backoff
	if backoff == 0 {
		backoff = 500 * time.Millisecond
	}
	for {
		err := f.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.Log != nil {
			fmt.Fprintf(f.Log, "follow: stream ended (%v); resuming after event %q\n", err, f.lastEventID())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func (f *Follower) lastEventID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastID
}

// stream reads one SSE connection until it ends.
func (f *Follower) stream(ctx context.Context) error {
	q := url.Values{"prefix": {f.Prefix}}
	last := f.lastEventID()
	if last == "" {
		q.Set("from", "0") // first time: replay what the log holds
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(f.Addr, "/")+"/v1/watch?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	if f.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("watch: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "": // end of an event
			if event == "error" {
				return fmt.Errorf("server: %s", data)
			}
			if data != "" {
				var c Change
				if err := json.Unmarshal([]byte(data), &c); err != nil {
					return fmt.Errorf("bad event %q: %w", data, err)
				}
				f.apply(c, id)
			}
			id, event, data = "", "", ""
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// apply updates the view; an id marks the end of a WAL record, the point
// to resume after.
func (f *Follower) apply(c Change, id string) {
	f.mu.Lock()
	if f.view == nil {
		f.view = map[string]json.RawMessage{}
	}
	if c.Deleted {
		delete(f.view, c.Key)
	} else {
		f.view[c.Key] = c.Value
	}
	if id != "" {
		f.lastID = id
	}
	f.mu.Unlock()
	if f.OnChange != nil {
		f.OnChange(c)
	}
}
