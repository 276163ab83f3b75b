package resp

import (
	"testing"
)

func TestRESPSmoke(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 3, "")
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if v, err := c.Incr(ctx, "c").Result(); err != nil || v != 1 {
		t.Fatalf("INCR = %d, %v", v, err)
	}
}
