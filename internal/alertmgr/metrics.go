package alertmgr

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the bridge's counters, in their own registry: the bridge is
// a process of its own, with its own /metrics (alertmanager.listen).
type Metrics struct {
	reg        *prometheus.Registry
	posted     prometheus.Counter
	postErrors prometheus.Counter
	resent     prometheus.Counter
	invalid    prometheus.Counter
	pending    prometheus.Gauge
	lastPost   prometheus.Gauge
}

// NewMetrics creates the metrics and their registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		posted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_alertmanager_alerts_posted_total",
			Help: "Alerts an Alertmanager accepted (their events are then acknowledged).",
		}),
		postErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_alertmanager_post_errors_total",
			Help: "Attempts at which no Alertmanager accepted a batch (retried).",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_alertmanager_alerts_resent_total",
			Help: "Active alerts posted again (resend_interval), for an Alertmanager that restarted.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_alertmanager_events_invalid_total",
			Help: "Events that could not be read as alerts and were dropped.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "monitord_alertmanager_pending_events",
			Help: "Events in the stream not yet posted and acknowledged: the bridge's lag.",
		}),
		lastPost: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "monitord_alertmanager_last_post_timestamp_seconds",
			Help: "When an Alertmanager last accepted a batch.",
		}),
	}
	m.reg.MustRegister(m.posted, m.postErrors, m.resent, m.invalid, m.pending, m.lastPost)
	return m
}

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
