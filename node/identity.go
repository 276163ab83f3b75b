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
	"syscall"

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
)

// identity is the replica identity persisted in <dir>/identity.
type identity struct {
	Version     int    `json:"version"`
	Replica     string `json:"replica"`     // crdt.ReplicaID, 16 hex digits
	Incarnation uint64 `json:"incarnation"` // 1 for a new directory, +1 per new replica ID
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

// loadIdentity reads the identity of dir, creating it (or a new
// incarnation) when needed. It returns the replica ID and incarnation.
func loadIdentity(dir string, policy SyncPolicy, log *slog.Logger) (crdt.ReplicaID, uint64, error) {
	path := filepath.Join(dir, identityFile)
	var cur identity
	var id crdt.ReplicaID
	fresh := false
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fresh = true
	case err != nil:
		return 0, 0, fmt.Errorf("node: read identity: %w", err)
	default:
		if jerr := json.Unmarshal(b, &cur); jerr == nil && cur.Version == 1 {
			id, err = crdt.ParseReplicaID(cur.Replica)
		} else {
			err = jerr
			if err == nil {
				err = fmt.Errorf("version %d", cur.Version)
			}
		}
		if err != nil || id == 0 {
			// A fresh replica ID is always safe (it cannot reissue a dot),
			// so a damaged identity file costs only a new identity.
			log.Warn("identity file damaged; taking a new replica ID", "path", path, "err", err)
			fresh = true
		}
	}
	_, derr := os.Stat(filepath.Join(dir, dirtyFile))
	dirty := derr == nil
	if !fresh && dirty {
		log.Warn("previous run ended without Close under a non-durable sync policy; taking a new replica ID",
			"old_replica", cur.Replica, "incarnation", cur.Incarnation+1)
	}
	if fresh || dirty {
		nid, err := newReplicaID()
		if err != nil {
			return 0, 0, err
		}
		cur = identity{Version: 1, Replica: nid.String(), Incarnation: cur.Incarnation + 1}
		data, _ := json.Marshal(cur)
		if err := writeFileAtomic(dir, identityFile, append(data, '\n')); err != nil {
			return 0, 0, fmt.Errorf("node: write identity: %w", err)
		}
		id = nid
	}
	// The marker must be durable before the first acknowledged write.
	if policy != SyncAlways {
		if !dirty {
			if err := writeFileAtomic(dir, dirtyFile, nil); err != nil {
				return 0, 0, fmt.Errorf("node: write dirty marker: %w", err)
			}
		}
	} else if dirty {
		if err := removeDurable(dir, dirtyFile); err != nil {
			return 0, 0, fmt.Errorf("node: remove dirty marker: %w", err)
		}
	}
	return id, cur.Incarnation, nil
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

// lockDir takes an exclusive flock on dir/LOCK. flock locks belong to the
// open file, so a second Open of one directory fails even in one process,
// and the kernel drops the lock when a process dies.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("node: lock %s: %w", dir, err)
	}
	return f, nil
}
