package main

import (
	"context"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// blockingCloser is a server whose graceful Close hangs until released.
type blockingCloser struct {
	closing chan struct{}
	release chan struct{}
	errc    chan error
}

func (b *blockingCloser) Close() error {
	close(b.closing)
	<-b.release
	return nil
}

func (b *blockingCloser) Err() <-chan error { return b.errc }

// TestSignals: the first signal starts a graceful Close; a second one
// during it exits at once with status 1.
func TestSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	exited := make(chan int, 1)
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: noEnv, Signals: sigs,
		Exit: func(code int) { exited <- code }}
	b := &blockingCloser{closing: make(chan struct{}), release: make(chan struct{}), errc: make(chan error)}
	done := make(chan error, 1)
	go func() { done <- m.runUntilSignal(context.Background(), b) }()
	sigs <- syscall.SIGTERM
	<-b.closing
	sigs <- syscall.SIGINT
	if code := <-exited; code != exitError {
		t.Fatalf("second signal: exit %d", code)
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// One signal and a Close that finishes: no error, no exit.
	b = &blockingCloser{closing: make(chan struct{}), release: make(chan struct{}), errc: make(chan error)}
	close(b.release)
	go func() { done <- m.runUntilSignal(context.Background(), b) }()
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		t.Fatalf("exit %d after a clean shutdown", code)
	default:
	}
}

// TestAgentRunsUntilSignal runs `shoal agent` through Main: it serves
// until a signal (not before), then stops serving and exits 0.
func TestAgentRunsUntilSignal(t *testing.T) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: noEnv, Signals: sigs, Exit: func(int) { t.Error("exit called") }}
	code := make(chan int, 1)
	go func() {
		code <- m.Main(context.Background(), []string{"agent", "--data-dir", t.TempDir(), "--http", addr,
			"--gossip", "127.0.0.1:0", "--log-level", "error"})
	}()
	if err := waitHealthy(context.Background(), "http://"+addr, "", 30*time.Second); err != nil {
		t.Fatalf("the agent never served: %v", err)
	}
	select {
	case c := <-code:
		t.Fatalf("the agent returned %d before any signal", c)
	default:
	}
	sigs <- syscall.SIGTERM
	if c := <-code; c != exitOK {
		t.Fatalf("agent exit status %d", c)
	}
	if err := waitHealthy(context.Background(), "http://"+addr, "", 200*time.Millisecond); err == nil {
		t.Fatal("still serving after the agent returned")
	}
}
