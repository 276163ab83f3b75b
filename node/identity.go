package node

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/gofrs/flock"

	"github.com/shoaldb/shoal/crdt"
)

// Files in the data directory besides wal/ and snapshots/.
const (
	identityFile = "identity"
	// dirtyFile exists while a node runs under a sync policy that lets a
	// write be acknowledged (and replicated) before it is durable. Finding
	// it at Open means such a run ended without Close: some acknowledged
	// dots may be missing from the WAL, so the node takes a new replica ID
	// rather than risk issuing one of those dots again.
	dirtyFile = "dirty"
	lockFile  = "LOCK"
	walDir    = "wal" // the WAL's directory (package wal)
)

// identity is the replica identity persisted in <dir>/identity.
type identity struct {
	Version     int    `json:"version"`
	Replica     string `json:"replica"`     // crdt.ReplicaID, 16 hex digits
	Incarnation uint64 `json:"incarnation"` // 1 for a new directory, +1 per new replica ID
	// Previous are the replica IDs this directory had before, oldest first:
	// operations of theirs in the WAL are this directory's own (their
	// timestamps were issued here).
	Previous []string `json:"previous,omitempty"`
	// Reason says why the current ID was taken (new directory, unclean
	// stop, WAL cut, repair): for operators.
	Reason string `json:"reason,omitempty"`
}

// newReplicaID returns a random non-zero replica ID.
func newReplicaID() (crdt.ReplicaID, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("node: replica id: %w", err)
		}
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return crdt.ReplicaID(id), nil
		}
	}
}

// storedIdentity is what readIdentity found, before anything is written.
type storedIdentity struct {
	cur     identity
	id      crdt.ReplicaID // 0 when none is usable
	damaged error          // why a present identity file is not usable
	dirty   bool           // the dirty marker is present
}

// readIdentity reads dir's identity and dirty marker. It writes nothing.
func readIdentity(dir string) (storedIdentity, error) {
	var st storedIdentity
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return st, fmt.Errorf("node: read identity: %w", err)
	default:
		var cur identity
		if jerr := json.Unmarshal(b, &cur); jerr != nil {
			st.damaged = jerr
		} else if cur.Version != 1 {
			st.damaged = fmt.Errorf("version %d", cur.Version)
		} else if id, perr := crdt.ParseReplicaID(cur.Replica); perr != nil || id == 0 {
			st.damaged = fmt.Errorf("replica %q: %v", cur.Replica, perr)
		} else {
			st.id = id
		}
		st.cur = cur
	}
	_, derr := os.Stat(filepath.Join(dir, dirtyFile))
	st.dirty = derr == nil
	return st, nil
}

// replicaIDs returns the current and previous replica IDs of an identity.
func (c identity) replicaIDs() map[crdt.ReplicaID]bool {
	ids := map[crdt.ReplicaID]bool{}
	for _, s := range append(slices.Clone(c.Previous), c.Replica) {
		if id, err := crdt.ParseReplicaID(s); err == nil && id != 0 {
			ids[id] = true
		}
	}
	return ids
}

// commitIdentity makes the identity durable before the first write: a new
// replica ID (the next incarnation) when reason is not "" or none is
// usable, and the dirty marker as the sync policy needs it. It returns the
// identity in force.
func commitIdentity(dir string, st storedIdentity, reason string, policy SyncPolicy, log *slog.Logger) (identity, crdt.ReplicaID, error) {
	cur, id := st.cur, st.id
	switch {
	case st.damaged != nil:
		// A fresh replica ID is always safe (it cannot reissue a dot), so a
		// damaged identity file costs only a new identity.
		log.Warn("identity file damaged; taking a new replica ID", "path", filepath.Join(dir, identityFile), "err", st.damaged)
		reason = "identity file damaged"
	case id == 0:
		reason = "new data directory"
	case st.dirty && reason == "":
		reason = "previous run ended without Close under a non-durable sync policy"
	}
	if reason != "" {
		if id != 0 {
			log.Warn("taking a new replica ID", "reason", reason, "old_replica", cur.Replica, "incarnation", cur.Incarnation+1)
		}
		nid, err := newReplicaID()
		if err != nil {
			return cur, 0, err
		}
		prev := slices.Clone(cur.Previous)
		if id != 0 {
			prev = append(prev, cur.Replica)
		}
		cur = identity{Version: 1, Replica: nid.String(), Incarnation: cur.Incarnation + 1, Previous: prev, Reason: reason}
		data, _ := json.Marshal(cur)
		if err := writeFileAtomic(dir, identityFile, append(data, '\n')); err != nil {
			return cur, 0, fmt.Errorf("node: write identity: %w", err)
		}
		id = nid
	}
	// The marker must be durable before the first acknowledged write.
	if policy != SyncAlways {
		if !st.dirty {
			if err := writeFileAtomic(dir, dirtyFile, nil); err != nil {
				return cur, 0, fmt.Errorf("node: write dirty marker: %w", err)
			}
		}
	} else if st.dirty {
		if err := removeDurable(dir, dirtyFile); err != nil {
			return cur, 0, fmt.Errorf("node: remove dirty marker: %w", err)
		}
	}
	return cur, id, nil
}

// writeFileAtomic writes dir/name through a temporary file, fsync, rename
// and directory fsync: after a crash the file is either old or new, whole.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeDurable removes dir/name (if present) and makes that durable.
func removeDurable(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

// mkdirDurable creates dir and any missing parents, and fsyncs the parent
// of each directory it created, so that the new entries survive a crash.
func mkdirDurable(dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// lockDir takes an exclusive lock on dir/LOCK (flock on Unix, LockFileEx
// on Windows). The lock belongs to the open file, so a second Open of one
// directory fails even in one process, and the OS drops it when a process
// dies: a crash never leaves a stale lock. Unlock with Close.
func lockDir(dir string) (*flock.Flock, error) {
	l := flock.New(filepath.Join(dir, lockFile))
	ok, err := l.TryLock()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("node: lock %s: %w", dir, err)
	}
	if !ok {
		l.Close()
		return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	return l, nil
}
