package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The Object Store metrics: records too big for one NATS message, stored as
// objects behind a reference message (nats.large_records: object_store).
var (
	descObjects      = prometheus.NewDesc("fanoutd_records_stored_as_objects_total", "Records relayed as a reference to a JetStream Object Store object because they were too big for one NATS message (also counted in fanoutd_records_relayed_total), by stream.", []string{"stream"}, nil)
	descObjectBytes  = prometheus.NewDesc("fanoutd_object_bytes_total", "Data bytes of the records stored as objects, by stream.", []string{"stream"}, nil)
	descObjectReused = prometheus.NewDesc("fanoutd_objects_reused_total", "Object puts skipped because a replay found the object already stored whole (same size and SHA-256).", nil, nil)
)

// objectMetrics are observed per put.
type objectMetrics struct {
	latency  *prometheus.HistogramVec
	failures *prometheus.CounterVec
}

func newObjectMetrics() objectMetrics {
	return objectMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fanoutd_object_put_duration_seconds",
			Help:    "Time to put one large record into the Object Store, every chunk and the metadata confirmed (or to find it already stored), failed puts included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"stream"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanoutd_object_put_failures_total",
			Help: "Object puts that failed; the record's batch is replayed (its reference was not published).",
		}, []string{"stream"}),
	}
}

// ObserveObjectPut records one object put; it fits relay.Options.ObserveObject.
func (m *Monitor) ObserveObjectPut(stream string, bytes int, d time.Duration, err error) {
	m.objects.latency.WithLabelValues(stream).Observe(d.Seconds())
	if err != nil {
		m.objects.failures.WithLabelValues(stream).Inc()
	}
}
