package node

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus collectors. They always exist (so the
// code never checks for nil); they are registered only when
// Options.Registerer is set.
type metrics struct {
	ops            *prometheus.CounterVec // committed local operations by kind
	opErrors       *prometheus.CounterVec // refused operations by reason
	remote         *prometheus.CounterVec // remote records by result
	walBytes       prometheus.Counter
	walRecords     prometheus.Counter
	appendSeconds  prometheus.Histogram // one WAL append (write + fsync) per group
	fsyncSeconds   prometheus.Histogram // one fdatasync of the WAL
	batchOps       prometheus.Histogram // requests per group commit
	snapshotSecs   prometheus.Histogram
	snapshots      *prometheus.CounterVec // by result
	snapshotBytes  prometheus.Gauge
	snapshotTime   prometheus.Gauge
	replaySeconds  prometheus.Gauge
	replayRecords  prometheus.Gauge
	keys           prometheus.Gauge
	subscribers    prometheus.Gauge
	subDropped     prometheus.Counter
	readOnly       prometheus.Gauge
	clockAhead     prometheus.Counter
	keysExpired    prometheus.Counter // keys the sweep found expired (expiry.go)
	keysReclaimed  prometheus.Counter // expired keys dropped from the state
	transferHeld   prometheus.Gauge   // remote deltas held back by a state transfer (transfer.go)
	queueDepthFunc prometheus.GaugeFunc

	registered prometheus.Registerer // where register put them, for unregister

	// Hot-path children, looked up once (WithLabelValues hashes labels).
	opsBy             [reqSnapshot + 1]prometheus.Counter
	remoteApplied     prometheus.Counter
	remoteDup         prometheus.Counter
	remoteInvalid     prometheus.Counter
	remoteHeld        prometheus.Counter
	remoteHeldDropped prometheus.Counter
	remoteRefused     prometheus.Counter
	readOnlyErrors    prometheus.Counter
}

func newMetrics(queueDepth func() float64) *metrics {
	const ns, sub = "shoal", "node"
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ops_total", Help: "Local operations committed, by kind."}, []string{"op"}),
		opErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "op_errors_total", Help: "Operations refused, by reason."}, []string{"reason"}),
		remote: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "remote_records_total", Help: "Records received from peers, by result (applied, duplicate, invalid; held: held back during a state transfer, applied or found duplicate later; held_dropped: too many held, dropped for anti-entropy to bring again; refused: state from a second peer during a transfer)."}, []string{"result"}),
		walBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "wal_bytes_total", Help: "Record bytes appended to the WAL."}),
		walRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "wal_records_total", Help: "Records appended to the WAL."}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "wal_append_seconds", Help: "Duration of one group-commit WAL append, including fsync under SyncAlways.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "wal_fsync_seconds", Help: "Duration of one fdatasync of the WAL.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
		batchOps: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "commit_batch_requests", Help: "Write requests sharing one WAL append and fsync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		snapshotSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "snapshot_seconds", Help: "Duration of writing one snapshot.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16)}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "snapshots_total", Help: "Snapshots written, by result."}, []string{"result"}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "snapshot_bytes", Help: "Size of the newest snapshot."}),
		snapshotTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "snapshot_timestamp_seconds", Help: "Unix time of the newest snapshot (0: none); its age is time() minus this."}),
		replaySeconds: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "replay_seconds", Help: "Duration of the recovery at Open (snapshot load and WAL replay)."}),
		replayRecords: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "replay_records", Help: "WAL records replayed at Open."}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "keys", Help: "Keys in the state."}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "subscribers", Help: "Open subscriptions."}),
		subDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "subscribers_dropped_total", Help: "Subscriptions ended because the reader fell behind."}),
		readOnly: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "read_only", Help: "1 when a WAL failure made the node read-only."}),
		transferHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "transfer_held_records", Help: "Remote deltas held back until the state transfer in progress ends (at most 4096)."}),
		keysExpired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "keys_expired_total", Help: "Keys found expired by the sweep (reported to subscribers as expired)."}),
		keysReclaimed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "keys_reclaimed_total", Help: "Expired keys dropped from memory, MaxClockDrift after they expired."}),
		clockAhead: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "clock_ahead_total", Help: "Remote timestamps further ahead of the local clock than MaxClockDrift (accepted, clock clamped)."}),
	}
	for k := reqPut; k <= reqPersist; k++ {
		m.opsBy[k] = m.ops.WithLabelValues(k.String())
	}
	m.opsBy[reqBatch] = m.ops.WithLabelValues(reqBatch.String())
	m.remoteApplied = m.remote.WithLabelValues("applied")
	m.remoteDup = m.remote.WithLabelValues("duplicate")
	m.remoteInvalid = m.remote.WithLabelValues("invalid")
	m.remoteHeld = m.remote.WithLabelValues("held")
	m.remoteHeldDropped = m.remote.WithLabelValues("held_dropped")
	m.remoteRefused = m.remote.WithLabelValues("refused")
	m.readOnlyErrors = m.opErrors.WithLabelValues("read_only")
	m.snapshots.WithLabelValues("ok")
	m.snapshots.WithLabelValues("error")
	m.queueDepthFunc = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "write_queue_depth", Help: "Write requests waiting for the commit loop."}, queueDepth)
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.ops, m.opErrors, m.remote, m.walBytes, m.walRecords,
		m.appendSeconds, m.fsyncSeconds, m.batchOps, m.snapshotSecs, m.snapshots, m.snapshotBytes, m.snapshotTime,
		m.replaySeconds, m.replayRecords, m.keys, m.subscribers, m.subDropped,
		m.readOnly, m.clockAhead, m.keysExpired, m.keysReclaimed, m.transferHeld, m.queueDepthFunc}
}

// register registers every collector, or none.
func (m *metrics) register(r prometheus.Registerer) error {
	if err := registerAll(r, m.collectors()); err != nil {
		return fmt.Errorf("node: register metrics: %w", err)
	}
	m.registered = r
	return nil
}

// unregister undoes a successful register (and nothing else: Unregister
// matches by descriptor, so it would remove another node's metrics).
func (m *metrics) unregister() {
	unregisterAll(m.registered, m.collectors())
	m.registered = nil
}

// registerAll registers every collector on r, or none; nil r is a no-op.
func registerAll(r prometheus.Registerer, cs []prometheus.Collector) error {
	if r == nil {
		return nil
	}
	for i, c := range cs {
		if err := r.Register(c); err != nil {
			for _, d := range cs[:i] {
				r.Unregister(d)
			}
			return err
		}
	}
	return nil
}

// unregisterAll undoes registerAll; nil r is a no-op.
func unregisterAll(r prometheus.Registerer, cs []prometheus.Collector) {
	if r == nil {
		return
	}
	for _, c := range cs {
		r.Unregister(c)
	}
}
