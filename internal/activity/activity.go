// Package activity plans the polls of one Proxy Service by where its
// activity is (issue 13), instead of polling every target in turn.
//
// Twilio allows about 30 requests/s per endpoint per Service; monitord
// spends 27. Polling 20,000 participant targets in turn takes 740 s a
// round, yet at any moment most sessions are quiet. The Planner spends the
// same budget in this order:
//
//  1. the index: the Service's sessions list (100 sessions a page), every
//     Config.IndexEvery. A session that is new, or whose
//     date_last_interaction moved, has had a new interaction: its targets
//     are due now.
//  2. new activity: those targets, first come first served.
//  3. hot targets: a leg of the last listing still in flight (not final by
//     the diff's rules, or "sent" and waiting for its carrier receipt),
//     updated within Config.Settle. Polled on a back-off from the last
//     change seen: HotMin, 2×, 4×, … up to HotMax. A status change of an existing
//     interaction does not move date_last_interaction (Twilio does not
//     document that it does), so the index cannot say when a hot target
//     changes: the back-off is what finds it.
//  4. cold targets: everything else, at Config.ColdEvery, a safety sweep for
//     late receipts and for what the index missed. When the budget is short
//     the sweep stretches: cold targets wait, and their lag is reported.
//
// The Planner has no goroutine and no clock of its own: the caller asks
// Next(now) what to do and reports back, so a simulated clock drives it in
// a benchmark exactly as the wall clock will in the daemon (poll.mode:
// activity, cmd/monitord's activity wiring).
package activity

import (
	"errors"
	"fmt"
	"time"

	"github.com/monitord/monitord/internal/diff"
)

// Config configures a Planner. Zero values take the defaults noted.
type Config struct {
	// Rate is the Service's request budget per second (default 27, 90 % of
	// Twilio's 30/s); Burst the bucket's depth (default 10). In any 5 s
	// window the Service then sees at most Burst + 5×Rate = 145 requests,
	// under Twilio's 150.
	Rate  float64
	Burst int
	// IndexEvery is how often the sessions list is read (default 30s: at
	// 15s the index costs a quarter of the budget, and BenchmarkActivity
	// detects failures later, not sooner; docs/performance.md).
	IndexEvery time.Duration
	// HotMin and HotMax bound the back-off of a hot target (defaults 10s
	// and 5m): HotMin after a change, doubling at every unchanged poll.
	HotMin, HotMax time.Duration
	// ColdEvery is the safety interval of a cold target (default 30m).
	ColdEvery time.Duration
	// Settle is how long after the interaction's date_updated a leg still
	// counts as in flight (default 15m): a leg not final by the diff's
	// rules, or an outbound leg at "sent". The diff calls "sent" final,
	// because many carriers never send a receipt; but an undelivered
	// receipt usually follows within seconds to minutes, and waiting for
	// the cold sweep would page on-call half an hour late. A leg that has
	// not moved for Settle leaves the target cold: stuck messages are not
	// polled at HotMax for ever.
	Settle time.Duration
	// Rules decide which statuses are final (diff.Rules.Terminal).
	Rules diff.Rules
	// Budget, when set, is the Service's bucket shared with whatever makes
	// the requests (the daemon's Twilio client takes its tokens from it);
	// nil: a new one of Rate and Burst.
	Budget *Budget
}

// Defaults of Config.
const (
	DefaultRate       = 27.0
	DefaultBurst      = 10
	DefaultIndexEvery = 30 * time.Second
	DefaultHotMin     = 10 * time.Second
	DefaultHotMax     = 5 * time.Minute
	DefaultColdEvery  = 30 * time.Minute
	DefaultSettle     = 15 * time.Minute
)

func (c *Config) setDefaults() {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.IndexEvery == 0 {
		c.IndexEvery = DefaultIndexEvery
	}
	if c.HotMin == 0 {
		c.HotMin = DefaultHotMin
	}
	if c.HotMax == 0 {
		c.HotMax = DefaultHotMax
	}
	if c.ColdEvery == 0 {
		c.ColdEvery = DefaultColdEvery
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
}

// Validate names every bad field. New checks the config with its defaults
// applied, so a HotMin above the default HotMax is caught too.
func (c Config) Validate() error {
	var errs []error
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate: %v is negative", c.Rate))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst: %d is negative", c.Burst))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"index_every", c.IndexEvery}, {"hot_min", c.HotMin}, {"hot_max", c.HotMax},
		{"cold_every", c.ColdEvery}, {"settle", c.Settle}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", d.name, d.v))
		}
	}
	if c.HotMin > 0 && c.HotMax > 0 && c.HotMax < c.HotMin {
		errs = append(errs, fmt.Errorf("hot_max: %v is below hot_min %v", c.HotMax, c.HotMin))
	}
	return errors.Join(errs...)
}
