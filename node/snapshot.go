package node

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
)

// Snapshot files: <dir>/snapshots/<20-digit WAL offset>.snap, where the
// offset is the last WAL record the snapshot includes. Byte layout (all
// integers little-endian):
//
//	0   8  magic "SHOALSNP"
//	8   2  format version (1)
//	10  2  reserved, 0
//	12  4  CRC-32C (Castagnoli) of the body followed by header bytes
//	       16..32 (the body is streamed first, the header written last)
//	16  8  WAL offset of the last record included (equals the file name)
//	24  8  body length
//	32  -  body: msgpack of snapshotBody
//
// A snapshot is written to <name>.tmp, fsynced, renamed into place and the
// directory fsynced, so a crash leaves either no snapshot or a whole one; a
// .tmp file found at Open is a leftover and is removed. Open loads the
// newest snapshot that checks out (magic, version, offset, length within
// the file, CRC, decodable, valid state) and replays the WAL after it; a
// damaged one is skipped for the next older. After a new snapshot is
// written the WAL is truncated below the previous snapshot, not the new
// one, so that falling back one snapshot never finds the WAL missing.
const (
	snapDir        = "snapshots"
	snapExt        = ".snap"
	snapMagic      = "SHOALSNP"
	snapVersion    = 1
	snapHeaderSize = 32
	snapKeep       = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotBody is what a snapshot holds besides the header.
type snapshotBody struct {
	Offset  uint64                        `msgpack:"o"` // equals the header's
	Replica crdt.ReplicaID                `msgpack:"r"` // the replica that wrote it
	LastSeq uint64                        `msgpack:"s"` // its last issued seq
	Clock   crdt.Timestamp                `msgpack:"t"` // its HLC
	State   *crdt.Delta                   `msgpack:"d"` // Keyspace.Snapshot
	Index   map[crdt.ReplicaID][]indexRun `msgpack:"i"` // the dot index up to Offset
}

// checkSnapshotsCovered refuses a WAL that ends before what a snapshot
// covers: records the snapshot includes would be missing from the WAL the
// node replays and serves to peers, and a new write would take an offset
// the snapshot already names. It reads only file names.
func checkSnapshotsCovered(dir string, walNext uint64) error {
	offs, err := scanSnapshotDir(dir, false)
	if err != nil {
		return fmt.Errorf("node: list snapshots: %w", err)
	}
	for _, off := range offs {
		if off+1 > walNext {
			return fmt.Errorf("%w: snapshot %s covers WAL records up to %d but the WAL ends at %d",
				ErrCorrupt, filepath.Join(dir, snapName(off)), off, walNext)
		}
	}
	return nil
}

func snapName(off uint64) string { return fmt.Sprintf("%020d%s", off, snapExt) }

// listSnapshots returns the offsets of the snapshot files in dir, newest
// first. Leftover temporary files are removed: only Open and the
// snapshotter may call it, never while another snapshot is being written
// (its temporary file would go; tests list with scanSnapshotDir).
func listSnapshots(dir string) ([]uint64, error) { return scanSnapshotDir(dir, true) }

// scanSnapshotDir lists the snapshot offsets of dir, newest first,
// removing leftover temporary files only if cleanup is set.
func scanSnapshotDir(dir string, cleanup bool) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var offs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if cleanup {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		base, ok := strings.CutSuffix(name, snapExt)
		if !ok || len(base) != 20 {
			continue
		}
		off, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		offs = append(offs, off)
	}
	slices.Sort(offs)
	slices.Reverse(offs)
	return offs, nil
}

// writeSnapshot writes body atomically to dir and returns the file size.
func writeSnapshot(dir string, body *snapshotBody) (int64, error) {
	if err := mkdirDurable(dir); err != nil {
		return 0, err
	}
	final := filepath.Join(dir, snapName(body.Offset))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	size, err := writeSnapshotTo(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return size, nil
}

// crcWriter counts and checksums what passes through it.
type crcWriter struct {
	w   io.Writer
	crc hash.Hash32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// writeSnapshotTo streams the snapshot into f (positioned at 0): a
// placeholder header, the body, then the real header.
func writeSnapshotTo(f *os.File, body *snapshotBody) (int64, error) {
	var hdr [snapHeaderSize]byte
	if _, err := f.Write(hdr[:]); err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &crcWriter{w: bw, crc: crc32.New(castagnoli)}
	enc := msgpack.NewEncoder(cw)
	enc.UseCompactInts(true)
	if err := enc.Encode(body); err != nil {
		return 0, fmt.Errorf("encode snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	copy(hdr[0:8], snapMagic)
	binary.LittleEndian.PutUint16(hdr[8:10], snapVersion)
	binary.LittleEndian.PutUint64(hdr[16:24], body.Offset)
	binary.LittleEndian.PutUint64(hdr[24:32], uint64(cw.n))
	binary.LittleEndian.PutUint32(hdr[12:16], crc32.Update(cw.crc.Sum32(), castagnoli, hdr[16:32]))
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return 0, err
	}
	return snapHeaderSize + cw.n, nil
}

// CheckSnapshot reads the snapshot file at path as Open would load it
// (name, header, length, checksum, body, a valid state) without loading it
// into a node, and returns the last WAL offset it covers. It changes
// nothing. Every failure wraps ErrCorrupt (or is an I/O error).
func CheckSnapshot(path string) (uint64, error) {
	stem, ok := strings.CutSuffix(filepath.Base(path), snapExt)
	off, err := strconv.ParseUint(stem, 10, 64)
	if !ok || len(stem) != 20 || err != nil {
		return 0, fmt.Errorf("%w: snapshot %s: the name is not <20-digit offset>%s", ErrCorrupt, path, snapExt)
	}
	body, _, err := readSnapshot(path, off)
	if err != nil {
		return 0, err
	}
	if _, err := crdt.FromSnapshot(body.State); err != nil {
		return 0, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, path, err)
	}
	return off, nil
}

// readSnapshot loads and checks the snapshot at path. Every failure wraps
// ErrCorrupt (or is an I/O error); bytes on disk never cause a panic.
func readSnapshot(path string, wantOffset uint64) (*snapshotBody, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	var hdr [snapHeaderSize]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: snapshot %s: short header: %w", ErrCorrupt, path, err)
	}
	length := binary.LittleEndian.Uint64(hdr[24:32])
	if length > uint64(st.Size()-snapHeaderSize) {
		return nil, 0, fmt.Errorf("%w: snapshot %s: body length %d beyond the file's %d bytes", ErrCorrupt, path, length, st.Size())
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, 0, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, path, err)
	}
	body, err := decodeSnapshot(hdr[:], b)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot %s: %w", path, err)
	}
	if body.Offset != wantOffset {
		return nil, 0, fmt.Errorf("%w: snapshot %s: holds offset %d", ErrCorrupt, path, body.Offset)
	}
	return body, st.Size(), nil
}

// decodeSnapshot checks a header and body and decodes the body. It never
// panics; errors wrap ErrCorrupt.
func decodeSnapshot(hdr, b []byte) (*snapshotBody, error) {
	if len(hdr) != snapHeaderSize || string(hdr[0:8]) != snapMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(hdr[8:10]); v != snapVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, v)
	}
	if binary.LittleEndian.Uint64(hdr[24:32]) != uint64(len(b)) {
		return nil, fmt.Errorf("%w: body length mismatch", ErrCorrupt)
	}
	crc := crc32.Update(crc32.Checksum(b, castagnoli), castagnoli, hdr[16:32])
	if crc != binary.LittleEndian.Uint32(hdr[12:16]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if err := checkMsgpack(b, maxOpDepth); err != nil {
		return nil, err
	}
	body, ok := fastDecodeSnapshot(b)
	if !ok {
		body = &snapshotBody{}
		if err := msgpack.Unmarshal(b, body); err != nil {
			return nil, fmt.Errorf("%w: decode: %w", ErrCorrupt, err)
		}
	}
	if body.Offset != binary.LittleEndian.Uint64(hdr[16:24]) {
		return nil, fmt.Errorf("%w: offset mismatch", ErrCorrupt)
	}
	if body.State == nil {
		return nil, fmt.Errorf("%w: no state", ErrCorrupt)
	}
	return body, nil
}

// snapshotter takes snapshots in its own goroutine: the copy of the state,
// a chunk at a time (copyState), and the file.
type snapshotter struct {
	n           *Node
	jobs        chan *snapJob // cap 1; the loop sends, the writer receives
	outstanding atomic.Int32  // jobs sent and not finished
	ended       chan struct{} // cap 1: a job ended
	wg          sync.WaitGroup
}

type snapJob struct {
	result chan error // nil for automatic snapshots
}

func (s *snapshotter) start(n *Node) {
	s.n = n
	s.jobs = make(chan *snapJob, 1)
	s.ended = make(chan struct{}, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for job := range s.jobs {
			body, ok, err := s.snapshotBody()
			if ok && err == nil {
				if snapshotCopied != nil {
					snapshotCopied()
				}
				err = s.write(&body)
			}
			s.outstanding.Add(-1)
			if job.result != nil {
				job.result <- err
			}
			select { // see run: a snapshot due meanwhile starts now
			case s.ended <- struct{}{}:
			default:
			}
		}
	}()
}

// copyChunkKeys is how many keys copyState copies per hold of the state
// lock: a few milliseconds at most, after which writers waiting get their
// turn.
var copyChunkKeys = 2048

// copyPaused, when set (tests), runs between two chunks of copyState.
var copyPaused func()

// snapshotCopied, when set (tests), runs between a snapshot's copy and its
// file.
var snapshotCopied func()

// stateCopy is the state and what goes with it, all of one instant.
type stateCopy struct {
	state   *crdt.Delta
	applied uint64 // n.applied: the WAL records the state covers
	lastSeq uint64
	clock   crdt.Timestamp
	index   map[crdt.ReplicaID][]indexRun
}

// copyState copies the state for a snapshot or a backup a chunk of keys at
// a time (crdt.CopyScan), so that the writer does not wait for a copy of
// the whole state: a million keys took the applier 0.5-1 s even sharing
// what the keyspace never writes into, 2-3 s copied deep. The last chunk
// copies again the keys that changed behind the copy, and in the same
// hold of the lock takes the applied offset, the clock, the last seq and
// the dot index, which the applier writes under the lock with the state.
func (n *Node) copyState() stateCopy {
	sh := n.mu.rlock()
	c := n.ks.StartCopy()
	n.mu.runlock(sh)
	for round := 0; ; round++ {
		sh = n.mu.rlock()
		c.Step(copyChunkKeys)
		// Done once every key was copied and few changed behind the copy
		// (or, should writes keep outrunning it, after many rounds).
		if again, walking := c.Pending(); !walking && (again <= copyChunkKeys || round > 1000) {
			for c.Step(copyChunkKeys) {
			}
			sc := stateCopy{state: c.Snapshot(), applied: n.applied, lastSeq: n.lastSeq.Load(),
				clock: n.durableClock, index: n.index.export()}
			c.Close()
			n.mu.runlock(sh)
			return sc
		}
		n.mu.runlock(sh)
		if copyPaused != nil {
			copyPaused()
		}
	}
}

// snapshotBody copies the state for a snapshot (copyState); ok is false
// when there is nothing to save.
func (s *snapshotter) snapshotBody() (body snapshotBody, ok bool, err error) {
	n := s.n
	sc := n.copyState()
	if sc.applied == 0 {
		return body, false, nil
	}
	body = snapshotBody{Offset: sc.applied - 1, Replica: n.replica, LastSeq: sc.lastSeq,
		Clock: sc.clock, State: sc.state, Index: sc.index}
	// The snapshot must never cover a record the WAL could still lose:
	// those up to body.Offset are written; this makes them durable.
	if n.opts.Sync != SyncAlways {
		if err := n.wal.Sync(); err != nil {
			n.setReadOnly(err)
			return body, true, readOnlyError(err)
		}
	}
	return body, true, nil
}

// stop waits for the pending snapshot; called after the loop exited.
func (s *snapshotter) stop() {
	close(s.jobs)
	s.wg.Wait()
}

// write writes one snapshot, then truncates the WAL below the previous one
// and removes the snapshots older than that.
func (s *snapshotter) write(body *snapshotBody) error {
	n := s.n
	start := time.Now()
	dir := filepath.Join(n.dir, snapDir)
	size, err := writeSnapshot(dir, body)
	if err != nil {
		n.m.snapshots.WithLabelValues("error").Inc()
		n.log.Error("snapshot failed; the WAL keeps everything and the next one will retry", "offset", body.Offset, "err", err)
		return fmt.Errorf("node: snapshot: %w", err)
	}
	n.m.snapshots.WithLabelValues("ok").Inc()
	n.m.snapshotBytes.Set(float64(size))
	n.m.snapshotTime.Set(float64(time.Now().UnixNano()) / 1e9)
	n.m.snapshotSecs.Observe(time.Since(start).Seconds())
	n.log.Info("snapshot written", "offset", body.Offset, "bytes", size, "duration", time.Since(start))
	offs, err := listSnapshots(dir)
	if err != nil || len(offs) < snapKeep {
		return nil
	}
	keep := offs[snapKeep-1] // the previous snapshot: the fallback
	if err := n.wal.TruncateFront(keep + 1); err != nil {
		n.log.Warn("WAL truncation after snapshot failed", "below", keep+1, "err", err)
		return nil
	}
	n.index.truncate(n.wal.FirstOffset())
	for _, off := range offs[snapKeep:] {
		if err := os.Remove(filepath.Join(dir, snapName(off))); err != nil {
			n.log.Warn("removing an old snapshot failed", "offset", off, "err", err)
		}
	}
	return nil
}

// snapshotDue reports whether the thresholds since the last snapshot passed.
func (n *Node) snapshotDue() bool {
	return n.sinceOps > 0 && (n.opts.SnapshotEveryOps > 0 && n.sinceOps >= n.opts.SnapshotEveryOps ||
		n.opts.SnapshotEveryBytes > 0 && n.sinceSize >= n.opts.SnapshotEveryBytes)
}

// maybeSnapshot starts an automatic snapshot when one is due and none is
// in progress. Called by the committer between groups.
func (n *Node) maybeSnapshot() {
	if !n.snapshotDue() || n.snap.outstanding.Load() > 0 || n.applied == 0 {
		return
	}
	n.startSnapshot(nil)
}

// snapshotRequest starts the snapshot Node.Snapshot asked for.
func (n *Node) snapshotRequest(r *request) {
	r.snapDone = make(chan error, 1)
	n.startSnapshot(r.snapDone)
}

// startSnapshot hands the snapshotter a snapshot to take: it copies the
// state itself (copyState). Called by the applier.
func (n *Node) startSnapshot(result chan error) {
	n.sinceOps, n.sinceSize = 0, 0
	n.snap.outstanding.Add(1)
	n.snap.jobs <- &snapJob{result: result} // waits while an earlier job is still queued
}

// Snapshot writes a snapshot of the current state now and waits for it
// (normally snapshots happen by themselves, see Options.SnapshotEveryOps).
// The WAL is then truncated below the previous snapshot.
func (n *Node) Snapshot() error {
	if err := n.Err(); err != nil {
		return err
	}
	r := getRequest(reqSnapshot)
	if err := n.submit(r); err != nil {
		return err
	}
	return <-r.snapDone
}
