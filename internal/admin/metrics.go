package admin

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/monitord/monitord/internal/errcode"
	"github.com/monitord/monitord/internal/event"
)

// Metrics holds every metric monitord exports, in a private registry. It
// implements the observer interfaces of the twilio client, the poller and
// the notify publisher, so each of them reports here without knowing about
// Prometheus. No label carries an interaction or target SID: cardinality
// stays bounded however many targets are polled.
type Metrics struct {
	reg *prometheus.Registry

	polls        *prometheus.CounterVec
	pollDuration prometheus.Histogram
	pollWait     prometheus.Histogram
	skipped      prometheus.Counter
	requests     *prometheus.CounterVec
	reqDuration  prometheus.Histogram
	rateLimited  prometheus.Counter
	retries      *prometheus.CounterVec
	pages        prometheus.Histogram
	events       *prometheus.CounterVec
	failed       *prometheus.CounterVec
	reasons      *prometheus.CounterVec
	published    prometheus.Counter
	publishErrs  prometheus.Counter
	natsUp       prometheus.Gauge

	sources atomic.Pointer[Sources]
	// codes are the error codes the failed-events metric keeps as their
	// own label value; nil until SetErrorCodes: errcode's table.
	codes atomic.Pointer[map[int]string]
}

// Sources are read when /metrics is scraped, for values that are cheaper
// to ask for than to track: outbox depth, targets by health, cycle times.
// Any field may be nil.
type Sources struct {
	Outbox    func() (events int, bytes int64, oldest time.Time, err error)
	Targets   func() map[string]int // health → count
	LastCycle func() time.Time
	LastTick  func() time.Time
}

// NewMetrics creates the metrics and their registry, with the Go runtime
// and process collectors (RSS and CPU for docs/performance.md come from
// there).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_polls_total",
			Help: "Polls of targets by result (ok, error, outbox_full, state_error, cancelled, panic).",
		}, []string{"result"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "monitord_poll_duration_seconds",
			Help:    "Time of one poll: every page listed, diffed and committed.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		pollWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "monitord_poll_schedule_lag_seconds",
			Help:    "Time from a target's scheduled activation to the start of its poll (waiting for a worker).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_polls_skipped_total",
			Help: "Activations skipped because the target's previous poll was still queued or running: the schedule cannot be met.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_api_requests_total",
			Help: `Twilio API requests by HTTP status code ("error" for transport failures).`,
		}, []string{"code"}),
		reqDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "monitord_api_request_duration_seconds",
			Help:    "Duration of one Twilio API request attempt.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_api_rate_limited_total",
			Help: "Twilio API responses with HTTP 429.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_api_retries_total",
			Help: "Twilio API request retries by reason.",
		}, []string{"reason"}),
		pages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "monitord_poll_pages",
			Help:    "Pages fetched per complete listing.",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100},
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_events_total",
			Help: "Events committed to the outbox, by kind.",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_failed_events_total",
			Help: `Failed events committed to the outbox, by Proxy Service SID and error code ("unknown": none; "other": not in reasons.metric_codes).`,
		}, []string{"service", "error_code"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monitord_reason_fetches_total",
			Help: "Fetches of the Message behind a failed leg, by result (ok, no_code, not_found, error, timeout, skipped).",
		}, []string{"result"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_events_published_total",
			Help: "Events acknowledged by NATS and removed from the outbox.",
		}),
		publishErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monitord_publish_errors_total",
			Help: "Failed outbox drain attempts (retried).",
		}),
		natsUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "monitord_nats_connected",
			Help: "1 while connected to NATS.",
		}),
	}
	m.reg.MustRegister(m.polls, m.pollDuration, m.pollWait, m.skipped, m.requests, m.reqDuration,
		m.rateLimited, m.retries, m.pages, m.events, m.failed, m.reasons, m.published, m.publishErrs, m.natsUp,
		sourcesCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, k := range event.Kinds {
		m.events.WithLabelValues(string(k)) // export zeros: rate() works from the first event
	}
	for _, r := range []string{"ok", "error", "outbox_full", "state_error", "conflict", "cancelled", "panic"} {
		m.polls.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "no_code", "not_found", "error", "timeout", "skipped"} {
		m.reasons.WithLabelValues(r)
	}
	m.SetErrorCodes(nil)
	return m
}

// SetErrorCodes sets the error codes monitord_failed_events_total keeps as
// their own error_code label value; any other code counts as "other", so
// however many codes Twilio invents the metric stays bounded (Services ×
// (codes + 2) series). nil or empty means errcode.Codes(): the codes
// monitord can explain.
func (m *Metrics) SetErrorCodes(codes []int) {
	if len(codes) == 0 {
		codes = errcode.Codes()
	}
	labels := make(map[int]string, len(codes))
	for _, c := range codes {
		labels[c] = strconv.Itoa(c)
	}
	m.codes.Store(&labels)
}

// ErrorCodeLabel is the error_code label value of code: the code as
// decimal text when it is one of the configured codes, "unknown" for 0 (no
// code), "other" otherwise. The Alertmanager consumer labels alerts the
// same way.
func (m *Metrics) ErrorCodeLabel(code int) string {
	if code == 0 {
		return "unknown"
	}
	if l, ok := (*m.codes.Load())[code]; ok {
		return l
	}
	return "other"
}

// Registry is the private registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetSources sets what scrapes read; safe to call at any time.
func (m *Metrics) SetSources(s Sources) { m.sources.Store(&s) }

// Request implements twilio.Observer.
func (m *Metrics) Request(statusCode int, d time.Duration) {
	code := "error"
	if statusCode > 0 {
		code = strconv.Itoa(statusCode)
	}
	m.requests.WithLabelValues(code).Inc()
	m.reqDuration.Observe(d.Seconds())
	if statusCode == 429 {
		m.rateLimited.Inc()
	}
}

// Retry implements twilio.Observer.
func (m *Metrics) Retry(reason string) { m.retries.WithLabelValues(reason).Inc() }

// Listing implements twilio.Observer.
func (m *Metrics) Listing(pages int) { m.pages.Observe(float64(pages)) }

// PollDone implements poller.Observer.
func (m *Metrics) PollDone(result string, wait, took time.Duration) {
	m.polls.WithLabelValues(result).Inc()
	if result == "ok" || result == "error" {
		m.pollDuration.Observe(took.Seconds())
		m.pollWait.Observe(wait.Seconds())
	}
}

// PollSkipped implements poller.Observer.
func (m *Metrics) PollSkipped() { m.skipped.Inc() }

// EventsQueued implements poller.Observer.
func (m *Metrics) EventsQueued(kind event.Kind, n int) {
	m.events.WithLabelValues(string(kind)).Add(float64(n))
}

// FailedQueued implements poller.Observer.
func (m *Metrics) FailedQueued(serviceSID string, code int) {
	m.failed.WithLabelValues(serviceSID, m.ErrorCodeLabel(code)).Inc()
}

// ReasonFetched implements poller.Observer.
func (m *Metrics) ReasonFetched(result string) { m.reasons.WithLabelValues(result).Inc() }

// Published implements notify.Observer.
func (m *Metrics) Published(n int) { m.published.Add(float64(n)) }

// PublishError implements notify.Observer.
func (m *Metrics) PublishError() { m.publishErrs.Inc() }

// Connected implements notify.Observer.
func (m *Metrics) Connected(up bool) {
	if up {
		m.natsUp.Set(1)
	} else {
		m.natsUp.Set(0)
	}
}

var (
	descOutboxEvents = prometheus.NewDesc("monitord_outbox_events",
		"Events waiting in the outbox for NATS.", nil, nil)
	descOutboxBytes = prometheus.NewDesc("monitord_outbox_bytes",
		"Bytes of events waiting in the outbox.", nil, nil)
	descOutboxAge = prometheus.NewDesc("monitord_outbox_oldest_age_seconds",
		"Age of the oldest event in the outbox (0 when empty).", nil, nil)
	descTargets = prometheus.NewDesc("monitord_targets",
		"Targets by health (unknown: not polled since start).", []string{"health"}, nil)
	descLastCycle = prometheus.NewDesc("monitord_last_complete_cycle_timestamp_seconds",
		"When every target had last completed a poll.", nil, nil)
	descLastTick = prometheus.NewDesc("monitord_scheduler_last_tick_timestamp_seconds",
		"When the scheduler loop last ticked.", nil, nil)
)

// sourcesCollector reads Sources at scrape time.
type sourcesCollector struct{ m *Metrics }

func (c sourcesCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOutboxEvents, descOutboxBytes, descOutboxAge,
		descTargets, descLastCycle, descLastTick} {
		ch <- d
	}
}

func (c sourcesCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.sources.Load()
	if s == nil {
		return
	}
	if s.Outbox != nil {
		if n, b, oldest, err := s.Outbox(); err == nil {
			age := 0.0
			if n > 0 && !oldest.IsZero() {
				age = time.Since(oldest).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(descOutboxEvents, prometheus.GaugeValue, float64(n))
			ch <- prometheus.MustNewConstMetric(descOutboxBytes, prometheus.GaugeValue, float64(b))
			ch <- prometheus.MustNewConstMetric(descOutboxAge, prometheus.GaugeValue, age)
		}
	}
	if s.Targets != nil {
		for h, n := range s.Targets() {
			ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(n), h)
		}
	}
	if s.LastCycle != nil {
		ch <- timestamp(descLastCycle, s.LastCycle())
	}
	if s.LastTick != nil {
		ch <- timestamp(descLastTick, s.LastTick())
	}
}

func timestamp(d *prometheus.Desc, t time.Time) prometheus.Metric {
	v := 0.0
	if !t.IsZero() {
		v = float64(t.UnixNano()) / 1e9
	}
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
}
