package discover

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer learns the outcome of every refresh (for metrics).
type Observer interface {
	Refreshed(r RefreshResult)
}

// RefreshResult is one refresh of one entry. On error only ServiceSID,
// Duration, Err and ParticipantLists are meaningful: nothing was committed.
type RefreshResult struct {
	ServiceSID string
	Duration   time.Duration
	Err        error
	// SessionsSeen: sessions followed as live after this refresh.
	SessionsSeen int
	// SessionsClosed: sessions live at the previous refresh and not now
	// (closed, failed, gone, filtered out); their targets enter grace.
	SessionsClosed int
	// Targets tracked after the refresh, InGrace of them in their grace
	// period; Dropped: targets whose grace ended in this refresh. The Sink
	// decides all three; discovery passes on its answer.
	Targets, InGrace, Dropped int
	// ParticipantLists: participants listings made (one or more requests
	// each, one page at Proxy's two participants per session).
	ParticipantLists int
}

// Metrics is an Observer that exports Prometheus metrics. Labels are by
// Service only: bounded by the config's discover entries.
type Metrics struct {
	refreshes        *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	sessions         *prometheus.GaugeVec
	closed           *prometheus.CounterVec
	targets          *prometheus.GaugeVec
	dropped          *prometheus.CounterVec
	participantLists *prometheus.CounterVec
	byOrigin         *prometheus.GaugeVec
}

// NewMetrics registers discovery's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_discovery_refreshes_total",
			Help: "Discovery refreshes by Service and result (ok, error). An error keeps the previous target set.",
		}, []string{"service", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "monitord_discovery_refresh_duration_seconds",
			Help:    "Duration of discovery refreshes, including waits for the Service's rate budget.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600},
		}, []string{"service"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "monitord_discovery_sessions",
			Help: "Sessions followed as live after the last successful refresh.",
		}, []string{"service"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_discovery_sessions_closed_total",
			Help: "Sessions that stopped being live (closed, failed, gone); their targets enter the grace period.",
		}, []string{"service"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "monitord_discovery_targets",
			Help: "Discovered targets by state: live, or grace (session ended, still polled for late receipts).",
		}, []string{"service", "state"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_discovery_targets_dropped_total",
			Help: "Discovered targets dropped after their grace period (their state is forgotten).",
		}, []string{"service"}),
		participantLists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_discovery_participant_lists_total",
			Help: "Participants listings made by discovery (the rest come from its cache).",
		}, []string{"service"}),
		byOrigin: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "monitord_targets_by_origin",
			Help: "Polled targets by origin (configured, discovered); a target both configured and discovered counts as configured.",
		}, []string{"origin"}),
	}
	for _, c := range []prometheus.Collector{m.refreshes, m.duration, m.sessions, m.closed, m.targets, m.dropped, m.participantLists, m.byOrigin} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.TargetsByOrigin(0, 0)
	return m, nil
}

// TargetsByOrigin sets the targets-by-origin gauge; the target set
// (internal/targets) calls it each time the merged target list changes.
// A target both configured and discovered counts as configured.
func (m *Metrics) TargetsByOrigin(configured, discovered int) {
	m.byOrigin.WithLabelValues("configured").Set(float64(configured))
	m.byOrigin.WithLabelValues("discovered").Set(float64(discovered))
}

// Refreshed implements Observer.
func (m *Metrics) Refreshed(r RefreshResult) {
	svc := r.ServiceSID
	m.duration.WithLabelValues(svc).Observe(r.Duration.Seconds())
	m.participantLists.WithLabelValues(svc).Add(float64(r.ParticipantLists))
	if r.Err != nil {
		m.refreshes.WithLabelValues(svc, "error").Inc()
		return
	}
	m.refreshes.WithLabelValues(svc, "ok").Inc()
	m.sessions.WithLabelValues(svc).Set(float64(r.SessionsSeen))
	m.closed.WithLabelValues(svc).Add(float64(r.SessionsClosed))
	m.targets.WithLabelValues(svc, "live").Set(float64(r.Targets - r.InGrace))
	m.targets.WithLabelValues(svc, "grace").Set(float64(r.InGrace))
	m.dropped.WithLabelValues(svc).Add(float64(r.Dropped))
}
