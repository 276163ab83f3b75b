package node

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replMetrics are the replication metrics (shoal_repl_*). The gossip layer
// registers its own (shoal_gossip_*: members by state, bytes by message
// type, queues and drops, rejections) on the same registerer, and the
// commit loop counts remote records by result (shoal_node_remote_records_total:
// applied, duplicate, invalid).
type replMetrics struct {
	sent         prometheus.Counter
	received     *prometheus.CounterVec
	pushedOwn    prometheus.Counter
	delay        prometheus.Histogram
	served       *prometheus.CounterVec
	sentOps      prometheus.Counter
	sentKeys     prometheus.Counter
	repairedOps  prometheus.Counter
	repairedKeys prometheus.Counter
	stateBytes   prometheus.Counter
	rangesWanted prometheus.Counter
	checkRanges  *prometheus.CounterVec
	lagPulls     prometheus.Counter
	badDigests   prometheus.Counter
	lag          *peerLag
	registered   prometheus.Registerer
}

func newReplMetrics(n *Node) *replMetrics {
	const ns, sub = "shoal", "repl"
	m := &replMetrics{
		lag: newPeerLag(n),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deltas_sent_total", Help: "Local operations handed to gossip to push to every peer."}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_received_total", Help: "Records received from peers, by source (push, sync); shoal_node_remote_records_total says which were duplicates."}, []string{"source"}),
		pushedOwn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "own_records_pushed_back_total", Help: "Records of this replica's own operations that a peer pushed back to it (receivers never forward: should stay 0)."}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "propagation_delay_seconds", Help: "Receive time of a pushed operation minus its HLC physical time at the origin.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_served_total", Help: "Anti-entropy requests answered, by what was sent (nothing, ops, state: the whole state, summary: range sums, ranges: the key ranges a peer asked for, check: range sums for the periodic state comparison, after the ops the peer lacked)."}, []string{"mode"}),
		sentOps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_sent_records_total", Help: "WAL records sent to peers that lacked them."}),
		sentKeys: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_sent_keys_total", Help: "Keys sent in state transfers."}),
		repairedOps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_repaired_ops_total", Help: "Operations received by anti-entropy (this node lacked them)."}),
		repairedKeys: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_repaired_keys_total", Help: "Keys received by state transfer."}),
		stateBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_sent_state_bytes_total", Help: "Bytes of state sent to peers (summaries, key ranges, final records)."}),
		rangesWanted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "antientropy_ranges_wanted_total", Help: "Key ranges found different from a peer's summary and asked for."}),
		checkRanges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "state_check_ranges_total", Help: "Key ranges found different by the periodic state comparison with a peer, by result (differ: every one; diverged: those asked for, which operations in flight do not explain)."}, []string{"result"}),
		lagPulls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "lag_pulls_total", Help: "Pulls started because a peer's digest showed operations this node kept lacking."}),
		badDigests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "invalid_digests_total", Help: "Digests from peers that could not be decoded."}),
	}
	// Every label value shows from the start (at 0), not after its first
	// event: a rate() over a series that appears late misses its first
	// increase, and an alert on an absent series never fires.
	for _, v := range []string{"push", "sync"} {
		m.received.WithLabelValues(v)
	}
	for _, v := range []string{"nothing", "ops", "state", "summary", "ranges", "check"} {
		m.served.WithLabelValues(v)
	}
	for _, v := range []string{"differ", "diverged"} {
		m.checkRanges.WithLabelValues(v)
	}
	return m
}

func (m *replMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sent, m.received, m.pushedOwn, m.delay, m.served, m.sentOps, m.sentKeys,
		m.repairedOps, m.repairedKeys, m.stateBytes, m.rangesWanted, m.checkRanges, m.lagPulls, m.badDigests, m.lag}
}

// peerLag reports, at each scrape, how far each peer is behind this
// node's writes (from SyncStatus): shoal_repl_peer_behind_ops and
// shoal_repl_peer_behind_seconds, the age of the oldest write of ours it
// lacks (its HLC time, read from the WAL through the dot index; when the
// record is gone from the WAL, the time since the peer's last
// acknowledgement, a lower bound).
type peerLag struct {
	n        *Node
	ops, sec *prometheus.Desc
}

func newPeerLag(n *Node) *peerLag {
	return &peerLag{n: n,
		ops: prometheus.NewDesc("shoal_repl_peer_behind_ops", "This node's writes a peer does not hold yet, by peer (0: synced).", []string{"peer", "state"}, nil),
		sec: prometheus.NewDesc("shoal_repl_peer_behind_seconds", "Age of the oldest write of this node a peer does not hold yet, by peer (0: synced).", []string{"peer", "state"}, nil),
	}
}

func (l *peerLag) Describe(ch chan<- *prometheus.Desc) { ch <- l.ops; ch <- l.sec }

func (l *peerLag) Collect(ch chan<- prometheus.Metric) {
	st, err := l.n.SyncStatus()
	if err != nil {
		return
	}
	now := l.n.opts.Now()
	for _, p := range st.Peers {
		behind := st.Local - min(p.Acked, st.Local)
		secs := 0.0
		if behind > 0 {
			secs = now.Sub(p.Updated).Seconds()
			if t, ok := l.n.ownWriteTime(p.Acked + 1); ok {
				secs = max(now.Sub(t).Seconds(), 0)
			}
		}
		ch <- prometheus.MustNewConstMetric(l.ops, prometheus.GaugeValue, float64(behind), p.Name, p.State)
		ch <- prometheus.MustNewConstMetric(l.sec, prometheus.GaugeValue, secs, p.Name, p.State)
	}
}

// ownWriteTime is the HLC physical time of this node's write seq, if its
// record is still in the WAL.
func (n *Node) ownWriteTime(seq uint64) (time.Time, bool) {
	offs, ok := n.index.lookup(n.replica, seq, seq)
	if !ok || len(offs) == 0 {
		return time.Time{}, false
	}
	rec, err := n.wal.Read(offs[0].First)
	if err != nil {
		return time.Time{}, false
	}
	op, err := DecodeOp(rec)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(op.Time.Physical()), true
}

func (m *replMetrics) register(r prometheus.Registerer) error {
	if err := registerAll(r, m.collectors()); err != nil {
		return fmt.Errorf("node: register replication metrics: %w", err)
	}
	m.registered = r
	return nil
}

func (m *replMetrics) unregister() {
	unregisterAll(m.registered, m.collectors())
	m.registered = nil
}
