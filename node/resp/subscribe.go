package resp

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/shoaldb/shoal/node"
)

// Subscriptions: SUBSCRIBE takes key prefixes as channel names and
// delivers the node's change feed (node.Subscribe, the feed of the HTTP
// API's /v1/watch) as pub/sub messages: ["message", prefix, event] where
// event is the JSON of one change, {"key","type","value","origin",
// "offset"} or {"key","deleted":true,...}, local and replicated writes
// alike. The feed has an event per key a record changed, with the value
// after the record: writes of one key that share a record (a pipelined
// round, or concurrent plain writes of several connections, see
// combine.go) show as one change. A subscriber that falls behind the
// node's buffer is told so and disconnected; writers never wait for it.

// maxSubscriptionsPerConn bounds one connection's prefixes.
const maxSubscriptionsPerConn = 16

// subscription is one prefix a connection follows; its goroutine writes
// the events.
type subscription struct {
	prefix string
	cancel context.CancelFunc
	done   chan struct{}
}

// respEvent is the JSON of one change event, as /v1/watch sends it.
type respEvent struct {
	Key     string          `json:"key"`
	Type    string          `json:"type,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
	Origin  string          `json:"origin"`
	Offset  uint64          `json:"offset"`
}

func (c *conn) subscribe(a [][]byte) {
	for _, p := range a[1:] {
		prefix := string(p)
		if !slices.ContainsFunc(c.subs, func(s *subscription) bool { return s.prefix == prefix }) {
			if len(c.subs) >= maxSubscriptionsPerConn || c.s.subs.Add(1) > int64(c.s.opts.MaxSubscriptions) {
				if len(c.subs) < maxSubscriptionsPerConn {
					c.s.subs.Add(-1)
				}
				c.o.err("ERR too many subscriptions")
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			sub, err := c.s.n.Subscribe(ctx, prefix)
			if err != nil {
				cancel()
				c.s.subs.Add(-1)
				c.o.err(nodeError(err))
				return
			}
			s := &subscription{prefix: prefix, cancel: cancel, done: make(chan struct{})}
			c.subs = append(c.subs, s)
			go c.follow(ctx, s, sub)
		}
		c.o.push(3)
		c.o.bulkString("subscribe")
		c.o.bulkString(prefix)
		c.o.int(int64(len(c.subs)))
	}
}

func (c *conn) unsubscribe(a [][]byte) {
	names := a[1:]
	if len(names) == 0 {
		for _, s := range c.subs {
			names = append(names, []byte(s.prefix))
		}
		if len(names) == 0 {
			c.o.push(3)
			c.o.bulkString("unsubscribe")
			c.o.null()
			c.o.int(0)
			return
		}
	}
	for _, p := range names {
		i := slices.IndexFunc(c.subs, func(s *subscription) bool { return s.prefix == string(p) })
		if i >= 0 {
			c.stopSub(c.subs[i])
			c.subs = slices.Delete(c.subs, i, i+1)
		}
		c.o.push(3)
		c.o.bulkString("unsubscribe")
		c.o.bulk(p)
		c.o.int(int64(len(c.subs)))
	}
}

// stopSub ends a subscription and waits for its goroutine. The caller
// holds c.wmu, which the goroutine may be waiting for: it is released
// meanwhile.
func (c *conn) stopSub(s *subscription) {
	s.cancel()
	c.wmu.Unlock()
	<-s.done
	c.wmu.Lock()
	c.s.subs.Add(-1)
}

// stopAllSubs ends every subscription (the connection is closing).
func (c *conn) stopAllSubs() {
	for _, s := range c.subs {
		s.cancel()
		<-s.done
		c.s.subs.Add(-1)
	}
	c.subs = nil
}

// follow writes the events of one subscription until it ends.
func (c *conn) follow(ctx context.Context, s *subscription, sub *node.Subscription) {
	defer close(s.done)
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if errors.Is(err, node.ErrSlowSubscriber) {
				c.wmu.Lock()
				c.o.err("ERR subscriber fell behind the node's buffer and is disconnected: " + s.prefix)
				c.flushLocked()
				c.wmu.Unlock()
				c.nc.Close()
			}
			return
		}
		msg := respEvent{Key: ev.Key, Type: string(ev.Type), Deleted: ev.Deleted, Origin: ev.Origin, Offset: ev.Offset}
		if !ev.Deleted {
			if msg.Value, err = node.EncodeValue(ev.Data); err != nil {
				continue
			}
		}
		b, err := json.Marshal(msg)
		if err != nil {
			continue
		}
		c.wmu.Lock()
		c.o.push(3)
		c.o.bulkString("message")
		c.o.bulkString(s.prefix)
		c.o.bulk(b)
		ok := c.flushLocked()
		c.wmu.Unlock()
		if !ok {
			c.nc.Close()
			return
		}
	}
}

// subscribedOK reports whether a command may run on a subscribed
// connection (Redis's rule, also under RESP3 here).
func subscribedOK(name string) bool {
	switch name {
	case "subscribe", "unsubscribe", "ping", "quit", "reset":
		return true
	}
	return false
}

func errSubscribed(name string) string {
	return "ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
}

// flushLocked writes the buffered replies; the caller holds c.wmu. The
// write deadline is moved only when half of it has passed: setting it is
// a few percent of a small command's CPU.
func (c *conn) flushLocked() bool {
	now := time.Now()
	if now.Add(c.s.opts.WriteTimeout / 2).After(c.deadline) {
		c.deadline = now.Add(c.s.opts.WriteTimeout)
		_ = c.nc.SetWriteDeadline(c.deadline)
	}
	return c.o.w.Flush() == nil
}
