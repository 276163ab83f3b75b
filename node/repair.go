package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// RepairReport says what Repair did to a data directory.
type RepairReport struct {
	Dir     string
	Changed bool // false: nothing needed repair (and nothing was changed)
	// WAL is what the log's repair kept and set aside.
	WAL *wal.RepairInfo
	// Snapshot is the snapshot the repaired directory starts from ("" for
	// none: the state is the WAL replayed from offset 0).
	Snapshot string
	// SnapshotsSetAside are snapshot files renamed to <name>.aside because
	// they cover WAL records the repaired log no longer holds.
	SnapshotsSetAside []string
	// OldReplica and NewReplica are the replica IDs before and after; the
	// incarnation is NewReplica's.
	OldReplica, NewReplica string
	Incarnation            uint64
}

// Repair makes a data directory that Open refuses because of damage (a
// corrupt WAL, a snapshot beyond the WAL's end) open again, losing as
// little as it can, and says what it set aside. The node must not be
// running (Repair takes the directory lock).
//
// It chooses where the state starts: the newest valid snapshot, or none,
// whichever lets the intact, contiguous WAL after it reach furthest (a
// snapshot that covers the damage keeps everything after it; on a tie the
// plan that keeps more WAL wins). The WAL keeps those records and sets the
// rest aside (wal.Repair); snapshot files covering records beyond the kept
// WAL are renamed aside; and the directory takes a new replica identity,
// so that no dot of an operation set aside (which peers may hold) is ever
// issued again. Peers then send back what they hold. Nothing is deleted.
// opts may be nil; only Logger and Sync are used.
func Repair(dir string, opts *Options) (*RepairReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("node: repair: %w", err)
	}
	lockf, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer lockf.Close()
	rep := &RepairReport{Dir: dir}
	walPath := filepath.Join(dir, walDir)
	in, err := wal.Inspect(walPath, nil)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("node: repair: %w", err)
	}
	if in == nil {
		in = &wal.Inspection{}
	}
	snapDirPath := filepath.Join(dir, snapDir)
	offs, err := scanSnapshotDir(snapDirPath, false)
	if err != nil {
		return nil, fmt.Errorf("node: repair: list snapshots: %w", err)
	}
	// The plans: no snapshot (if the WAL starts at 0), or a valid snapshot
	// and the WAL right after it.
	type plan struct {
		snap        uint64
		hasSnap     bool
		first, next uint64
	}
	var best *plan
	consider := func(p plan) {
		switch {
		case best == nil, p.next > best.next, p.next == best.next && p.first < best.first:
			best = &p
		}
	}
	if len(in.Segments) == 0 || in.Segments[0].Base == 0 {
		first, next := in.Keep(0)
		consider(plan{first: first, next: next})
	}
	for _, off := range offs {
		body, _, err := readSnapshot(filepath.Join(snapDirPath, snapName(off)), off)
		if err == nil {
			_, err = crdt.FromSnapshot(body.State)
		}
		if err != nil {
			o.Logger.Warn("repair: snapshot damaged; not used", "snapshot", snapName(off), "err", err)
			continue
		}
		if first, next := in.Keep(off + 1); first == off+1 {
			consider(plan{snap: off, hasSnap: true, first: first, next: next})
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: repair: the WAL starts at offset %d and no valid snapshot covers the records before it: "+
			"nothing to rebuild a state from; move the directory aside and start empty (peers send back what they hold)",
			ErrCorrupt, in.First)
	}
	if best.hasSnap {
		rep.Snapshot = filepath.Join(snapDirPath, snapName(best.snap))
	}
	// Snapshots the kept WAL no longer reaches go first: Open refuses any
	// snapshot beyond the WAL's end.
	names := map[string]bool{}
	if ents, err := os.ReadDir(snapDirPath); err == nil {
		for _, e := range ents {
			names[e.Name()] = true
		}
	}
	for _, off := range offs {
		if off+1 <= best.next {
			continue
		}
		from := filepath.Join(snapDirPath, snapName(off))
		name := snapName(off) + ".aside"
		for i := 1; names[name]; i++ {
			name = fmt.Sprintf("%s.aside.%d", snapName(off), i)
		}
		names[name] = true
		to := filepath.Join(snapDirPath, name)
		if err := os.Rename(from, to); err != nil {
			return rep, fmt.Errorf("node: repair: move %s aside: %w", from, err)
		}
		if err := syncDir(snapDirPath); err != nil {
			return rep, fmt.Errorf("node: repair: %w", err)
		}
		rep.SnapshotsSetAside = append(rep.SnapshotsSetAside, to)
	}
	if len(in.Segments) > 0 {
		if rep.WAL, err = wal.Repair(walPath, nil, best.first); err != nil {
			return rep, fmt.Errorf("node: repair: %w", err)
		}
		if rep.WAL.First != best.first || rep.WAL.Next != best.next {
			return rep, fmt.Errorf("node: repair: the WAL kept [%d, %d), planned [%d, %d) (changed while repairing?)",
				rep.WAL.First, rep.WAL.Next, best.first, best.next)
		}
	}
	rep.Changed = len(rep.SnapshotsSetAside) > 0 || (rep.WAL != nil && rep.WAL.Changed)
	stored, err := readIdentity(dir)
	if err != nil {
		return rep, err
	}
	rep.OldReplica = stored.cur.Replica
	if !rep.Changed {
		rep.NewReplica, rep.Incarnation = stored.cur.Replica, stored.cur.Incarnation
		return rep, nil
	}
	reason := "repair"
	if rep.WAL != nil && rep.WAL.Dropped > 0 {
		reason = fmt.Sprintf("repair set aside %d WAL records", rep.WAL.Dropped)
	}
	ident, _, err := commitIdentity(dir, stored, reason, o.Sync, o.Logger)
	if err != nil {
		return rep, err
	}
	rep.NewReplica, rep.Incarnation = ident.Replica, ident.Incarnation
	return rep, nil
}
