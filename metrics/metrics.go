// Package metrics exposes the service's Prometheus metrics. Its Registry
// implements the small Metrics interfaces that eventstore, ingest and httpapi
// declare, so those packages stay free of Prometheus.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds the collectors.
type Registry struct {
	reg              *prometheus.Registry
	appended         prometheus.Counter
	ingested         *prometheus.CounterVec
	rejected         *prometheus.CounterVec
	groupSize        prometheus.Histogram
	groupDuration    prometheus.Histogram
	published        prometheus.Counter
	publishFailures  prometheus.Counter
	publishLagEvents prometheus.Gauge
	publishLagSecs   prometheus.Gauge
	projected        prometheus.Counter
	alreadyApplied   prometheus.Counter
	projectionLag    prometheus.Histogram
	lateness         prometheus.Histogram
}

// New registers the collectors, with Go and process collectors.
func New() *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "segments_events_appended_total", Help: "Events recorded in the event store.",
		}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segments_events_ingested_total", Help: "Events accepted, by transport (http, nats).",
		}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "segments_ingest_rejected_total", Help: "Rejected ingest requests or messages, by transport and reason.",
		}, []string{"transport", "reason"}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "segments_append_group_events", Help: "Events per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		groupDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "segments_append_group_seconds", Help: "Duration of group-commit transactions.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "segments_events_published_total", Help: "Events published to SEGMENTS_EVENTS.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "segments_publish_failures_total", Help: "Failed publication attempts (retried).",
		}),
		publishLagEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "segments_publish_lag_events", Help: "Recorded events not yet published.",
		}),
		publishLagSecs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "segments_publish_lag_seconds", Help: "Age of the oldest recorded event not yet published.",
		}),
		projected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "segments_events_projected_total", Help: "Events applied to customer projections.",
		}),
		alreadyApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "segments_projector_messages_already_applied_total",
			Help: "SEGMENTS_EVENTS messages acknowledged without a transaction: this process had already stored their events durably.",
		}),
		projectionLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "segments_projection_lag_seconds", Help: "Time from publication to the projection committing.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "segments_boundary_lateness_seconds", Help: "Scheduler: time from a boundary instant to its processing.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	r.reg.MustRegister(r.lateness, r.projected, r.alreadyApplied, r.projectionLag, r.appended, r.ingested, r.rejected, r.groupSize, r.groupDuration,
		r.published, r.publishFailures, r.publishLagEvents, r.publishLagSecs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves /metrics.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// EventsAppended counts recorded events.
func (r *Registry) EventsAppended(n int) { r.appended.Add(float64(n)) }

// AppendGroup observes one group-commit transaction.
func (r *Registry) AppendGroup(_, events int, took time.Duration) {
	r.groupSize.Observe(float64(events))
	r.groupDuration.Observe(took.Seconds())
}

// Ingested counts accepted events by transport.
func (r *Registry) Ingested(transport string, n int) {
	r.ingested.WithLabelValues(transport).Add(float64(n))
}

// Rejected counts a rejection by transport and reason.
func (r *Registry) Rejected(transport, reason string) {
	r.rejected.WithLabelValues(transport, reason).Inc()
}

// Published counts published events.
func (r *Registry) Published(n int) { r.published.Add(float64(n)) }

// PublishFailed counts a failed publication attempt.
func (r *Registry) PublishFailed() { r.publishFailures.Inc() }

// PublishLag sets the publication lag.
func (r *Registry) PublishLag(events int64, seconds float64) {
	r.publishLagEvents.Set(float64(events))
	r.publishLagSecs.Set(seconds)
}

// EventsProjected counts events applied by the projector.
func (r *Registry) EventsProjected(n int) { r.projected.Add(float64(n)) }

// ProjectionLag observes how long after publication a batch was projected.
func (r *Registry) ProjectionLag(seconds float64) { r.projectionLag.Observe(seconds) }

// MessagesAlreadyApplied counts messages the projector acknowledged without
// a transaction.
func (r *Registry) MessagesAlreadyApplied(n int) { r.alreadyApplied.Add(float64(n)) }

// BoundaryLateness observes how late the scheduler processed a boundary.
func (r *Registry) BoundaryLateness(seconds float64) { r.lateness.Observe(seconds) }

// BusConnected registers segments_bus_connected, read from connected at
// every scrape: 1 while the NATS connection is up, 0 during an outage (the
// API goes on recording events; publication catches up afterwards).
func (r *Registry) BusConnected(connected func() bool) {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "segments_bus_connected", Help: "1 while the NATS connection is up, else 0.",
	}, func() float64 {
		if connected() {
			return 1
		}
		return 0
	}))
}
