package main

import (
	"bytes"
	"testing"
)

// FuzzReadSSE: whatever a server streams, the client's SSE decoder returns
// an error or events, never panics.
func FuzzReadSSE(f *testing.F) {
	f.Add("id: 1\ndata: {\"key\":\"a\",\"offset\":1}\n\n")
	f.Add("event: error\ndata: {\"error\":\"x\"}\n\n")
	f.Add(": c\n\ndata: {\ndata: }\n\n")
	f.Add("data: [1,2]\n\nid\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = readSSE(bytes.NewReader([]byte(s)), func(Event) error { return nil })
	})
}
