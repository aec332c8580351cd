package monitor

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/relay"
)

// Sources are the snapshots the monitor reads. Each may be called at any
// time from any goroutine.
type Sources struct {
	// Shards returns every known shard of every stream.
	Shards func() []fanout.ShardStatus
	// Publisher returns the publisher's counters, PublisherStreams its
	// counters by stream.
	Publisher        func() relay.Stats
	PublisherStreams func() map[string]relay.StreamStats
	// Objects returns the publisher's Object Store counters.
	Objects func() relay.ObjectStats
	// NATSConnected reports whether the NATS connection is up.
	NATSConnected func() bool
	// Streams names the streams being consumed: each must have a shard
	// being read before the daemon is ready.
	Streams func() []string
	// StoppedStreams are the streams that stopped alone while others run
	// (deleted), with the reason.
	StoppedStreams func() map[string]string
	// Group, when several instances share the shards, is the group as this
	// instance sees it.
	Group func() GroupStatus
	// ReadModes is how each stream is read now: efo or polling (what a
	// stream with read: auto chose).
	ReadModes func() map[string]fanout.ReadMode
}

// Monitor computes health and serves metrics.
type Monitor struct {
	mu           sync.RWMutex
	src          Sources
	stallTimeout time.Duration
	version      string
	startedAt    time.Time
	// started is set once every stream consumer runs; stopping at shutdown.
	started, stopping atomic.Bool
	// waiting says what the start waits for ("" when nothing).
	waiting atomic.Pointer[string]

	reg            *prometheus.Registry
	publishLatency *prometheus.HistogramVec
	publishErrors  *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadOKAt     prometheus.Gauge
	renewLatency   prometheus.Histogram
	objects        objectMetrics
}

// New returns a monitor. stallTimeout is how long a reading shard's loop may
// show no activity before it counts as stalled.
func New(src Sources, stallTimeout time.Duration, version string) *Monitor {
	m := &Monitor{src: src, stallTimeout: stallTimeout, version: version, startedAt: time.Now()}
	m.reg = prometheus.NewRegistry()
	m.publishLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fanoutd_publish_duration_seconds",
		Help:    "Time to publish one batch (one SubscribeToShard event) to NATS and have it confirmed (flush or every PubAck).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"stream"})
	m.publishErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fanoutd_publish_failed_batches_total",
		Help: "Batches NATS did not confirm (the shard retries them from its checkpoint).",
	}, []string{"stream"})
	// As Prometheus and Alertmanager name them: the config loaded at start
	// counts as the first successful reload.
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fanoutd_config_last_reload_successful",
		Help: "1 if the last configuration reload (SIGHUP) was applied, 0 if it was rejected and the running configuration kept.",
	})
	m.reloadOKAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fanoutd_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration was last loaded successfully (at start, or by a reload), in seconds since the epoch.",
	})
	m.SetReloaded(true, m.startedAt)
	m.renewLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "fanoutd_coordination_lease_renew_seconds",
		Help:    "Time to renew one lease (a compare-and-set in the coordination bucket).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.objects = newObjectMetrics()
	m.reg.MustRegister(m.objects.latency, m.objects.failures)
	m.reg.MustRegister(m.publishLatency, m.publishErrors, m.reloadOK, m.reloadOKAt, m.renewLatency, &collector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the Prometheus registry with every fanoutd metric.
func (m *Monitor) Registry() *prometheus.Registry { return m.reg }

// SetSources replaces the sources (after a reload).
func (m *Monitor) SetSources(src Sources) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.src = src
}

func (m *Monitor) sources() Sources {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.src
}

// SetReloaded records the outcome of a configuration reload at t.
func (m *Monitor) SetReloaded(ok bool, t time.Time) {
	if ok {
		m.reloadOK.Set(1)
		m.reloadOKAt.Set(float64(t.UnixMilli()) / 1000)
		return
	}
	m.reloadOK.Set(0)
}

// SetStarted marks the daemon as started: every stream consumer runs.
func (m *Monitor) SetStarted() { m.started.Store(true) }

// SetWaiting says what the start is waiting for, such as AWS credentials,
// in /readyz and the systemd STATUS line; "" when nothing.
func (m *Monitor) SetWaiting(why string) { m.waiting.Store(&why) }

// Waiting is what SetWaiting last said.
func (m *Monitor) Waiting() string {
	if p := m.waiting.Load(); p != nil {
		return *p
	}
	return ""
}

// SetStopping marks the daemon as shutting down: it is no longer ready.
func (m *Monitor) SetStopping() { m.stopping.Store(true) }

// ObservePublish records one batch; it fits relay.Options.Observe.
func (m *Monitor) ObservePublish(stream string, records int, d time.Duration, err error) {
	m.publishLatency.WithLabelValues(stream).Observe(d.Seconds())
	if err != nil {
		m.publishErrors.WithLabelValues(stream).Inc()
	}
}

// resubscribeGrace is how long a shard may be between two subscriptions (a
// renewal) and still count as subscribed.
const resubscribeGrace = 10 * time.Second

// Health is the daemon's state as /readyz and the watchdog see it.
type Health struct {
	// Ready: started, NATS connected, every reading shard subscribed, none
	// stalled.
	Ready bool `json:"ready"`
	// Live: no shard is stalled (the systemd watchdog is fed).
	Live          bool     `json:"live"`
	Reasons       []string `json:"reasons,omitempty"`
	Stalled       []string `json:"stalled,omitempty"`
	NATSConnected bool     `json:"nats_connected"`
	Shards        int      `json:"shards_reading"`
	Subscribed    int      `json:"shards_subscribed"`
	MaxLagMillis  int64    `json:"max_millis_behind_latest"`
}

// Health evaluates readiness and stalls now.
func (m *Monitor) Health() Health {
	src := m.sources()
	now := time.Now()
	h := Health{NATSConnected: src.NATSConnected != nil && src.NATSConnected()}
	reading := map[string]bool{}
	for _, s := range src.Shards() {
		if s.State == fanout.ShardNotOwned {
			reading[s.Stream] = true // another instance of the group reads it
		}
		if s.State != fanout.ShardReading {
			continue
		}
		reading[s.Stream] = true
		h.Shards++
		id := s.Stream + "/" + s.ShardID
		if s.Subscribed || now.Sub(s.LastActivity) < resubscribeGrace {
			h.Subscribed++
		}
		if now.Sub(s.LastActivity) > m.stallTimeout {
			h.Stalled = append(h.Stalled, id)
		}
		h.MaxLagMillis = max(h.MaxLagMillis, s.MillisBehindLatest)
	}
	sort.Strings(h.Stalled)
	switch {
	case m.stopping.Load():
		h.Reasons = append(h.Reasons, "shutting down")
	case !m.started.Load():
		h.Reasons = append(h.Reasons, "starting")
	}
	if w := m.Waiting(); w != "" {
		h.Reasons = append(h.Reasons, w)
	}
	if !h.NATSConnected {
		h.Reasons = append(h.Reasons, "NATS not connected")
	}
	if h.Shards == 0 {
		h.Reasons = append(h.Reasons, "no shard is being read yet")
	} else if src.Streams != nil {
		var waiting []string
		for _, name := range src.Streams() {
			if !reading[name] {
				waiting = append(waiting, name)
			}
		}
		if len(waiting) > 0 {
			sort.Strings(waiting)
			h.Reasons = append(h.Reasons, "streams not being read yet: "+strings.Join(waiting, ", "))
		}
	}
	if h.Subscribed < h.Shards {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d of %d shards without a subscription", h.Shards-h.Subscribed, h.Shards))
	}
	if len(h.Stalled) > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("stalled shards (no activity for %v): %s", m.stallTimeout, strings.Join(h.Stalled, ", ")))
	}
	h.Live = len(h.Stalled) == 0
	h.Ready = len(h.Reasons) == 0
	return h
}
