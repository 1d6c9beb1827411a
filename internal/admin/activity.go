package admin

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/monitord/monitord/internal/activity"
)

// What the activity planners (poll.mode activity) could and could not
// keep, per Service and class (index, new, hot, cold), read from
// activity.Stats at scrape time. Labels are the Services of the config
// and four classes: bounded.
var (
	descActivityPolls = prometheus.NewDesc("monitord_activity_actions_total",
		"Actions the activity planner started, by Service and class (index: sessions list reads; new, hot, cold: polls).",
		[]string{"service", "class"}, nil)
	descActivitySkipped = prometheus.NewDesc("monitord_activity_skipped_polls_total",
		"Whole intervals the activity planner could not keep: an action started n intervals after it was due skipped n (new activity has no interval and never skips).",
		[]string{"service", "class"}, nil)
	descActivityLag = prometheus.NewDesc("monitord_activity_lag_seconds",
		"Wait from when an action was due to its start, by Service and class: _sum / _count is the mean lag.",
		[]string{"service", "class"}, nil)
	descActivityLagMax = prometheus.NewDesc("monitord_activity_lag_max_seconds",
		"Longest wait from due to start since the daemon started, by Service and class.",
		[]string{"service", "class"}, nil)
	descActivityTargets = prometheus.NewDesc("monitord_activity_targets",
		"Targets by class now (hot: a leg in flight, polled on a back-off; cold: the safety interval).",
		[]string{"service", "class"}, nil)
)

// SetActivity exports the planners' accounts that stats returns (by
// Service SID) at every scrape. Call it once, in poll.mode activity only.
func (m *Metrics) SetActivity(stats func() map[string]activity.Stats) error {
	if err := m.reg.Register(activityCollector{stats}); err != nil {
		return fmt.Errorf("activity metrics: %w", err)
	}
	return nil
}

type activityCollector struct {
	stats func() map[string]activity.Stats
}

func (c activityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActivityPolls, descActivitySkipped, descActivityLag,
		descActivityLagMax, descActivityTargets} {
		ch <- d
	}
}

func (c activityCollector) Collect(ch chan<- prometheus.Metric) {
	for svc, st := range c.stats() {
		for _, k := range []struct {
			class string
			s     activity.ClassStats
		}{{"index", st.Index}, {activity.ClassNew.String(), st.New}, {activity.ClassHot.String(), st.Hot},
			{activity.ClassCold.String(), st.Cold}} {
			ch <- prometheus.MustNewConstMetric(descActivityPolls, prometheus.CounterValue, float64(k.s.Polls), svc, k.class)
			ch <- prometheus.MustNewConstMetric(descActivitySkipped, prometheus.CounterValue, float64(k.s.Skipped), svc, k.class)
			ch <- prometheus.MustNewConstSummary(descActivityLag, uint64(k.s.Polls), k.s.LagSum.Seconds(), nil, svc, k.class)
			ch <- prometheus.MustNewConstMetric(descActivityLagMax, prometheus.GaugeValue, k.s.LagMax.Seconds(), svc, k.class)
		}
		ch <- prometheus.MustNewConstMetric(descActivityTargets, prometheus.GaugeValue, float64(st.HotTargets), svc, activity.ClassHot.String())
		ch <- prometheus.MustNewConstMetric(descActivityTargets, prometheus.GaugeValue, float64(st.ColdTargets), svc, activity.ClassCold.String())
	}
}
