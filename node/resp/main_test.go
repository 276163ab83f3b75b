package resp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/goleak"

	"github.com/shoaldb/shoal/node"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// A closed client's connections may take a moment to end.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
				code = 1
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// testServer is a node in a temporary directory served over RESP on a
// loopback port.
type testServer struct {
	n    *node.Node
	s    *Server
	addr string
}

func startServer(t testing.TB, nopts *node.Options, opts *Options) *testServer {
	t.Helper()
	if nopts == nil {
		nopts = &node.Options{Sync: node.SyncNever}
	}
	n, err := node.Open(t.TempDir(), nopts)
	if err != nil {
		t.Fatal(err)
	}
	s := New(n, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
		n.Close()
	})
	return &testServer{n: n, s: s, addr: ln.Addr().String()}
}

// client returns a go-redis client of ts (RESP3 unless proto says 2).
func (ts *testServer) client(t testing.TB, proto int, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                     ts.addr,
		Protocol:                 proto,
		Password:                 password,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		PoolSize:                 4,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

var ctx = context.Background()
