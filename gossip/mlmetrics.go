package gossip

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// memberlist reports its own measurements (probe round trips, the Lifeguard
// health score, alive/suspect/dead messages, degraded probes, push/pull and
// gossip rounds) only through the process-wide instance of
// hashicorp/go-metrics. So the first Gossip with a Registerer installs
// there, once per process, a sink (mlSink) that hands each measurement to
// the Gossip it came from (memberlist labels them with Config.MetricLabels,
// and each Gossip sets one label naming itself), and each Gossip exports
// what it received as shoal_memberlist_* metrics through its own
// Registerer. That global sink is the one process-wide effect of this
// package; a program that installs its own go-metrics global afterwards
// replaces it (memberlist metrics then go there instead).
//
// Refused traffic is not among memberlist's metrics: it only logs it, and
// memberlistLog counts those lines (security tests pin every reason).

// mlLabel is the go-metrics label that names the Gossip instance.
const mlLabel = "shoal_gossip"

var (
	mlSinkOnce sync.Once
	mlSinks    sync.Map // instance id -> *mlMetrics
	mlNextID   atomic.Uint64
)

// mlMetrics accumulates one instance's memberlist measurements, by name
// and labels (memberlist's own labels, such as node_state, are kept).
type mlMetrics struct {
	id     string
	mu     sync.Mutex
	series map[string]*mlSeries // by mlSeriesKey
}

type mlKind uint8

const (
	mlCounter mlKind = 1
	mlGauge   mlKind = 2
	mlSummary mlKind = 3
)

type mlSeries struct {
	kind                    mlKind
	name                    string
	labelNames, labelValues []string
	value                   float64 // counter total, gauge value, or sample sum
	count                   uint64  // samples
}

func newMLMetrics() *mlMetrics {
	return &mlMetrics{id: strconv.FormatUint(mlNextID.Add(1), 10), series: map[string]*mlSeries{}}
}

// record adds one measurement. Holds no lock on entry.
func (m *mlMetrics) record(kind mlKind, key []string, val float32, labels []metrics.Label) {
	name := mlName(key)
	var names, values []string
	k := name
	for _, l := range labels {
		if l.Name != mlLabel {
			names, values = append(names, l.Name), append(values, l.Value)
			k += "\x00" + l.Name + "\x00" + l.Value
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[k]
	if s == nil {
		s = &mlSeries{kind: kind, name: name, labelNames: names, labelValues: values}
		m.series[k] = s
	}
	if s.kind != kind {
		return // one name, two kinds: keep the first
	}
	switch kind {
	case mlCounter:
		s.value += float64(val)
	case mlGauge:
		s.value = float64(val)
	case mlSummary:
		s.value += float64(val)
		s.count++
	}
}

func (m *mlMetrics) labels() []metrics.Label { return []metrics.Label{{Name: mlLabel, Value: m.id}} }

// attach makes the process-wide sink deliver this instance's measurements.
func (m *mlMetrics) attach() {
	mlSinkOnce.Do(func() {
		cfg := metrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableRuntimeMetrics = false // it would start a goroutine
		cfg.EnableServiceLabel = false
		cfg.EnableTypePrefix = false
		_, _ = metrics.NewGlobal(cfg, mlSink{})
	})
	mlSinks.Store(m.id, m)
}

func (m *mlMetrics) detach() { mlSinks.Delete(m.id) }

// mlName turns a go-metrics key ("memberlist", "msg", "alive") into a
// Prometheus name (shoal_memberlist_msg_alive).
func mlName(key []string) string {
	var b strings.Builder
	b.WriteString("shoal")
	for _, k := range key {
		b.WriteByte('_')
		for _, r := range k {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
				b.WriteRune(r)
			case r >= 'A' && r <= 'Z':
				b.WriteRune(r - 'A' + 'a')
			default:
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// collect exports the measurements received so far.
func (m *mlMetrics) collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.series {
		switch s.kind {
		case mlCounter:
			d := prometheus.NewDesc(s.name+"_total", "memberlist's counter "+s.name+".", s.labelNames, nil)
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, s.value, s.labelValues...)
		case mlGauge:
			d := prometheus.NewDesc(s.name, "memberlist's gauge "+s.name+".", s.labelNames, nil)
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, s.value, s.labelValues...)
		case mlSummary:
			d := prometheus.NewDesc(s.name, "memberlist's samples "+s.name+" (timings in milliseconds).", s.labelNames, nil)
			ch <- prometheus.MustNewConstSummary(d, s.count, s.value, nil, s.labelValues...)
		}
	}
}

// mlSink is the go-metrics sink: it routes labelled measurements to their
// instance and drops the rest. go-metrics calls it from memberlist's
// goroutines; it never blocks beyond a short lock.
type mlSink struct{}

func route(labels []metrics.Label) *mlMetrics {
	for _, l := range labels {
		if l.Name == mlLabel {
			if m, ok := mlSinks.Load(l.Value); ok {
				return m.(*mlMetrics)
			}
		}
	}
	return nil
}

func (mlSink) SetGauge([]string, float32)    {}
func (mlSink) EmitKey([]string, float32)     {}
func (mlSink) IncrCounter([]string, float32) {}
func (mlSink) AddSample([]string, float32)   {}

func (mlSink) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	if m := route(labels); m != nil {
		m.record(mlGauge, key, val, labels)
	}
}

func (mlSink) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	if m := route(labels); m != nil {
		m.record(mlCounter, key, val, labels)
	}
}

func (mlSink) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	if m := route(labels); m != nil {
		m.record(mlSummary, key, val, labels)
	}
}
