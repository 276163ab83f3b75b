package client

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is an embedded node served by the real HTTP API handler, and
// a client of it.
type testServer struct {
	n   *node.Node
	h   *httpapi.Handler
	srv *httptest.Server
	c   *Client
}

// serverOptions configure newTestServer; the zero value is an offline node
// with SyncNever, the default handler, and a client with defaults.
type serverOptions struct {
	node    *node.Options
	handler *httpapi.Options
	client  *Options
	// wrap, when set, wraps the handler (to cut streams, delay answers).
	wrap func(*node.Node, http.Handler) http.Handler
	tls  bool
}

func newTestServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	nopts := o.node
	if nopts == nil {
		nopts = &node.Options{Sync: node.SyncNever}
	}
	n, err := node.Open(t.TempDir(), nopts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{n: n, h: httpapi.NewHandler(n, o.handler)}
	var h http.Handler = ts.h
	if o.wrap != nil {
		h = o.wrap(n, h)
	}
	ts.srv = httptest.NewUnstartedServer(h)
	if o.tls {
		// The refused handshakes of the tests are not news.
		ts.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		ts.srv.StartTLS()
	} else {
		ts.srv.Start()
	}
	copts := o.client
	if copts == nil {
		copts = &Options{ReconnectDelay: time.Millisecond, MaxReconnectDelay: 20 * time.Millisecond}
	}
	if o.tls && copts.TLSConfig == nil && copts.CAFile == "" && !copts.InsecureSkipVerify && copts.HTTPClient == nil {
		c := *copts
		c.HTTPClient = ts.srv.Client()
		copts = &c
	}
	ts.c, err = New(ts.srv.URL, copts)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the client, then the server
	// (which waits for open streams), then the node.
	t.Cleanup(func() { _ = n.Close() })
	t.Cleanup(ts.srv.Close)
	t.Cleanup(func() { _ = ts.c.Close() })
	return ts
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
