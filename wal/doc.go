// Package wal is shoal's segmented write-ahead log of opaque records.
//
// Records are byte strings; the log gives each a uint64 offset (contiguous,
// starting at 0) and stores them in segments. It knows nothing of what the
// records mean. This comment is the format specification: the code follows
// it, not the other way round.
//
// # Directory
//
// A log is one directory. For each segment with base offset B (the offset of
// its first record) there are two files named by B in 20 decimal digits:
//
//	00000000000000000000.log    the store: the records; the source of truth
//	00000000000000000000.index  the index: a cache of record positions
//
// Other names the log creates:
//
//	*.tmp                  a file being written before an atomic rename;
//	                       removed by Open
//	<B>.log.cut-<P>[.N]    a side file: the bytes cut from the tail of
//	                       segment B starting at byte P (by Open or Repair);
//	                       never read, removed or overwritten by the log: a
//	                       second cut at the same place gets the next free .N
//	<B>.log.aside[.N]      a whole store file Repair took out of the log
//	LOCK                   empty; an advisory flock on it keeps a second Log
//	                       (in any process) out of the directory
//
// Everything else in the directory is ignored. All integers are little endian.
//
// # Store file
//
// A 24-byte header:
//
//	bytes  0..7   magic "SHOALWAL"
//	bytes  8..11  format version, uint32 = 1
//	bytes 12..19  base offset B, uint64 (must equal the file name)
//	bytes 20..23  CRC-32C (Castagnoli) of bytes 0..19
//
// then frames, back to back, one per record, from byte 24 to the end of the
// file, except that the last segment's store may end in zeros written ahead
// of its records ("Preallocation"). The frame of the record with offset O,
// at byte position P:
//
//	bytes P+0..P+3  word, uint32:
//	                  bit 31      always 1 (a zero word is never a frame, so a
//	                              zero-filled tail stops decoding at once)
//	                  bit 30      1 if this is the last record of its Append call
//	                  bits 0..29  payload length N (at most MaxRecordBytes)
//	bytes P+4..P+7  CRC-32C, uint32, of: payload || word (4 bytes) || O (uint64,
//	                8 bytes; O is not stored, it is implied by the position)
//	bytes P+8..     payload, N bytes
//
// Why the checksum covers more than the payload: covering the word means a
// flipped length or flag bit is caught by the checksum rather than by luck;
// mixing in the offset O means a frame that is intact but in the wrong place
// (stale bytes surviving a truncation, a file copied under another name) does
// not decode. The payload comes first in the checksummed string so that an
// appender can checksum its payload before it takes the log's lock (the
// offset is only known under the lock), keeping the critical section to a
// copy. CRC-32C is hardware-accelerated and detects all burst errors up to 32
// bits. A decoder checks N against MaxRecordBytes and against the bytes left
// in the file before it allocates anything.
//
// Bit 30 makes an Append atomic: the records of one call are written
// together, and only the last carries bit 30, so recovery keeps a run of
// frames only if it ends with a bit-30 frame. One Append never spans two
// segments.
//
// # Index file
//
// Dense: entry i (8 bytes at byte 8*i) describes record B+i:
//
//	bytes 0..3  relative offset i, uint32
//	bytes 4..7  byte position of the record's frame in the store, uint32
//
// The index is dense because shoal reads single records by offset (catch-up
// of a peer's missing ranges): a dense index answers with one lookup and one
// read of exactly the frame (its end is the next entry's position), while a
// sparse one would need a scan. The cost is 8 bytes per record, about 3% for
// 256-byte records. The relative offset is redundant with the entry's place,
// and that is why it is there: an entry whose relative offset is not its
// index, or whose position is below 24 (a zero-filled entry has both) or not
// increasing, is detected as garbage rather than followed. Positions are
// 32-bit, so a store file stays below 4 GiB (MaxSegmentBytes plus one Append).
//
// The index of the active (last) segment is memory-mapped read-write with
// gommap and grown in steps with fallocate, so a full disk is reported by the
// fallocate call as an error instead of a SIGBUS on a later store into the
// map. Its unused tail is zeros and is never trusted. When a segment is
// sealed (roll, clean Close) its index is unmapped, truncated to exactly 8
// bytes per record, fsynced and mapped read-only. Mappings are always removed
// before a file is truncated or closed.
//
// # Writing
//
// Append checksums its payloads, then under the log's mutex takes offsets
// and copies its frames into the open batch in memory (a batch is closed at
// 1 MiB). One committer at a time does the I/O: the committer goroutine,
// or, under SyncAlways, an appender that finds no commit in progress and
// commits its own group (no hand-off between goroutines on a lone writer's
// path; what queues meanwhile is taken over by the goroutine). Under
// SyncAlways the committer takes every batch that has accumulated while the
// previous commit ran, writes each with one pwrite, fills the index entries,
// and calls fdatasync once for all of them: group commit; the appenders of
// those batches then return.
// Under SyncInterval and SyncNever it writes one batch at a time while
// appenders fill the next, and fdatasyncs on the interval, on Sync, on a
// roll and on Close. Records become visible to Read and Reader only after
// the committer has written them (and, under SyncAlways, synced them): under
// SyncAlways only durable records are ever read.
//
// # Preallocation
//
// The committer writes zeros ahead of the records in the active store
// (Options.Preallocate, 1 MiB by default, never past SegmentBytes): when a
// batch ends past them, the same commit writes the next stretch of zeros
// after it, before its fdatasync. Most commits therefore write into blocks that already
// hold data, in a file whose size does not change, so their fdatasync
// flushes the data alone; one that extends the file must also allocate
// blocks and write the inode, about twice the time and CPU for a commit of
// a few KiB on ext4 (what PostgreSQL's zero-filled WAL segments avoid too).
// Blocks reserved with fallocate do not help: writing into them converts
// their extents, which is metadata again. The records are written before
// the zeros, so they never wait for space the zeros took; zeros that do not
// fit (a full disk) are cut again, and are not an error of the log, which
// tries again once its records have grown by Preallocate.
//
// The zeros never outlive the active segment: a roll and a clean Close cut
// them (truncate, then the fdatasync that follows), so every sealed store,
// and a cleanly closed one, ends with its last record. After a crash they
// are the zero tail recovery knows from step 5 below: zeros from the end of
// the last complete Append to the end of the file, with no index entry for a
// record past it, are free space, kept as such, and not a cut. Zeros where
// the index says records were written (their bytes lost before the
// fdatasync, or damaged after it) remain a torn tail, cut as before.
//
// A failed write, short write, fdatasync or index growth is sticky: the log
// records the first such error and returns it from every later Append and
// Sync. An fdatasync is never retried (after a failed fsync the page cache
// may already have dropped the dirty pages, so a retry could "succeed"
// without the data).
//
// # Rolling to a new segment (crash-safe at every step)
//
// When an Append would make the active store exceed SegmentBytes (and the
// store already holds a record), the committer, before writing that Append:
//
//  1. cuts the zeros written ahead from the active store and fdatasyncs it,
//     whatever the sync policy, so that only the last segment can ever have
//     a torn tail or a zero tail;
//  2. seals the active index (unmap, truncate to 8 bytes per record, fsync,
//     map read-only);
//  3. writes the new store's header to <B>.log.tmp, fsyncs it, renames it to
//     <B>.log and fsyncs the directory;
//  4. creates and maps <B>.index.
//
// A crash before 3's rename leaves the old segment last (its index may be
// sealed already, which recovery accepts) and a .tmp file that Open removes.
// A crash after it leaves a new last segment with a complete header and no
// records, and an index that is missing or empty, which Open rebuilds.
//
// # TruncateFront (crash-safe at every step)
//
// TruncateFront(o) takes the sealed segments whose records are all below o
// out of the in-memory list (readers that reach them then get ErrTruncated),
// then, oldest first, closes each, removes its .log, fsyncs the directory
// (so that removals reach the disk in order) and removes its .index. The
// segments left after a crash at any step are therefore still contiguous;
// an .index whose .log is gone is removed by Open. The active segment is
// never removed. If a removal fails, TruncateFront stops there: the
// segments it could not remove reappear on the next Open.
//
// # Recovery (Open)
//
// Open first reads and checks, changing nothing; only when every check has
// passed (and Options.BeforeRecovery, if set, agrees) does it repair:
//
//  1. Note *.tmp files and .index files without a .log (removed in step 7).
//
//  2. Check every store header (magic, version, checksum, base equal to the
//     file name). A bad header is a *CorruptError: headers are written and
//     fsynced before the rename that makes them visible, so a crash cannot
//     produce one.
//
//  3. Sealed segments (all but the last): accept the index if its size is a
//     multiple of 8, its first entry is (0, 24), its last entry is
//     (n-1, P) with a valid bit-30 frame at P that ends exactly at the end of
//     the store. Otherwise plan to rebuild it from a scan of the store,
//     verifying every frame; a sealed store that does not scan cleanly to
//     its end is a *CorruptError. The entries in between are checked by the
//     first read that uses one: a frame that does not match its entry makes
//     the log scan that store, and if the store is intact the index is
//     rebuilt (it is a cache) and the read answered; if not, the read fails
//     with a *CorruptError naming the store. Verify scans everything.
//
//  4. Segment bases must be contiguous: each base equals the previous
//     segment's base plus its record count. A gap or overlap is a
//     *CorruptError.
//
//  5. The last segment is scanned from byte 24, verifying every frame, up to
//     the end of the last complete Append (the last bit-30 frame). If bytes
//     follow, Open decides whether a crash can have left them:
//
//     damage                                          verdict
//     nothing after the last complete Append          clean
//     zeros to EOF, no index entry past the last      clean: preallocated
//     complete Append                                 space, kept
//     frames of an Append with no bit-30 frame, EOF   torn: cut
//     a frame running past EOF (a cut-short write)    torn: cut
//     a zero word or zeroes to EOF where the index    torn: cut
//     has entries (blocks allocated but never
//     written)
//     a bad frame, garbage, or a hole, and no intact  torn: cut
//     frame and no index entry after it
//     a bad frame (flipped bit, zeroed or garbage     corrupt: *CorruptError
//     region) followed by an intact frame, found       (its Follows says what
//     through an index entry or by scanning the bytes  follows); nothing cut
//
//     Why: a crash loses only a suffix of what was written since the last
//     fdatasync, so damage followed by intact data is not a crash's
//     doing, and the data after it may have been acknowledged (fsynced).
//     Cutting it would lose acknowledged records without a word; it needs
//     an operator (Repair). An intact frame is one whose checksum matches
//     with its offset mixed in: the index entries past the damage are
//     tried first, then every byte position with every offset the distance
//     allows (at most one record per 8 bytes, at most 65,536), so stale or
//     random bytes do not pass. Damage with nothing intact after it is
//     indistinguishable from a torn write (including the last frame's
//     payload rotting, which costs at most that last Append) and is cut.
//     A power loss under SyncInterval or SyncNever that writes blocks back
//     out of order can leave a hole before intact frames; Open refuses
//     that too, and Repair keeps what precedes the hole.
//
//  6. The last segment's index is compared entry by entry with the scan:
//     where it disagrees (behind the store, zeroed, wrong, or missing) it is
//     rewritten, and entries past the last record (an index ahead of the
//     store) are zeroed; a file longer than the store could ever need is
//     cut before it is mapped.
//
//  7. Changes, in order: remove the files of step 1, write rebuilt sealed
//     indexes (.tmp, fsync, rename), repair the last index (step 6), copy a
//     torn tail to a new side file <B>.log.cut-<P> (.tmp, fsync, rename,
//     directory fsync) and only then truncate the store to P and fsync it,
//     and fsync the directory. A crash in between repeats the same cut on
//     the next Open (into a second side file).
//
// After Open the log is a prefix of what was written that holds at least
// every record whose Append returned under SyncAlways (and every record
// before the last Sync).
//
// # Inspect and Repair
//
// Inspect reads a log without locking or changing it (safe beside a running
// log): every frame and index entry is verified, each problem is reported
// with its kind (torn tail, corrupt, index wrong or incomplete, leftover),
// and for each segment the runs of intact records, including those after
// damage, found as in step 5. The zeros written ahead in the last segment
// are counted (SegmentReport.Preallocated), not reported as a problem.
// Beside a running log, a commit caught while it fills those zeros looks
// like damage followed by intact records: Inspect (and Tail) report such
// damage in the last segment only when two looks a few milliseconds apart
// agree, and look again at a store cut shorter while they read it (a roll).
//
// Repair is the explicit answer to corruption. It keeps the intact,
// contiguous records from a starting offset (the first one, or a later one
// a caller's snapshot makes sufficient) up to the first damage, cut back to
// a whole Append, and sets everything else aside: whole store files are
// renamed to <B>.log.aside, the rest of a kept prefix is copied to
// <B>.log.cut-<P> before the store is truncated, and a segment whose kept
// records start in its middle is rewritten as a new segment based there
// (frames copied unchanged: their checksums hold offsets, not positions)
// before the old file is renamed aside. Indexes of changed segments are
// removed and rebuilt by the next Open. Every step is durable before the
// next, and an interrupted Repair run again reaches the same log.
//
// # Offsets and errors
//
// Offsets below FirstOffset were removed by TruncateFront: Read returns an
// error matching ErrTruncated. Offsets at or after NextOffset do not exist
// yet: ErrOutOfRange. Checksum and structure failures are *CorruptError,
// matching ErrCorrupt.
//
// Verify re-reads every record and index entry of an open log; it holds
// the log's locks only for moments, so appends go on while it runs.
package wal
