package node

import (
	"io"
	"net"
	"testing"
	"time"
)

// sendGarbage writes bytes that are no protocol at all to a TCP port.
func sendGarbage(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("\xfe\xfdGARBAGE-GARBAGE-GARBAGE-GARBAGE-GARBAGE-GARBAGE"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c)
}
