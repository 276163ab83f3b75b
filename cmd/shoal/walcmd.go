package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoaldb/shoal/node"
)

const walUsage = `Usage: shoal wal verify DIR [flags]
       shoal wal dump DIR [--from OFFSET] [--prefix KEY] [--follow] [flags]
       shoal wal repair DIR [flags]

Offline tools for a data directory (DIR may also be its WAL directory for
verify and dump). verify and dump only read: they never repair, lock or
change anything, so they are safe on the directory of a running node.

verify checks every WAL segment (header, every frame's checksum, the Append
boundaries, contiguous offsets), every index entry against its store, that
every record decodes as an operation, and every snapshot. It reports what is
damaged and where, and exits 1 when something is: corruption anywhere
(including damage in the last segment with intact records after it, which
the node refuses to open), a gap, an index entry that disagrees with its
store, an undecodable record or snapshot, a snapshot that covers records
beyond the WAL's end. A torn tail of the last segment (what a crash leaves;
the next open cuts it) and a missing or incomplete index (a cache, rebuilt
on open) are warnings.

repair makes a data directory the node refuses to open (a corrupt WAL, a
snapshot beyond the WAL's end) open again, losing as little as it can: it
keeps the newest valid snapshot and the intact WAL after it, or the WAL up
to the damage, whichever keeps more; moves everything else to side files it
never overwrites (nothing is deleted); and gives the node a new replica
identity so that no operation it lost is ever issued again. It prints what
it set aside. The node must be stopped. Once it runs again, its peers send
back the operations it lost that they hold.

dump prints the decoded operations as JSON lines, one per operation and key:
offset, kind, origin replica, HLC time, the key, its type, the op's dots and
the delta. --follow keeps printing operations as the node appends them.
`

func (m *Main) runWAL(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(m.Stdout, walUsage)
		if len(args) == 0 {
			return usageError("wal: say which: verify, dump or repair")
		}
		return nil
	}
	switch args[0] {
	case "verify":
		return m.runWALVerify(args[1:])
	case "dump":
		return m.runWALDump(ctx, args[1:])
	case "repair":
		return m.runWALRepair(args[1:])
	}
	return usageError("wal: unknown command %q (want verify, dump or repair)", args[0])
}

// A node's data directory keeps its WAL in this subdirectory (node's doc
// lists its files).
const dataWALDir = "wal"

// parseDirCommand parses the arguments of a wal command that takes one DIR
// and an --output format.
func (m *Main) parseDirCommand(name string, args []string) (dir, output string, err error) {
	fs := newFlagSet("wal "+name, m.Stderr, walUsage+"\n")
	out := fs.String("output", "human", "report format: human or json")
	fs.StringVar(out, "o", "human", "shorthand for --output")
	pos, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return "", "", err
	}
	if len(pos) != 1 {
		return "", "", usageError("wal %s: want one DIR", name)
	}
	return pos[0], *out, nil
}

func (m *Main) runWALVerify(args []string) error {
	dir, output, err := m.parseDirCommand("verify", args)
	if err != nil {
		return err
	}
	rep, err := node.Inspect(dir)
	if err != nil {
		return err
	}
	if output == "json" {
		if err := json.NewEncoder(m.Stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		printVerifyReport(m.Stdout, rep)
	}
	if !rep.OK {
		return fmt.Errorf("%s is damaged (%d problem(s))", dir, rep.Errors())
	}
	return nil
}

func printVerifyReport(w io.Writer, r *node.Inspection) {
	fmt.Fprintf(w, "%s: %d segment(s), offsets [%d, %d), %d record(s), %d op(s) decoded, %d snapshot(s)\n",
		r.Dir, r.Segments, r.First, r.Next, r.Records, r.Ops, len(r.Snapshots))
	for _, p := range r.Problems {
		where := p.File
		if p.Byte != nil {
			where += fmt.Sprintf(" byte %d", *p.Byte)
		}
		if p.Record != nil {
			where += fmt.Sprintf(" (record %d)", *p.Record)
		}
		fmt.Fprintf(w, "%-7s %s: %s\n", strings.ToUpper(p.Severity), where, p.Problem)
	}
	if r.OK {
		fmt.Fprintf(w, "ok (%d warning(s))\n", r.Warnings())
	} else {
		fmt.Fprintf(w, "DAMAGED: %d error(s), %d warning(s)\n", r.Errors(), r.Warnings())
	}
}

// ---- repair

func (m *Main) runWALRepair(args []string) error {
	dir, output, err := m.parseDirCommand("repair", args)
	if err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(dir, dataWALDir)); err != nil || !st.IsDir() {
		return fmt.Errorf("wal repair: %s is not a node's data directory (no %s/ in it)", dir, dataWALDir)
	}
	rep, err := node.Repair(dir, nil)
	if err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(m.Stdout).Encode(rep)
	}
	printRepairReport(m.Stdout, rep)
	return nil
}

func printRepairReport(w io.Writer, r *node.RepairReport) {
	if !r.Changed {
		fmt.Fprintf(w, "%s: nothing to repair (replica %s, incarnation %d)\n", r.Dir, r.NewReplica, r.Incarnation)
		return
	}
	fmt.Fprintf(w, "repaired %s\n", r.Dir)
	if r.Snapshot != "" {
		fmt.Fprintf(w, "  state starts from snapshot %s\n", r.Snapshot)
	}
	if r.WAL != nil {
		fmt.Fprintf(w, "  the WAL holds records [%d, %d); %d intact record(s) after them set aside", r.WAL.First, r.WAL.Next, r.WAL.Dropped)
		if r.WAL.Before > 0 {
			fmt.Fprintf(w, ", and %d before them that the snapshot holds", r.WAL.Before)
		}
		fmt.Fprintln(w)
		for _, sa := range r.WAL.SetAside {
			what := "bytes cut from"
			if sa.Whole {
				what = "moved aside from"
			}
			fmt.Fprintf(w, "  set aside: %s (%d bytes, %d intact record(s) %s %s)\n", sa.Path, sa.Bytes, sa.Records, what, filepath.Base(sa.From))
		}
	}
	for _, p := range r.SnapshotsSetAside {
		fmt.Fprintf(w, "  set aside: %s (snapshot beyond the kept WAL)\n", p)
	}
	fmt.Fprintf(w, "  new replica ID %s (incarnation %d; was %s)\n", r.NewReplica, r.Incarnation, r.OldReplica)
	fmt.Fprintf(w, "Start the node: its peers send back the operations it lost that they hold.\n")
}

// ---- dump

func (m *Main) runWALDump(ctx context.Context, args []string) error {
	fs := newFlagSet("wal dump", m.Stderr, walUsage+"\n")
	from := fs.Uint64("from", 0, "first WAL offset to print")
	prefix := fs.String("prefix", "", "print only keys with this prefix")
	follow := fs.Bool("follow", false, "keep printing operations as they are appended")
	poll := fs.Duration("poll", 200*time.Millisecond, "how often --follow looks for new records")
	pos, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("wal dump: want one DIR")
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetEscapeHTML(false)
	r := node.NewLogReader(pos[0], *from)
	var tick <-chan time.Time
	if *follow {
		t := time.NewTicker(*poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		off, op, err := r.Next()
		switch {
		case err == nil:
			for _, line := range node.DescribeOp(off, op, *prefix) {
				if err := enc.Encode(line); err != nil {
					return err
				}
			}
			continue
		case errors.Is(err, io.EOF):
		case errors.As(err, new(*node.RecordError)):
			// One record that does not decode: say so and go on.
			if err := enc.Encode(map[string]any{"offset": off, "error": err.Error()}); err != nil {
				return err
			}
			continue
		case errors.Is(err, node.ErrOffsetUnavailable):
			return fmt.Errorf("%w; restart with --from %d", err, r.Offset())
		default:
			return err
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}
