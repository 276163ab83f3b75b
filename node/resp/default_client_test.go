package resp

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRESPDefaultClient: go-redis with its default options (RESP3, the
// maintenance-notification handshake in auto mode, client-side identity)
// connects and works.
func TestRESPDefaultClient(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := redis.NewClient(&redis.Options{Addr: ts.addr})
	defer c.Close()
	must(t, c.Set(ctx, "k", "v", 0).Err())
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
}
