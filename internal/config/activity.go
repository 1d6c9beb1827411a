package config

import "time"

// Poll modes (poll.mode).
const (
	// PollModeSchedule polls every target on its cron schedule.
	PollModeSchedule = "schedule"
	// PollModeActivity polls where the activity is: a planner per Service
	// reads the sessions list as an index and spends the Service's budget
	// on new activity, then on hot targets, then on cold ones (issue 13).
	PollModeActivity = "activity"
)

// Limit scopes (twilio.limits.scope).
const (
	// LimitScopeService gives each Proxy Service one token bucket for all
	// its endpoints: the conservative reading of Twilio's limit.
	LimitScopeService = "service"
	// LimitScopeEndpoint gives each endpoint of a Service (the sessions
	// list, the participants list, the interactions lists, …) its own
	// bucket, as Twilio documents the limit.
	LimitScopeEndpoint = "endpoint"
)

// Activity configures poll.mode: activity (internal/activity's Planner),
// one planner per Service. Zero values are not defaults: Default sets them.
type Activity struct {
	// IndexEvery is how often a Service's sessions list (the activity
	// index, and discovery's session list) is read.
	IndexEvery time.Duration `koanf:"index_every"`
	// HotMin and HotMax bound the back-off of a target with a leg still
	// in flight: HotMin after a change, doubling up to HotMax.
	HotMin time.Duration `koanf:"hot_min"`
	HotMax time.Duration `koanf:"hot_max"`
	// ColdEvery is the safety interval of every other target.
	ColdEvery time.Duration `koanf:"cold_every"`
	// Settle is how long after its last update a leg in flight keeps its
	// target hot.
	Settle time.Duration `koanf:"settle"`
}

// DefaultActivity returns the planner's defaults (internal/activity's,
// measured by BenchmarkActivity; docs/performance.md).
func DefaultActivity() Activity {
	return Activity{
		IndexEvery: 30 * time.Second,
		HotMin:     10 * time.Second,
		HotMax:     5 * time.Minute,
		ColdEvery:  30 * time.Minute,
		Settle:     15 * time.Minute,
	}
}

// validate checks poll.mode and, in activity mode, poll.activity.
func (a *Activity) validate(p *Problems, mode string) {
	oneOf(p, "poll.mode", mode, PollModeSchedule, PollModeActivity)
	if mode != PollModeActivity {
		return // the keys are not used
	}
	// At least a second: the planner's deadlines are wall-clock timers,
	// and an index read more often than that would spend the budget.
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"poll.activity.index_every", a.IndexEvery}, {"poll.activity.hot_min", a.HotMin},
		{"poll.activity.hot_max", a.HotMax}, {"poll.activity.cold_every", a.ColdEvery},
		{"poll.activity.settle", a.Settle}} {
		if d.v < time.Second {
			p.addf("%s: must be at least 1s, got %s", d.key, d.v)
		}
	}
	if a.HotMin >= time.Second && a.HotMax >= time.Second && a.HotMax < a.HotMin {
		p.addf("poll.activity.hot_max: %s is shorter than hot_min %s", a.HotMax, a.HotMin)
	}
	if a.ColdEvery >= time.Second && a.HotMax >= time.Second && a.ColdEvery < a.HotMax {
		p.addf("poll.activity.cold_every: %s is shorter than hot_max %s: a quiet target would be polled more often than a busy one", a.ColdEvery, a.HotMax)
	}
}
