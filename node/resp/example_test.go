package resp_test

import (
	"bufio"
	"fmt"
	"net"
	"os"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/resp"
)

// Serve a node over RESP on a loopback port; any Redis client can then
// use it (here, the protocol by hand).
func Example() {
	dir, _ := os.MkdirTemp("", "shoal-resp-example-")
	defer os.RemoveAll(dir)
	n, err := node.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer n.Close()
	srv := resp.New(n, &resp.Options{Password: "secret"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, cmd := range []string{"AUTH secret", "SET greeting hello", "INCR visits", "GET greeting"} {
		fmt.Fprintf(c, "%s\r\n", cmd) // an inline command, as telnet sends
		line, _ := r.ReadString('\n')
		if line[0] == '$' { // a bulk string: its bytes follow
			line, _ = r.ReadString('\n')
		}
		fmt.Printf("%s -> %q\n", cmd, line)
	}
	// Output:
	// AUTH secret -> "+OK\r\n"
	// SET greeting hello -> "+OK\r\n"
	// INCR visits -> ":1\r\n"
	// GET greeting -> "hello\r\n"
}
