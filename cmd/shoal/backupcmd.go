package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shoaldb/shoal/node"
)

// backupCommand saves a running node's backup (GET /v1/backup) to FILE.
var backupCommand = &clientCommand{
	name: "backup", args: "FILE", summary: "save a consistent backup of a running node to FILE",
	detail: `Streams a consistent copy of the node's state (GET /v1/backup) into FILE.tmp,
checks it whole (layout, checksum, a state that loads), then makes it FILE
(fsynced, renamed: FILE is never a partial backup). "shoal restore FILE DIR"
makes a data directory from it.`,
	minArgs: 1, maxArgs: 1,
	run: runBackup,
}

func init() { clientCommands = append(clientCommands, backupCommand) }

func runBackup(ctx context.Context, c *clientCmd, args []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	path := args[0]
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := api.Backup(ctx, f); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, err := node.CheckBackup(f)
	if err != nil {
		return fmt.Errorf("backup: the node's answer is not a whole backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	keep = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if c.Output == "json" {
		return json.NewEncoder(c.Stdout).Encode(struct {
			File string `json:"file"`
			*node.BackupInfo
		}{path, info})
	}
	fmt.Fprintf(c.Stdout, "saved %s: %d keys, %d bytes, from replica %s (%d WAL records), taken %s\n",
		path, info.Keys, info.Bytes, info.Replica, info.Records, info.Taken.Format("2006-01-02 15:04:05Z07:00"))
	return nil
}

const restoreUsage = `Usage: shoal restore FILE DIR [flags]

Creates the data directory DIR (absent or empty) from the backup FILE (made
by "shoal backup" or GET /v1/backup). The backup is checked whole first: a
truncated, damaged or foreign file is refused with what is wrong, and
nothing is written. The new directory takes a new replica ID (never the one
the backup was taken from), so an agent started on it joins a cluster as a
new replica, alongside the original if that still runs, and converges.

`

func (m *Main) runRestore(_ context.Context, args []string) error {
	fs := newFlagSet("restore", m.Stderr, restoreUsage)
	out := fs.String("output", "human", "report format: human or json")
	fs.StringVar(out, "o", "human", "shorthand for --output")
	pos, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("restore: want FILE DIR")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	rep, err := node.Restore(f, pos[1], nil)
	if err != nil {
		if errors.Is(err, node.ErrCorrupt) {
			return fmt.Errorf("restore: %s: %w (nothing written)", pos[0], err)
		}
		return fmt.Errorf("restore: %w", err)
	}
	if *out == "json" {
		return json.NewEncoder(m.Stdout).Encode(rep)
	}
	fmt.Fprintf(m.Stdout, "restored %s: %d keys from a backup of replica %s taken %s; new replica ID %s\n",
		rep.Dir, rep.Backup.Keys, rep.Backup.Replica, rep.Backup.Taken.Format("2006-01-02 15:04:05Z07:00"), rep.Replica)
	return nil
}
