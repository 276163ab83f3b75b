package resp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestRESPSubscribe: SUBSCRIBE follows the changes of the keys under a
// prefix, made through RESP or any other way, as JSON events.
func TestRESPSubscribe(t *testing.T) {
	ts := startServer(t, nil, &Options{MaxSubscriptions: 3})
	c := ts.client(t, 3, "")
	ps := c.Subscribe(ctx, "user:")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscribe confirmation
		t.Fatal(err)
	}
	must(t, c.Set(ctx, "other", "x", 0).Err())
	must(t, c.Set(ctx, "user:1", "ann", 0).Err())
	must(t, ts.n.SetAdd("user:2", "m")) // written through the node itself
	must(t, c.Del(ctx, "user:1").Err())
	ch := ps.Channel()
	var got []respEvent
	timeout := time.After(10 * time.Second)
	for len(got) < 3 {
		select {
		case m := <-ch:
			if m.Channel != "user:" {
				t.Fatalf("message on channel %q", m.Channel)
			}
			var ev respEvent
			must(t, json.Unmarshal([]byte(m.Payload), &ev))
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("events so far: %+v", got)
		}
	}
	if got[0].Key != "user:1" || string(got[0].Value) != `"ann"` || got[0].Type != "register" || got[0].Offset == 0 ||
		got[1].Key != "user:2" || string(got[1].Value) != `["m"]` ||
		got[2].Key != "user:1" || !got[2].Deleted {
		t.Fatalf("events: %+v", got)
	}

	raw := dial(t, ts.addr)
	for _, s := range []struct {
		args []string
		want string
	}{
		{[]string{"SUBSCRIBE", "a", "b"}, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"},
		{[]string{"GET", "k"}, "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"},
		{[]string{"SUBSCRIBE", "c"}, "-ERR too many subscriptions\r\n"}, // the server's cap: 3 with user:
		{[]string{"UNSUBSCRIBE", "a"}, "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"},
		{[]string{"SUBSCRIBE", "c"}, "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:2\r\n"},
		{[]string{"UNSUBSCRIBE"}, "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"},
		{[]string{"GET", "k"}, "$-1\r\n"},
	} {
		got := raw.cmd(s.args...)
		for len(got) < len(s.want) && strings.HasPrefix(s.want, got) {
			got += raw.read()
		}
		if got != s.want {
			t.Fatalf("%v = %q, want %q", s.args, got, s.want)
		}
	}
	// A connection that ends takes its subscriptions with it.
	raw.cmd("SUBSCRIBE", "x")
	raw.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for ts.s.subs.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions left, want 1", ts.s.subs.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
