package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/wal"
)

// SyncPolicy says when a write is durable; it is the WAL's policy.
type SyncPolicy = wal.SyncPolicy

// Sync policies (see the wal package for the details).
const (
	// SyncAlways: a write returns only once it is on disk (fdatasync);
	// concurrent writers share one fsync. The default.
	SyncAlways = wal.SyncAlways
	// SyncInterval: a write returns once queued; the WAL fsyncs every
	// Options.SyncInterval. A crash loses at most about one interval, and
	// the node then restarts under a new replica identity (see doc.go).
	SyncInterval = wal.SyncInterval
	// SyncNever: fsync only on snapshot and Close. For tests and caches.
	SyncNever = wal.SyncNever
)

// Limits and defaults.
const (
	// MaxKeyBytes is the longest key (and document field name) in bytes.
	MaxKeyBytes = 1024
	// MaxDepth bounds the nesting of JSON values and documents.
	MaxDepth = 64

	DefaultMaxValueBytes      = 1 << 20
	DefaultSnapshotEveryOps   = 1_000_000
	DefaultSnapshotEveryBytes = 256 << 20
	DefaultMaxBatchOps        = 4096
	DefaultMaxBatchOperations = 10_000
	DefaultSubscriberBuffer   = 1024
	DefaultMaxClockDrift      = time.Minute
)

// Options configure Open. The zero value (and a nil *Options) means
// defaults; Open copies the struct and never writes into the caller's value.
type Options struct {
	// Sync is the WAL durability policy; the zero value is SyncAlways.
	Sync SyncPolicy
	// SyncInterval is the fsync period under SyncInterval; 0 = 1s.
	SyncInterval time.Duration
	// SegmentBytes is the WAL segment size; 0 = the wal default (64 MiB).
	SegmentBytes int64

	// MaxValueBytes bounds one operation: the canonical JSON of a Put, the
	// members of one SetAdd/SetRemove, the values of one Update. 0 =
	// DefaultMaxValueBytes (1 MiB). A batch may hold several such operations
	// up to the WAL's record limit (16 MiB).
	MaxValueBytes int

	// SnapshotEveryOps writes a snapshot after this many WAL records since
	// the last one; 0 = DefaultSnapshotEveryOps, negative = never by count.
	SnapshotEveryOps int
	// SnapshotEveryBytes writes a snapshot after this many WAL bytes since
	// the last one; 0 = DefaultSnapshotEveryBytes, negative = never by size.
	SnapshotEveryBytes int64

	// MaxBatchOps bounds how many queued writes share one WAL append and one
	// fsync (group commit); 0 = DefaultMaxBatchOps.
	MaxBatchOps int

	// MaxBatchOperations bounds the operations of one Batch (Commit fails
	// with ErrTooLarge above it): the memory a batch takes while it is built
	// into one record grows with them. 0 = DefaultMaxBatchOperations.
	MaxBatchOperations int

	// SubscriberBuffer is how many events a subscriber may fall behind
	// before it is dropped with ErrSlowSubscriber; 0 = DefaultSubscriberBuffer.
	SubscriberBuffer int

	// MaxClockDrift bounds how far a remote timestamp may move the local
	// hybrid logical clock ahead of the wall clock; 0 = DefaultMaxClockDrift.
	// It is also how long an expired key stays in memory before the sweep
	// reclaims it: replicas whose clocks differ by at most this much all
	// find it expired by then. Give every replica the same value.
	MaxClockDrift time.Duration

	// SweepInterval is how often an idle node looks for expired keys to
	// report (EventExpired) and reclaim, and how soon a sweep put off
	// because writes were waiting tries again; 0 = DefaultSweepInterval.
	// Reads hide an expired key at once whatever it is.
	SweepInterval time.Duration

	// Logger receives recovery, snapshot and failure events; nil = off.
	Logger *slog.Logger
	// Registerer receives the node's metrics (shoal_node_*); nil = off. To
	// run several nodes on one registry, wrap it with
	// prometheus.WrapRegistererWith and a distinguishing label.
	Registerer prometheus.Registerer

	// Now is the wall clock for the hybrid logical clock; nil = time.Now.
	Now func() time.Time

	// WALFS is the file system the WAL uses; nil = the operating system's.
	// Tests inject faults through it.
	WALFS wal.FS

	// Gossip configures replication; nil = offline: the node is
	// fully usable alone. Open copies the pointer; replication copies the
	// struct before use.
	Gossip *gossip.Config

	// StateCheckInterval is the longest the node goes between two
	// comparisons of its state with a peer's, key range by key range,
	// whatever their applied sets say (each falls due between three
	// quarters of it and all of it after the last, at random; the first
	// within it): a divergence the applied sets cannot show is repaired
	// within about twice this (see repl_ranges.go). 0 = 10 × the gossip
	// AntiEntropyInterval (10s with gossip.DefaultLocalConfig, 50s with
	// DefaultLANConfig); negative = never.
	StateCheckInterval time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	switch c.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return c, fmt.Errorf("node: unknown sync policy %d", int(c.Sync))
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxValueBytes < 0 {
		return c, fmt.Errorf("node: negative MaxValueBytes %d", c.MaxValueBytes)
	}
	if c.SnapshotEveryOps == 0 {
		c.SnapshotEveryOps = DefaultSnapshotEveryOps
	}
	if c.SnapshotEveryBytes == 0 {
		c.SnapshotEveryBytes = DefaultSnapshotEveryBytes
	}
	if c.MaxBatchOperations <= 0 {
		c.MaxBatchOperations = DefaultMaxBatchOperations
	}
	if c.MaxBatchOps <= 0 {
		c.MaxBatchOps = DefaultMaxBatchOps
	}
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if c.MaxClockDrift <= 0 {
		c.MaxClockDrift = DefaultMaxClockDrift
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
