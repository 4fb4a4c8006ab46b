package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Deliveries counts the notifier's delivery attempts (notify.Metrics).
type Deliveries struct {
	attempts *prometheus.CounterVec
}

// Deliveries registers the notifier's collectors (call once per Registry).
func (r *Registry) Deliveries() *Deliveries {
	d := &Deliveries{attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segments_alert_delivery_attempts_total",
		Help: "Alert delivery attempts by channel and outcome (delivered, pending = will retry, dead = dead-lettered after 24 h, skipped).",
	}, []string{"channel", "outcome"})}
	r.reg.MustRegister(d.attempts)
	return d
}

// DeliveryAttempt counts one attempt's outcome.
func (d *Deliveries) DeliveryAttempt(channel, outcome string) {
	d.attempts.WithLabelValues(channel, outcome).Inc()
}
