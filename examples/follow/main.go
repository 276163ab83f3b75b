// Command follow keeps a local, always-current copy of the keys under a
// prefix of a shoal node, using nothing but the HTTP API through its Go
// client (package node/client): it reads the changes from GET /v1/watch
// and, when the connection drops (a network blip, the node restarting),
// the subscription reconnects after the last change it fully received, so
// that no change is missed. When the subscription ends (the node shut
// down, or is unreachable for good), the follower subscribes again from
// the offset after the last change it applied. This is how a cache, a
// search indexer or a UI backend would tail shoal.
//
//	follow -addr http://127.0.0.1:7070 -prefix users/
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/client"
)

func main() {
	addr := flag.String("addr", "http://127.0.0.1:7070", "URL of a shoal node's HTTP API")
	prefix := flag.String("prefix", "", "follow the keys starting with this prefix")
	token := flag.String("token", os.Getenv("SHOAL_TOKEN"), "bearer token, if the node requires one")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f := &Follower{Addr: *addr, Prefix: *prefix, Token: *token, Log: os.Stderr,
		OnChange: func(ev node.Event) {
			switch {
			case ev.Kind == node.EventReset:
				fmt.Printf("(resending every key under %q)\n", ev.Key)
			case ev.Kind == node.EventSynced:
				fmt.Printf("(in sync up to offset %d)\n", ev.Offset)
			case ev.Deleted:
				fmt.Printf("%s deleted\n", ev.Key)
			default:
				fmt.Printf("%s = %s\n", ev.Key, valueJSON(ev.Data))
			}
		}}
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "follow:", err)
		os.Exit(1)
	}
}

// valueJSON is the JSON of a value as the client returns it.
func valueJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(strconv.Quote(err.Error()))
	}
	return b
}

// Follower mirrors the keys under Prefix. The first subscription replays
// the node's log from offset 0 (every key's current value once), later ones
// resume after the last change applied.
type Follower struct {
	Addr, Prefix, Token string
	OnChange            func(node.Event) // called in order, from Run's goroutine
	Log                 io.Writer        // resubscription notices; nil = none
	// Backoff is the wait before a reconnection or a new subscription;
	// 0 = 500ms.
	Backoff time.Duration

	mu   sync.Mutex
	next uint64 // the offset after the last change applied
	seen bool   // a change was applied
	view map[string]json.RawMessage
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

// Run follows until ctx ends, subscribing again whenever a subscription
// ends.
func (f *Follower) Run(ctx context.Context) error {
	backoff := f.Backoff
	if backoff == 0 {
		backoff = 500 * time.Millisecond
	}
	c, err := client.New(f.Addr, &client.Options{Token: f.Token, ReconnectDelay: backoff})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		err := f.follow(ctx, c)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.Log != nil {
			fmt.Fprintf(f.Log, "follow: subscription ended (%v); resuming after event %q\n", err, f.lastEventID())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// lastEventID is the WAL offset of the last change applied (the SSE id a
// browser would resume after), "" before the first.
func (f *Follower) lastEventID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.seen {
		return ""
	}
	return strconv.FormatUint(f.next-1, 10)
}

// follow applies the changes of one subscription until it ends.
func (f *Follower) follow(ctx context.Context, c *client.Client) error {
	f.mu.Lock()
	from := f.next
	f.mu.Unlock()
	sub, err := c.SubscribeFrom(ctx, f.Prefix, from)
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		f.apply(ev)
	}
}

// apply updates the view. The client hands out a WAL record's changes only
// once all of them arrived, so after any change the next subscription may
// start at the offset after it.
//
// A catch-up from far back arrives as a full resend instead (reset, the
// state of every key, synced): the view is rebuilt from it, and the next
// subscription starts after it only once synced arrived.
func (f *Follower) apply(ev node.Event) {
	f.mu.Lock()
	if f.view == nil {
		f.view = map[string]json.RawMessage{}
	}
	switch ev.Kind {
	case node.EventReset:
		clear(f.view)
	case node.EventSynced:
		f.next, f.seen = ev.Offset, ev.Offset > 0
	case node.EventState:
		f.view[ev.Key] = valueJSON(ev.Data)
	default:
		if ev.Deleted {
			delete(f.view, ev.Key)
		} else {
			f.view[ev.Key] = valueJSON(ev.Data)
		}
		f.next, f.seen = ev.Offset+1, true
	}
	f.mu.Unlock()
	if f.OnChange != nil {
		f.OnChange(ev)
	}
}
