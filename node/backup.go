package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
	"github.com/shoaldb/shoal/wal"
)

// Backups. Node.Backup writes a consistent copy of a running node's state
// (taken in the commit loop between two groups, as a snapshot is: every
// record up to a point and nothing after it, so an atomic batch is whole
// or absent); Restore makes a new data directory from one. Byte layout
// (integers little-endian):
//
//	0      8  magic "SHOALBAK"
//	8      2  format version (1)
//	10     6  reserved, 0
//	16     -  body: msgpack of backupBody
//	end-16 8  body length
//	end-8  4  CRC-32C (Castagnoli) of the body
//	end-4  4  "SBAK"
//
// The length and checksum come last so that the body streams (over HTTP)
// without being held twice; a file cut short lacks them and is refused.
//
// A restored directory holds the state as a snapshot and an empty WAL that
// starts after the records the state covers, the layout of a node whose
// WAL was truncated behind a snapshot: peers missing operations it holds
// get state from it, as from any such node. It takes a new replica ID
// (never the one the backup was taken from, nor any other the state
// names), so the restored node never issues a dot the original issued,
// whether or not the original still runs.
const (
	backupMagic   = "SHOALBAK"
	backupEnd     = "SBAK"
	backupVersion = 1
	backupHeader  = 16
	backupTrailer = 16
)

type backupBody struct {
	Replica crdt.ReplicaID `msgpack:"r"` // the replica it was taken from
	Records uint64         `msgpack:"n"` // WAL records the state covers: the node's next offset then
	Clock   crdt.Timestamp `msgpack:"t"` // its HLC, so a restored clock never runs behind the state
	Taken   int64          `msgpack:"w"` // unix nanoseconds
	State   *crdt.Delta    `msgpack:"d"` // Keyspace.Snapshot
}

// BackupInfo describes a backup.
type BackupInfo struct {
	Replica string    // replica ID of the node it was taken from
	Records uint64    // WAL records the state covers
	Keys    int       // keys in the state
	Taken   time.Time // when it was taken
	Bytes   int64     // size of the backup
}

// Backup writes a consistent backup of the node's state to w (see the
// layout above) and describes it. The state is copied a chunk of keys at a
// time, writes going on meanwhile, and is that of the moment the last
// chunk was copied: every write acknowledged before Backup was called is
// in it. An error after the first bytes leaves w holding a backup without
// its trailer, which CheckBackup and Restore refuse.
func (n *Node) Backup(ctx context.Context, w io.Writer) (*BackupInfo, error) {
	if err := n.Err(); err != nil {
		return nil, err
	}
	sc := n.copyState()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return writeBackup(w, &backupBody{
		Replica: n.replica,
		Records: sc.applied,
		Clock:   sc.clock,
		Taken:   n.opts.Now().UnixNano(),
		State:   sc.state,
	})
}

func writeBackup(w io.Writer, body *backupBody) (*BackupInfo, error) {
	var hdr [backupHeader]byte
	copy(hdr[:8], backupMagic)
	binary.LittleEndian.PutUint16(hdr[8:10], backupVersion)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &crcWriter{w: bw, crc: crc32.New(castagnoli)}
	enc := msgpack.NewEncoder(cw)
	enc.UseCompactInts(true)
	if err := enc.Encode(body); err != nil {
		return nil, fmt.Errorf("node: backup: encode: %w", err)
	}
	var tr [backupTrailer]byte
	binary.LittleEndian.PutUint64(tr[0:8], uint64(cw.n))
	binary.LittleEndian.PutUint32(tr[8:12], cw.crc.Sum32())
	copy(tr[12:], backupEnd)
	if _, err := bw.Write(tr[:]); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	info := body.info()
	info.Bytes = backupHeader + cw.n + backupTrailer
	return info, nil
}

func (b *backupBody) info() *BackupInfo {
	return &BackupInfo{Replica: b.Replica.String(), Records: b.Records, Keys: len(b.State.Keys), Taken: time.Unix(0, b.Taken).UTC()}
}

// readBackup reads a whole backup from r and checks it: layout, length,
// checksum, a decodable body and a valid state. Errors wrap ErrCorrupt
// and say what is wrong; bytes never cause a panic.
func readBackup(r io.Reader) (*backupBody, *crdt.Keyspace, int64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("node: read backup: %w", err)
	}
	size := int64(len(b))
	if len(b) < backupHeader || string(b[:8]) != backupMagic {
		return nil, nil, size, fmt.Errorf("%w: not a shoal backup (no %q header)", ErrCorrupt, backupMagic)
	}
	if v := binary.LittleEndian.Uint16(b[8:10]); v != backupVersion {
		return nil, nil, size, fmt.Errorf("%w: backup format version %d; this shoal reads version %d", ErrCorrupt, v, backupVersion)
	}
	if len(b) < backupHeader+backupTrailer || string(b[len(b)-4:]) != backupEnd {
		return nil, nil, size, fmt.Errorf("%w: backup is truncated (%d bytes, no trailer): it was cut off while being written or copied", ErrCorrupt, len(b))
	}
	tr := b[len(b)-backupTrailer:]
	body := b[backupHeader : len(b)-backupTrailer]
	if n := binary.LittleEndian.Uint64(tr[0:8]); n != uint64(len(body)) {
		return nil, nil, size, fmt.Errorf("%w: backup body is %d bytes, its trailer says %d", ErrCorrupt, len(body), n)
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(tr[8:12]) {
		return nil, nil, size, fmt.Errorf("%w: backup checksum mismatch: the file was changed or damaged", ErrCorrupt)
	}
	if err := checkMsgpack(body, maxOpDepth); err != nil {
		return nil, nil, size, fmt.Errorf("backup: %w", err)
	}
	bb := &backupBody{}
	if err := msgpack.Unmarshal(body, bb); err != nil {
		return nil, nil, size, fmt.Errorf("%w: backup: decode: %w", ErrCorrupt, err)
	}
	if bb.State == nil || bb.Replica == 0 {
		return nil, nil, size, fmt.Errorf("%w: backup holds no state", ErrCorrupt)
	}
	ks, err := crdt.FromSnapshot(bb.State)
	if err != nil {
		return nil, nil, size, fmt.Errorf("%w: backup state: %w", ErrCorrupt, err)
	}
	return bb, ks, size, nil
}

// CheckBackup reads a backup from r and checks it as Restore would,
// without writing anything.
func CheckBackup(r io.Reader) (*BackupInfo, error) {
	bb, _, size, err := readBackup(r)
	if err != nil {
		return nil, err
	}
	info := bb.info()
	info.Bytes = size
	return info, nil
}

// RestoreReport says what Restore made.
type RestoreReport struct {
	Backup  BackupInfo
	Dir     string
	Replica string // the new directory's replica ID
}

// Restore creates the data directory dir (absent or empty) from the backup
// read from r, with a new replica ID, and checks it opens. The backup is
// read and checked whole before anything is written: a truncated, damaged
// or foreign file is refused with what is wrong and dir is left as it was.
// If writing fails midway, what Restore created is removed. opts may be
// nil; only Logger and Sync are used.
func Restore(r io.Reader, dir string, opts *Options) (*RestoreReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	bb, _, size, err := readBackup(r)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("node: restore: %w", err)
	case len(ents) > 0:
		return nil, fmt.Errorf("node: restore: %s is not empty: restore into a new directory", dir)
	}
	created := err != nil
	rep := &RestoreReport{Backup: *bb.info(), Dir: dir}
	rep.Backup.Bytes = size
	if err := restoreInto(dir, bb, o, rep); err != nil {
		if created {
			os.RemoveAll(dir)
		} else if ents, _ := os.ReadDir(dir); ents != nil {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		return nil, err
	}
	return rep, nil
}

func restoreInto(dir string, bb *backupBody, o Options, rep *RestoreReport) error {
	if err := mkdirDurable(dir); err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	// A replica ID the state does not name: not the original's, not any
	// whose dots the state holds.
	taken := map[crdt.ReplicaID]bool{bb.Replica: true}
	for id := range bb.State.Ctx.VV {
		taken[id] = true
	}
	for _, d := range bb.State.Ctx.Cloud {
		taken[d.Replica] = true
	}
	id, err := newReplicaID()
	for err == nil && taken[id] {
		id, err = newReplicaID()
	}
	if err != nil {
		return err
	}
	ident := identity{Version: 1, Replica: id.String(), Incarnation: 1,
		Reason: fmt.Sprintf("restored from a backup of replica %s taken %s", bb.Replica, time.Unix(0, bb.Taken).UTC().Format(time.RFC3339))}
	data, err := json.Marshal(ident)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, identityFile, append(data, '\n')); err != nil {
		return fmt.Errorf("node: restore: write identity: %w", err)
	}
	if bb.Records > 0 {
		body := &snapshotBody{Offset: bb.Records - 1, Replica: bb.Replica, Clock: bb.Clock, State: bb.State}
		if _, err := writeSnapshot(filepath.Join(dir, snapDir), body); err != nil {
			return fmt.Errorf("node: restore: write snapshot: %w", err)
		}
	}
	l, err := wal.Open(filepath.Join(dir, walDir), &wal.Options{FirstOffset: bb.Records, Sync: o.Sync, Logger: o.Logger})
	if err != nil {
		return fmt.Errorf("node: restore: create WAL: %w", err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("node: restore: create WAL: %w", err)
	}
	// Open it once as a node would: whatever is wrong shows here, not at
	// the operator's first start.
	n, err := Open(dir, &Options{Sync: o.Sync, Logger: o.Logger, SnapshotEveryOps: -1})
	if err != nil {
		return fmt.Errorf("node: restore: the restored directory does not open: %w", err)
	}
	rep.Replica = n.ReplicaID()
	if got := int(n.keys.Load()); got != len(bb.State.Keys) {
		n.Close()
		return fmt.Errorf("node: restore: the restored node holds %d keys, the backup %d", got, len(bb.State.Keys))
	}
	return n.Close()
}
