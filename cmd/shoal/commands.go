//go:build !shoal_http_draft

package main

import "context"

// extraCommands are the commands that run a node or read its files.
func (m *Main) extraCommands() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{}
}
