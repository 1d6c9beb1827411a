package activity_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/activity"
	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

// benchSessions scales BenchmarkActivity's world; the budget scales with
// it (27/s per 10,000 sessions), so the pressure stays the same.
var (
	benchSessions = flag.Int("activity.sessions", 10000, "sessions of BenchmarkActivity's Service")
	benchIndex    = flag.Duration("activity.index", activity.DefaultIndexEvery, "BenchmarkActivity's index interval")
	// The timeline, for the real-time check at reduced scale
	// (docs/performance.md), which cannot wait 37 + 120 + 30 minutes:
	// warm-up (0: three sweeps at the budget), measured window, how long
	// the planner goes on after it, and whether a final sweep follows.
	benchWarmUp  = flag.Duration("activity.warmup", 0, "BenchmarkActivity's warm-up (0: three sweeps of every target at the budget)")
	benchHorizon = flag.Duration("activity.horizon", 2*time.Hour, "BenchmarkActivity's measured window")
	benchTail    = flag.Duration("activity.tail", activity.DefaultColdEvery, "how long BenchmarkActivity's planner goes on after the window")
	benchSweep   = flag.Bool("activity.sweep", true, "BenchmarkActivity ends with a sweep of every target (false: missed = not seen by the end of the tail)")
)

// simClock is the benchmark's one clock: the simulator's world, the
// budget, the planner and the events' times all read it, and only the
// budget (a request waiting for its token) and an idle planner move it.
type simClock struct{ now time.Time }

func (c *simClock) Now() time.Time { return c.now }

// paced takes a token of the Service's budget for every request, moving
// the simulated clock to when the token is there: the client's own bucket
// runs on the wall clock, so here it is set wide open and this stands in
// for it, page by page.
type paced struct {
	rt     http.RoundTripper
	budget *activity.Budget
	clock  *simClock
}

func (p *paced) RoundTrip(req *http.Request) (*http.Response, error) {
	p.clock.now = p.clock.now.Add(p.budget.Take(p.clock.now))
	return p.rt.RoundTrip(req)
}

// legKey names a failure of one leg of one interaction, in the world and
// in the events alike.
func legKey(sid, leg string) string { return strings.ToLower(sid) + "/" + leg }

// run is one sub-benchmark's world and machinery: the real client over
// the simulator's in-process transport, the real poller's worker with diff
// and a memory store, on the simulated clock.
type run struct {
	clock    *simClock
	sim      *proxysim.Sim
	client   *twilio.Client
	transp   *paced
	poller   *poller.Poller
	targets  []proxy.Target
	service  string
	detected map[string]time.Time // legKey → first failed event
}

func newRun(b *testing.B, epoch time.Time, rate float64) *run {
	start := epoch
	r := &run{clock: &simClock{now: start}, detected: map[string]time.Time{}}
	r.sim = proxysim.New(proxysim.Options{Seed: 13, Sessions: *benchSessions, Participants: 2,
		FailureRate: 0.05, StuckRate: 0.01, Activity: &proxysim.Activity{}, Clock: r.clock.Now, Epoch: epoch})
	r.transp = &paced{rt: r.sim.Transport(), clock: r.clock, budget: activity.NewBudget(rate, activity.DefaultBurst, start)}
	cr := r.sim.Credentials()
	c, err := twilio.New(twilio.Config{BaseURL: "https://proxy.twilio.test", AccountSID: cr.AccountSID,
		APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret, HTTPClient: &http.Client{Transport: r.transp},
		RequestsPerSecond: 1e9, Burst: 1 << 20,
		// A 429 is not retried: the client's back-off sleeps on the wall
		// clock, and a 429 here is a failure of the plan to be counted.
		MaxAttempts: 1})
	if err != nil {
		b.Fatal(err)
	}
	r.client = c
	b.Cleanup(c.Close)
	store, err := state.NewMemory(state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r.poller, err = poller.New(poller.Config{
		Rules: diff.DefaultRules(), PublishKinds: []event.Kind{event.Failed}, Store: store, Clock: r.clock.Now,
		Render: func(e event.Event) (event.Message, error) {
			k := legKey(e.InteractionSID, string(e.Leg))
			if _, ok := r.detected[k]; !ok {
				r.detected[k] = e.Time
			}
			return event.Render(e, event.RenderOptions{})
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, st := range r.sim.Targets() {
		r.targets = append(r.targets, proxy.Target{Source: proxy.SourceParticipant, ServiceSID: st.ServiceSID,
			SessionSID: st.SessionSID, ParticipantSID: st.ParticipantSID})
	}
	r.service = r.sim.Services()[0]
	r.setListers(c)
	return r
}

func (r *run) setListers(l poller.Lister) {
	specs := make([]poller.TargetSpec, len(r.targets))
	for i, t := range r.targets {
		specs[i] = poller.TargetSpec{Target: t, Lister: l}
	}
	if err := r.poller.SetTargets(specs); err != nil {
		panic(err)
	}
}

func (r *run) poll(t proxy.Target) error {
	res, err := r.poller.Poll(context.Background(), t, poller.Tick{})
	if err == nil && res != poller.ResultOK {
		err = fmt.Errorf("poll %s: %s", t, res)
	}
	return err
}

// sweep polls every target once, in turn, at the budget.
func (r *run) sweep() {
	for _, t := range r.targets {
		_ = r.poll(t) // a failed poll is a missed chance; the figures count what it costs
	}
}

// figures reports what the world's failures of [from, end) got.
func (r *run) figures(b *testing.B, from, end time.Time, requests int64) {
	var early, late []float64
	missed := 0
	for _, f := range r.sim.Failures(from, end.Add(-time.Second)) {
		at, ok := r.detected[legKey(f.InteractionSID, string(f.Leg))]
		if !ok {
			missed++
			if testing.Verbose() {
				b.Logf("missed: %+v", f)
			}
			continue
		}
		d := max(at.Sub(f.Time).Seconds(), 0)
		if testing.Verbose() && d > 60 && f.Time.Sub(f.Created) <= 15*time.Minute {
			b.Logf("slow: %.0f s: %s %s→%s at %v, created %v before", d, f.Target, f.From, f.To,
				f.Time.Sub(from), f.Time.Sub(f.Created))
		}
		if f.Time.Sub(f.Created) <= 15*time.Minute {
			early = append(early, d)
		} else {
			late = append(late, d)
		}
	}
	slices.Sort(early)
	slices.Sort(late)
	q := func(xs []float64, p float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		return xs[min(len(xs)-1, int(math.Ceil(p*float64(len(xs))))-1)]
	}
	st := r.sim.Stats()
	b.ReportMetric(q(early, 0.99), "p99-detect-s")
	b.ReportMetric(q(early, 0.5), "p50-detect-s")
	b.ReportMetric(q(early, 1), "max-detect-s")
	b.ReportMetric(q(late, 1), "late-max-detect-s")
	b.ReportMetric(float64(requests)/end.Sub(from).Seconds(), "req/s")
	b.ReportMetric(float64(missed), "missed")
	b.ReportMetric(float64(len(early)+len(late)+missed), "failures")
	b.ReportMetric(float64(st.TooManyRequests()), "429s")
}

// BenchmarkActivity is issue 13's measure: 2 simulated hours of a
// 10,000-session Service (20,000 participant targets) under 27
// requests/s, the same world (seed 13, docs/performance.md "Activity
// world") for `uniform`, every target in turn at the budget (today's fixed
// schedule at its best), and `activity`, the Planner. Both run the real
// client through the simulator's in-process transport (Twilio's
// per-endpoint limit on), the poller's worker, diff and a memory store, on
// one simulated clock.
//
// Both start at the world's epoch with every target unknown and get
// warmUp to baseline them (uniform sweeps; the planner's first sweep
// shares the budget with the index and new activity); the 2 measured hours
// follow; then each mode goes on as it does (uniform a round, the planner
// a cold interval) and a final sweep at the budget finds what is left: a
// failure of the 2 hours with no failed event by then is missed. Detection latency runs from the
// failure in the world to the event's time; p99 and max are over failures
// within 15 minutes of their message's creation, late-max over the later
// ones.
//
//	go test ./internal/activity/ -run '^$' -bench BenchmarkActivity -benchtime 1x
//
// -args -activity.sessions=N scales the world, and the budget with it;
// -activity.warmup, -activity.horizon, -activity.tail and -activity.sweep
// change the timeline (the real-time check at reduced scale uses them).
func BenchmarkActivity(b *testing.B) {
	horizon := *benchHorizon
	n := *benchSessions
	rate := activity.DefaultRate * float64(n) / 10000
	epoch := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Three sweeps of the 2n targets at the whole budget, 37 minutes: the
	// planner's first sweep gets what the index and new activity leave.
	warmUp := (3 * time.Duration(float64(2*n)/rate*float64(time.Second))).Round(time.Minute)
	if *benchWarmUp > 0 {
		warmUp = *benchWarmUp
	}
	from := epoch.Add(warmUp)
	end := from.Add(horizon)

	b.Run("uniform", func(b *testing.B) {
		for b.Loop() {
			r := newRun(b, epoch, rate)
			i := 0
			for ; r.clock.now.Before(from); i++ {
				_ = r.poll(r.targets[i%len(r.targets)])
			}
			b0 := r.transp.budget.Spent()
			for ; r.clock.now.Before(end); i++ {
				_ = r.poll(r.targets[i%len(r.targets)])
			}
			used := r.transp.budget.Spent() - b0
			// The final sweep goes on in turn: starting over from the
			// first target would leave the last ones two rounds apart.
			for range r.targets {
				_ = r.poll(r.targets[i%len(r.targets)])
				i++
			}
			r.figures(b, from, end, used)
		}
	})
	b.Run("activity", func(b *testing.B) {
		for b.Loop() {
			r := newRun(b, epoch, rate)
			pl, err := activity.New(activity.Config{Rate: rate, IndexEvery: *benchIndex, Rules: diff.DefaultRules()}, r.targets, epoch)
			if err != nil {
				b.Fatal(err)
			}
			r.setListers(pl.Lister(r.client, r.clock.Now))
			r.transp.budget = pl.Budget()
			ctx := context.Background()
			step := func() {
				a, wait := pl.Next(r.clock.now)
				if wait > 0 {
					r.clock.now = r.clock.now.Add(wait)
					return
				}
				var err error
				switch a.Kind {
				case activity.KindIndex:
					var ss []proxy.Session
					if ss, err = r.client.ListSessions(ctx, r.service); err == nil {
						pl.Indexed(ss, r.clock.now)
					}
				case activity.KindPoll:
					err = r.poll(a.Target)
				}
				pl.Done(a, r.clock.now, err)
			}
			for r.clock.now.Before(from) {
				step()
			}
			warm := pl.Stats()
			pl.ResetStats()
			b0 := pl.Budget().Spent()
			for r.clock.now.Before(end) {
				step()
			}
			used := pl.Budget().Spent() - b0
			st := pl.Stats()
			// The planner goes on for a cold interval, as uniform goes on
			// for a round: a failure late in the 2 hours gets its usual
			// chance, then a sweep in target order finds what is left.
			for r.clock.now.Before(end.Add(*benchTail)) {
				step()
			}
			if *benchSweep {
				r.sweep()
			}
			r.figures(b, from, end, used)
			b.ReportMetric(float64(warm.Cold.Polls), "warm-cold-polls")
			for _, c := range []struct {
				name string
				s    activity.ClassStats
			}{{"index", st.Index}, {"new", st.New}, {"hot", st.Hot}, {"cold", st.Cold}} {
				b.ReportMetric(float64(c.s.Polls), c.name+"-polls")
				b.ReportMetric(c.s.LagMax.Seconds(), c.name+"-lagmax-s")
				b.ReportMetric(float64(c.s.Skipped), c.name+"-skipped")
			}
		}
	})
}
