package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
	"github.com/shoaldb/shoal/wal"
)

// syncFailFS is the operating system's file system whose file syncs fail
// once fail is set: the node turns read-only.
type syncFailFS struct {
	wal.OSFS
	fail *atomic.Bool
}

func (fs syncFailFS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	f, err := fs.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncFailFile{f, fs.fail}, nil
}

type syncFailFile struct {
	wal.File
	fail *atomic.Bool
}

func (f syncFailFile) Sync() error {
	if f.fail.Load() {
		return errors.New("injected sync failure")
	}
	return f.File.Sync()
}

// TestErrorsMapToSentinels: each kind of error answer of the real handler
// comes back as an *APIError with its status and code, matching node's
// sentinel (or the client's) with errors.Is.
func TestErrorsMapToSentinels(t *testing.T) {
	ctx := context.Background()
	plain := newTestServer(t, serverOptions{node: &node.Options{Sync: node.SyncNever, MaxValueBytes: 1 << 10, SubscriberBuffer: 1}})
	c := plain.c
	if err := c.Put("reg", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Incr("cnt", math.MaxInt64); err != nil {
		t.Fatal(err)
	}

	var failSync atomic.Bool
	readOnly := newTestServer(t, serverOptions{node: &node.Options{WALFS: syncFailFS{fail: &failSync}}})
	failSync.Store(true)
	_ = readOnly.n.Put("k", 1) // the failing write turns the node read-only

	closed := newTestServer(t, serverOptions{})
	_ = closed.n.Close()

	draining := newTestServer(t, serverOptions{})
	draining.h.Drain()

	secured := newTestServer(t, serverOptions{handler: &httpapi.Options{Token: "s3cret"}})

	gc := gossip.DefaultLocalConfig()
	gc.Name = "lonely"
	online := newTestServer(t, serverOptions{node: &node.Options{Sync: node.SyncNever, Gossip: gc}})
	if err := online.c.Put("k", 1); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name     string
		call     func() error
		status   int
		code     string
		sentinel error
	}{
		{"no such key", func() error { _, err := c.Get("nope"); return err }, 404, "not_found", node.ErrNotFound},
		{"wrong type", func() error { _, err := c.Incr("reg", 1); return err }, 409, "wrong_type", node.ErrWrongType},
		{"invalid key", func() error { return c.Do("PUT", "/v1/kv/%FF", nil, json.RawMessage(`1`), nil) }, 400, "invalid_key", node.ErrInvalidKey},
		{"invalid value", func() error { return c.Do("PUT", "/v1/kv/x", nil, json.RawMessage(`{`), nil) }, 400, "invalid_value", node.ErrInvalidValue},
		{"too large", func() error { return c.Put("x", strings.Repeat("a", 2<<10)) }, 413, "too_large", node.ErrTooLarge},
		{"overflow", func() error { _, err := c.Incr("cnt", math.MaxInt64); return err }, 409, "overflow", node.ErrOverflow},
		{"offline", func() error { return c.WaitSynced(ctx) }, 409, "offline", node.ErrOffline},
		{"offset unavailable", func() error { _, err := c.SubscribeFrom(ctx, "", 1<<40); return err }, 410, "offset_unavailable", node.ErrOffsetUnavailable},
		{"read-only", func() error { return readOnly.c.Put("k", 2) }, 503, "read_only", node.ErrReadOnly},
		{"closed", func() error { _, err := closed.c.Get("k"); return err }, 503, "closed", node.ErrClosed},
		{"shutting down", func() error { return draining.c.Put("k", 1) }, 503, "shutting_down", node.ErrClosed},
		{"no token", func() error { _, err := secured.c.Get("k"); return err }, 401, "unauthorized", ErrUnauthorized},
		{"wait timed out", func() error {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			return online.c.WaitSynced(ctx, "ghost")
		}, 504, "timeout", context.DeadlineExceeded},
		{"bad request", func() error { return c.Do("GET", "/v1/kv", map[string][]string{"limit": {"x"}}, nil, nil) }, 400, "bad_request", nil},
		{"no endpoint", func() error { return c.Do("GET", "/v2", nil, nil, nil) }, 404, "no_endpoint", nil},
		{"wrong method", func() error { return c.Do("DELETE", "/v1/status", nil, nil, nil) }, 405, "method_not_allowed", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code || ae.Message == "" || ae.Error() != ae.Message {
				t.Fatalf("error %#v (%v), want an *APIError %d %s with the server's message", err, err, tt.status, tt.code)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tt.sentinel) {
					t.Errorf("errors.Is(%v, %v) = %t", err, s, errors.Is(err, s))
				}
			}
		})
	}
}

// TestErrorCodesMatchTheServer: the code the server gives each node
// sentinel maps back to that sentinel (draining, "shutting_down", to
// ErrClosed).
func TestErrorCodesMatchTheServer(t *testing.T) {
	for _, s := range []error{
		node.ErrNotFound, node.ErrWrongType, node.ErrInvalidKey, node.ErrInvalidValue, node.ErrTooLarge,
		node.ErrOverflow, node.ErrClosed, node.ErrReadOnly, node.ErrOffline, node.ErrOffsetUnavailable,
		node.ErrSlowSubscriber, context.DeadlineExceeded,
	} {
		err := fmt.Errorf("op %q: %w", "k", s)
		code := httpapi.ErrorCode(err)
		got := newAPIError(httpapi.ErrorStatus(err), code, err.Error())
		if !errors.Is(got, s) {
			t.Errorf("%v: the server's code %q maps to %v", s, code, got.sentinel)
		}
	}
	if code := httpapi.ErrorCode(errors.New("something else")); newAPIError(500, code, "x").sentinel != nil {
		t.Errorf("code %q of an unknown error maps to a sentinel", code)
	}
}

// TestErrorsWithoutCode: answers of a server that sends no code map by
// their status; other answers keep their text.
func TestErrorsWithoutCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var status int
		fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/v1/kv/"), &status)
		w.WriteHeader(status)
		if status == 502 {
			fmt.Fprint(w, "bad gateway from a proxy\n")
			return
		}
		fmt.Fprintf(w, `{"error":"answer %d"}`, status)
	}))
	defer srv.Close()
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for status, want := range map[int]error{
		401: ErrUnauthorized, 404: node.ErrNotFound, 409: node.ErrWrongType, 410: node.ErrOffsetUnavailable,
		413: node.ErrTooLarge, 504: context.DeadlineExceeded, 400: nil, 500: nil, 503: nil, 502: nil,
	} {
		_, err := c.Get(fmt.Sprint(status))
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != status || ae.Unwrap() != want {
			t.Errorf("%d: %#v, want an *APIError unwrapping to %v", status, err, want)
		}
		if wantMsg := fmt.Sprintf("answer %d", status); status != 502 && err.Error() != wantMsg {
			t.Errorf("%d: message %q, want %q", status, err, wantMsg)
		}
		if status == 502 && err.Error() != "bad gateway from a proxy" {
			t.Errorf("502: message %q", err)
		}
	}
}
