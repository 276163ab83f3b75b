package resp

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRESPExpiry(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 2, "")
	run(t, c, []step{
		{[]any{"SET", "k", "v", "EX", "100"}, "OK"},
		{[]any{"TTL", "k"}, "100"},
		{[]any{"SET", "k", "v2"}, "OK"}, // a write keeps the expiry (unlike Redis)
		{[]any{"TTL", "k"}, "100"},
		{[]any{"PERSIST", "k"}, "1"},
		{[]any{"TTL", "k"}, "-1"},
		{[]any{"PTTL", "k"}, "-1"},
		{[]any{"PERSIST", "k"}, "0"},
		{[]any{"TTL", "nope"}, "-2"},
		{[]any{"PERSIST", "nope"}, "0"},
		{[]any{"EXPIRE", "nope", "10"}, "0"},
		{[]any{"EXPIRE", "k", "50", "NX"}, "1"},
		{[]any{"EXPIRE", "k", "60", "NX"}, "0"},
		{[]any{"EXPIRE", "k", "70", "GT"}, "1"},
		{[]any{"TTL", "k"}, "70"},
		{[]any{"EXPIRE", "k", "80", "LT"}, "0"},
		{[]any{"EXPIRE", "k", "10", "LT"}, "1"},
		{[]any{"TTL", "k"}, "10"},
		{[]any{"EXPIRE", "k", "10", "XX"}, "1"},
		{[]any{"EXPIRE", "k", "10", "NX", "XX"}, "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{[]any{"EXPIRE", "k", "0"}, "ERR invalid expire time in 'expire' command"},
		{[]any{"EXPIRE", "k", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"EXPIRE", "k", "10", "BOGUS"}, "ERR Unsupported option BOGUS"},
		{[]any{"SET", "k", "v", "EX", "-1"}, "ERR invalid expire time in 'set' command"},
		{[]any{"SET", "k", "v", "EX"}, "ERR syntax error"},
		{[]any{"SET", "k", "v", "KEEPTTL", "EX", "10"}, "ERR syntax error"},
		{[]any{"SET", "k", "v", "EX", "10", "PX", "10"}, "ERR syntax error"},
		{[]any{"SET", "k", "v", "KEEPTTL"}, "OK"},
		{[]any{"SETEX", "s", "100", "v"}, "OK"},
		{[]any{"TTL", "s"}, "100"},
		{[]any{"PSETEX", "s", "0", "v"}, "ERR invalid expire time in 'psetex' command"},
		{[]any{"GETEX", "s", "PERSIST"}, "v"},
		{[]any{"TTL", "s"}, "-1"},
		{[]any{"GETEX", "s", "EX", "30"}, "v"},
		{[]any{"TTL", "s"}, "30"},
		{[]any{"GETEX", "s"}, "v"},
		{[]any{"GETEX", "s", "BOGUS"}, "ERR syntax error"},
		{[]any{"GETEX", "nope", "EX", "30"}, "<nil>"},
		{[]any{"INCR", "n"}, "1"},
		{[]any{"EXPIRE", "n", "100"}, "1"}, // any type can expire
		{[]any{"TTL", "n"}, "100"},
	})
	if at, err := c.ExpireTime(ctx, "n").Result(); err != nil || time.Until(time.Unix(int64(at/time.Second), 0)) < 90*time.Second {
		t.Fatalf("EXPIRETIME = %v, %v", at, err)
	}
	// Inside MULTI, later commands see the expiry set earlier.
	var ttl *redis.DurationCmd
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "tx", "v", 100*time.Second)
		ttl = p.TTL(ctx, "tx")
		return nil
	})
	must(t, err)
	if ttl.Val() != 100*time.Second {
		t.Fatalf("TTL inside MULTI = %v", ttl.Val())
	}
	// A key expires.
	must(t, c.Set(ctx, "short", "v", 0).Err())
	must(t, c.PExpire(ctx, "short", 20*time.Millisecond).Err())
	deadline := time.Now().Add(10 * time.Second)
	for c.Exists(ctx, "short").Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the key did not expire")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v, err := c.TTL(ctx, "short").Result(); err != nil || v != -2 {
		t.Fatalf("TTL of an expired key = %v, %v", v, err)
	}
}
