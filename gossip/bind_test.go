package gossip

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// TestBindRetriesAPortInUse: a node restarted on its fixed port while the
// port is still held for a moment (as by the previous process's closing
// connections) binds once it is free instead of failing.
func TestBindRetriesAPortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := held.Addr().(*net.TCPAddr).Port
	released := time.AfterFunc(300*time.Millisecond, func() { held.Close() })
	defer released.Stop()
	nd := startNode(t, "n0", nil, func(c *Config) {
		c.BindAddr = "127.0.0.1"
		c.BindPort = port
	})
	if _, got, _ := net.SplitHostPort(nd.g.LocalPeer().Addr); got != strconv.Itoa(port) {
		t.Fatalf("bound %s, want port %d", nd.g.LocalPeer().Addr, port)
	}
}
