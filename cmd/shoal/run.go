package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// extraCommands are the commands that run a node or read its files.
func (m *Main) extraCommands() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{
		"agent":   m.runAgent,
		"dev":     m.runDev,
		"wal":     m.runWAL,
		"restore": m.runRestore,
	}
}

// closer is what runUntilSignal shuts down.
type closer interface {
	Close() error
	Err() <-chan error
}

// runUntilSignal waits for the first shutdown signal (or ctx, or a fatal
// serving error), then closes c gracefully. A second signal during the
// graceful shutdown exits the process at once.
func (m *Main) runUntilSignal(ctx context.Context, c closer) error {
	var fatal error
	select {
	case sig := <-m.Signals:
		fmt.Fprintf(m.Stderr, "shoal: %v received, shutting down (again to exit at once)\n", sig)
	case <-ctx.Done():
	case fatal = <-c.Err():
		if fatal == nil {
			fatal = errors.New("the server stopped")
		}
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-m.Signals:
			fmt.Fprintf(m.Stderr, "shoal: second %v, exiting now\n", sig)
			exit := m.Exit
			if exit == nil {
				exit = os.Exit
			}
			exit(exitError)
		case <-done:
		}
	}()
	err := c.Close()
	if fatal != nil {
		return fatal
	}
	return err
}

func (m *Main) runAgent(ctx context.Context, args []string) error {
	c := NewAgentCommand(m.Stderr)
	if err := c.ParseFlags(args, m.Getenv); err != nil {
		return err
	}
	if err := c.Run(ctx); err != nil {
		_ = c.Close()
		return err
	}
	done := make(chan struct{})
	reloaded := make(chan struct{})
	go func() { // rereads the key files on SIGHUP, until the agent stops
		defer close(reloaded)
		for {
			select {
			case <-m.Reloads:
				if err := c.ReloadKeys(); err != nil {
					c.Logger.Error("SIGHUP: keys not reloaded", "err", err)
				} else {
					c.Logger.Info("SIGHUP: keys reloaded")
				}
			case <-done:
				return
			}
		}
	}()
	err := m.runUntilSignal(ctx, c)
	close(done)
	<-reloaded
	return err
}
