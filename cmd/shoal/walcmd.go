package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/wal"
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

// A node's data directory keeps its WAL and its snapshots in these
// subdirectories (node's doc lists its files).
const (
	dataWALDir      = "wal"
	dataSnapshotDir = "snapshots"
)

// walDirOf finds the WAL directory of a data directory: DIR/<dataWALDir>
// when it exists, else DIR itself.
func walDirOf(dir string) string {
	sub := filepath.Join(dir, dataWALDir)
	if st, err := os.Stat(sub); err == nil && st.IsDir() {
		return sub
	}
	return dir
}

// walProblem is one finding of wal verify.
type walProblem struct {
	Severity string  `json:"severity"` // "error" or "warning"
	File     string  `json:"file"`
	Byte     *int64  `json:"byte,omitempty"`
	Record   *uint64 `json:"record,omitempty"`
	Problem  string  `json:"problem"`
}

type walVerifyReport struct {
	Dir       string       `json:"dir"`
	Segments  int          `json:"segments"`
	First     uint64       `json:"first_offset"`
	Next      uint64       `json:"next_offset"`
	Records   uint64       `json:"records"`
	Ops       uint64       `json:"ops_decoded"`
	Snapshots []string     `json:"snapshots"`
	Problems  []walProblem `json:"problems"`
	OK        bool         `json:"ok"`
}

func (r *walVerifyReport) add(sev, file string, byteAt *int64, rec *uint64, format string, args ...any) {
	r.Problems = append(r.Problems, walProblem{Severity: sev, File: file, Byte: byteAt, Record: rec, Problem: fmt.Sprintf(format, args...)})
}

func ptr[T any](v T) *T { return &v }

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
	rep, err := verifyDataDir(dir)
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
		return fmt.Errorf("%s is damaged (%d problem(s))", dir, countSeverity(rep, "error"))
	}
	return nil
}

func countSeverity(r *walVerifyReport, sev string) int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == sev {
			n++
		}
	}
	return n
}

// verifyDataDir checks a data directory (or a bare WAL directory) without
// changing it: the WAL through wal.Inspect, every record through
// node.DecodeOp, the snapshots through verifySnapshots.
func verifyDataDir(dir string) (*walVerifyReport, error) {
	rep := &walVerifyReport{Dir: dir, Snapshots: []string{}, Problems: []walProblem{}}
	in, err := wal.Inspect(walDirOf(dir), &wal.InspectOptions{MaxRecordBytes: wal.MaxRecordLimit,
		OnRecord: func(off uint64, rec []byte) error {
			rep.Records++
			if _, err := node.DecodeOp(rec); err != nil {
				rep.add("error", dataWALDir, nil, ptr(off), "record does not decode as an operation: %v", err)
			} else {
				rep.Ops++
			}
			return nil
		}})
	if err != nil {
		return nil, err
	}
	rep.Segments, rep.First, rep.Next = len(in.Segments), in.First, in.Next
	for _, p := range in.Problems {
		sev := "error"
		switch p.Kind {
		case wal.ProblemTornTail, wal.ProblemIndexIncomplete, wal.ProblemLeftover:
			sev = "warning"
		}
		var at *int64
		var rec *uint64
		if p.Byte >= 0 {
			at, rec = ptr(p.Byte), ptr(p.Record)
		}
		rep.add(sev, filepath.Base(p.Path), at, rec, "%s: %s", p.Kind, p.Reason)
	}
	if err := verifySnapshots(dir, rep); err != nil {
		return nil, err
	}
	rep.OK = countSeverity(rep, "error") == 0
	return rep, nil
}

// verifySnapshots checks every snapshot file of the data directory, and
// that the WAL plus the newest valid snapshot hold everything: a WAL that
// starts above offset 0 needs a snapshot covering the offsets below it.
func verifySnapshots(dir string, rep *walVerifyReport) error {
	sdir := filepath.Join(dir, dataSnapshotDir)
	ents, err := os.ReadDir(sdir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	covered, found := uint64(0), false
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".snap") {
			continue
		}
		name := filepath.Join(dataSnapshotDir, e.Name())
		rep.Snapshots = append(rep.Snapshots, e.Name())
		c, err := node.CheckSnapshot(filepath.Join(sdir, e.Name()))
		if err != nil {
			rep.add("error", name, nil, nil, "snapshot does not load: %v", err)
			continue
		}
		if rep.Segments > 0 && c+1 > rep.Next {
			rep.add("error", name, nil, ptr(c), "snapshot covers WAL records up to %d but the WAL ends at %d: the node refuses to open (shoal wal repair)", c, rep.Next)
		}
		if !found || c > covered {
			covered, found = c, true
		}
	}
	if rep.Segments > 0 && rep.First > 0 && (!found || covered+1 < rep.First) {
		what := "no valid snapshot"
		if found {
			what = fmt.Sprintf("the newest valid snapshot covers up to %d", covered)
		}
		rep.add("error", dataSnapshotDir, nil, ptr(rep.First), "the WAL starts at offset %d but %s: operations are missing", rep.First, what)
	}
	return nil
}

func printVerifyReport(w io.Writer, r *walVerifyReport) {
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
		fmt.Fprintf(w, "ok (%d warning(s))\n", countSeverity(r, "warning"))
	} else {
		fmt.Fprintf(w, "DAMAGED: %d error(s), %d warning(s)\n", countSeverity(r, "error"), countSeverity(r, "warning"))
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
	print := func(off uint64, rec []byte) error {
		if off < *from {
			return nil
		}
		op, err := node.DecodeOp(rec)
		if err != nil {
			return enc.Encode(map[string]any{"offset": off, "error": err.Error()})
		}
		for _, line := range opLines(off, op, *prefix) {
			if err := enc.Encode(line); err != nil {
				return err
			}
		}
		return nil
	}
	return tailWAL(ctx, walDirOf(pos[0]), *from, *follow, *poll, print)
}

// tailWAL reads every complete record at or after from, in order (through
// wal.Tail: no lock, no change), and with follow keeps reading what is
// appended (new segments included), looking every poll, until ctx ends.
// Damage is an error; a torn tail of the last segment is where reading
// waits (a write in progress) or stops.
func tailWAL(ctx context.Context, dir string, from uint64, follow bool, poll time.Duration, fn func(off uint64, rec []byte) error) error {
	tl := wal.NewTail(dir, from, &wal.InspectOptions{MaxRecordBytes: wal.MaxRecordLimit})
	var tick <-chan time.Time
	if follow {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		off, rec, err := tl.Next()
		switch {
		case err == nil:
			if err := fn(off, rec); err != nil {
				return err
			}
			continue
		case errors.Is(err, io.EOF):
		case errors.Is(err, wal.ErrTruncated):
			return fmt.Errorf("%w; restart with --from %d", err, tl.Offset())
		case errors.Is(err, wal.ErrCorrupt):
			return fmt.Errorf("%s is damaged: %w", dir, err)
		default:
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}

// dumpLine is one line of wal dump.
type dumpLine struct {
	Offset uint64          `json:"offset"`
	Kind   string          `json:"kind"`
	Origin string          `json:"origin"`
	Time   string          `json:"time"` // the HLC's physical part
	HLC    uint64          `json:"hlc"`
	Key    string          `json:"key,omitempty"`
	Type   string          `json:"type,omitempty"`
	Dots   []string        `json:"dots,omitempty"`
	Range  []string        `json:"range,omitempty"` // state-range ops: [lo, hi)
	Delta  *map[string]any `json:"delta,omitempty"`
}

// opLines renders one op as JSON lines: one per key it touches (or one for
// an op without keys), filtered by key prefix.
func opLines(off uint64, op *node.Op, prefix string) []dumpLine {
	base := dumpLine{
		Offset: off,
		Kind:   op.Kind.String(),
		Origin: op.Origin.String(),
		Time:   time.UnixMilli(op.Time.Physical()).UTC().Format(time.RFC3339Nano),
		HLC:    uint64(op.Time),
	}
	if op.Kind == node.OpStateRange {
		base.Range = []string{op.Lo, op.Hi}
	}
	var keys []string
	if op.Delta != nil {
		for k := range op.Delta.Keys {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, r := range op.Delta.Dots() {
			base.Dots = append(base.Dots, dotRangeString(r))
		}
	}
	if len(keys) == 0 {
		if prefix != "" {
			return nil
		}
		return []dumpLine{base}
	}
	lines := make([]dumpLine, 0, len(keys))
	for _, k := range keys {
		line := base
		w := wireEntry(op.Delta.Keys[k])
		d := renderEntry(w)
		line.Key, line.Type, line.Delta = k, entryType(w), &d
		lines = append(lines, line)
	}
	return lines
}

func dotRangeString(r crdt.DotRange) string {
	if r.First == r.Last {
		return fmt.Sprintf("%s:%d", r.Replica, r.First)
	}
	return fmt.Sprintf("%s:%d-%d", r.Replica, r.First, r.Last)
}

// The keys of a delta are rendered from their wire form (the msgpack tags
// of crdt.Entry, a persisted format) rather than from crdt's Go structs,
// which may change shape without changing the bytes.

// wireEntry returns an entry's msgpack encoding decoded generically.
func wireEntry(e *crdt.Entry) map[string]any {
	if e == nil {
		return nil
	}
	b, err := msgpack.Marshal(e)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

// entryType names the type(s) an entry of a delta holds; "delete" for a
// removal with no value.
func entryType(w map[string]any) string {
	var ts []string
	for _, t := range []struct{ tag, name string }{{"m", "map"}, {"s", "set"}, {"n", "counter"}, {"r", "register"}, {"f", "flag"}} {
		if v, ok := w[t.tag]; ok && !isEmptyWire(v) {
			ts = append(ts, t.name)
		}
	}
	switch len(ts) {
	case 0:
		return "delete"
	case 1:
		return ts[0]
	}
	return strings.Join(ts, "+")
}

func isEmptyWire(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

func wireUint(v any) uint64 {
	switch t := v.(type) {
	case int8:
		return uint64(t)
	case int16:
		return uint64(t)
	case int32:
		return uint64(t)
	case int64:
		return uint64(t)
	case uint8:
		return uint64(t)
	case uint16:
		return uint64(t)
	case uint32:
		return uint64(t)
	case uint64:
		return t
	}
	return 0
}

// wireDot renders a dot {"r": replica, "s": seq} as "replica:seq".
func wireDot(v any) string {
	m, _ := v.(map[string]any)
	return crdt.Dot{Replica: crdt.ReplicaID(wireUint(m["r"])), Seq: wireUint(m["s"])}.String()
}

func wireDots(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, d := range l {
		out = append(out, wireDot(d))
	}
	return out
}

// renderEntry turns an entry's wire form into JSON-friendly values: dots
// as "replica:seq", register values as JSON.
func renderEntry(w map[string]any) map[string]any {
	out := map[string]any{}
	if a, _ := w["a"].(bool); a {
		out["removes_all_observed"] = true
	}
	if regs, _ := w["r"].([]any); len(regs) > 0 {
		var rs []map[string]any
		for _, r := range regs {
			rm, _ := r.(map[string]any)
			var v json.RawMessage
			switch b := rm["v"].(type) {
			case []byte:
				v = b
			case string:
				v = json.RawMessage(b)
			}
			if !json.Valid(v) {
				v, _ = json.Marshal(string(v))
			}
			rs = append(rs, map[string]any{"dot": wireDot(rm["d"]), "hlc": wireUint(rm["t"]), "value": v})
		}
		out["register"] = rs
	}
	if cnts, _ := w["n"].([]any); len(cnts) > 0 {
		var cs []map[string]any
		for _, c := range cnts {
			cm, _ := c.(map[string]any)
			n := int64(wireUint(cm["n"]))
			cs = append(cs, map[string]any{"dot": wireDot(cm["d"]), "n": n})
		}
		out["counter"] = cs
	}
	if set, _ := w["s"].(map[string]any); len(set) > 0 {
		members := make(map[string][]string, len(set))
		for m, ds := range set {
			members[m] = wireDots(ds)
		}
		out["set"] = members
	}
	if f, _ := w["f"].([]any); len(f) > 0 {
		out["flag"] = wireDots(f)
	}
	if fields, _ := w["m"].(map[string]any); len(fields) > 0 {
		fs := make(map[string]any, len(fields))
		for name, fe := range fields {
			fm, _ := fe.(map[string]any)
			fs[name] = renderEntry(fm)
		}
		out["map"] = fs
	}
	return out
}
