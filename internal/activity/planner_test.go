package activity_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/activity"
	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const svc = "KS00000000000000000000000000000000"

func session(n int) string { return "KC" + strings.Repeat("0", 31) + string(rune('0'+n)) }

func target(ses, part int) proxy.Target {
	return proxy.Target{Source: proxy.SourceParticipant, ServiceSID: svc, SessionSID: session(ses),
		ParticipantSID: "KP" + strings.Repeat("0", 31) + string(rune('0'+part))}
}

// listing is one interaction with the outbound status given, updated at.
func listing(status string, at time.Time) []proxy.Interaction {
	return []proxy.Interaction{{SID: "KI" + strings.Repeat("0", 32), Type: "message",
		InboundResourceSID: "SM" + strings.Repeat("1", 32), InboundResourceStatus: "delivered",
		OutboundResourceSID: "SM" + strings.Repeat("2", 32), OutboundResourceStatus: status,
		DateCreated: at, DateUpdated: at}}
}

// fast is a budget that never waits in these tests: they test the order
// and the back-off, and TestBudget the budget.
func fast(c activity.Config) activity.Config {
	c.Rate, c.Burst = 1e6, 1000
	c.Rules = diff.DefaultRules()
	return c
}

func newPlanner(t *testing.T, c activity.Config, targets ...proxy.Target) *activity.Planner {
	t.Helper()
	p, err := activity.New(c, targets, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// next asks p at now and fails unless it says to do something.
func next(t *testing.T, p *activity.Planner, now time.Time) activity.Action {
	t.Helper()
	a, wait := p.Next(now)
	if wait > 0 {
		t.Fatalf("at %v: wait %v, want an action", now.Sub(t0), wait)
	}
	return a
}

// idle fails unless p has nothing to do at now, and returns the wait.
func idle(t *testing.T, p *activity.Planner, now time.Time) time.Duration {
	t.Helper()
	a, wait := p.Next(now)
	if wait <= 0 {
		t.Fatalf("at %v: action %+v, want a wait", now.Sub(t0), a)
	}
	return wait
}

func describe(a activity.Action) string {
	if a.Kind == activity.KindIndex {
		return "index"
	}
	return a.Class.String() + " " + a.Target.ParticipantSID[33:] + "@" + a.Target.SessionSID[33:]
}

// index does the index action a at now with the sessions given.
func index(t *testing.T, p *activity.Planner, a activity.Action, now time.Time, ss ...proxy.Session) []string {
	t.Helper()
	if a.Kind != activity.KindIndex {
		t.Fatalf("action %s, want index", describe(a))
	}
	unknown := p.Indexed(ss, now)
	p.Done(a, now, nil)
	return unknown
}

// poll does the poll action a at now, the target listing l.
func poll(t *testing.T, p *activity.Planner, a activity.Action, now time.Time, l []proxy.Interaction) {
	t.Helper()
	if a.Kind != activity.KindPoll {
		t.Fatalf("action %s, want a poll", describe(a))
	}
	p.Observe(a.Target, l, now)
	p.Done(a, now, nil)
}

func sessionAt(n int, last time.Time) proxy.Session {
	return proxy.Session{SID: session(n), ServiceSID: svc, Status: "in-progress", DateLastInteraction: last}
}

// TestOrder: the budget goes to the index, then new activity, then hot
// targets that are due, then cold ones that are due, and to nothing early.
func TestOrder(t *testing.T) {
	hot, coldB, coldC, moved := target(1, 1), target(2, 1), target(2, 2), target(3, 1)
	p := newPlanner(t, fast(activity.Config{}), hot, coldB, coldC, moved)
	sessions := []proxy.Session{sessionAt(1, t0), sessionAt(2, t0), sessionAt(3, t0)}

	// At the start: the index (its baseline), then every unknown target,
	// cold and due now, in the order given.
	if u := index(t, p, next(t, p, t0), t0, sessions...); len(u) != 0 {
		t.Errorf("baseline index: unknown sessions %v, want none", u)
	}
	var got []string
	for _, l := range [][]proxy.Interaction{listing("queued", t0), listing("delivered", t0),
		listing("delivered", t0), listing("delivered", t0)} {
		a := next(t, p, t0)
		got = append(got, describe(a))
		poll(t, p, a, t0, l)
	}
	if want := "cold 1@1,cold 1@2,cold 2@2,cold 1@3"; strings.Join(got, ",") != want {
		t.Errorf("first sweep: %s, want %s", strings.Join(got, ","), want)
	}
	if w := idle(t, p, t0); w != activity.DefaultHotMin {
		t.Errorf("after the sweep: wait %v, want the hot target's %v", w, activity.DefaultHotMin)
	}

	// Half an hour on, everything is due at once; session 3 moved.
	now := t0.Add(activity.DefaultColdEvery)
	got = got[:0]
	for range 5 {
		a := next(t, p, now)
		got = append(got, describe(a))
		if a.Kind == activity.KindIndex {
			index(t, p, a, now, sessionAt(1, t0), sessionAt(2, t0), sessionAt(3, now.Add(-time.Second)))
			continue
		}
		poll(t, p, a, now, listing("delivered", t0))
	}
	if want := "index,new 1@3,hot 1@1,cold 1@2,cold 2@2"; strings.Join(got, ",") != want {
		t.Errorf("all due: %s, want %s", strings.Join(got, ","), want)
	}
	if w := idle(t, p, now); w != activity.DefaultIndexEvery {
		t.Errorf("all served: wait %v, want the next index in %v", w, activity.DefaultIndexEvery)
	}
	st := p.Stats()
	if st.New.Polls != 1 || st.Hot.Polls != 1 || st.Cold.Polls != 6 || st.Index.Polls != 2 || st.Moved != 1 {
		t.Errorf("stats %+v", st)
	}
	// The hot target was due 10 s after the sweep: late by 30 min less
	// 10 s, which skipped as many 10 s intervals.
	if lag := activity.DefaultColdEvery - activity.DefaultHotMin; st.Hot.LagMax != lag ||
		st.Hot.Skipped != int64(lag/activity.DefaultHotMin) {
		t.Errorf("hot lag %v skipped %d, want %v and %d", st.Hot.LagMax, st.Hot.Skipped, lag, lag/activity.DefaultHotMin)
	}
	if st.HotTargets != 0 || st.ColdTargets != 4 {
		t.Errorf("%d hot, %d cold, want 0 and 4", st.HotTargets, st.ColdTargets)
	}
}

// TestHotBackoff: a target with a leg in flight is polled HotMin after a
// change, then twice as long after each unchanged poll up to HotMax; a
// change starts over; all legs final makes it cold.
func TestHotBackoff(t *testing.T) {
	tg := target(1, 1)
	p := newPlanner(t, fast(activity.Config{HotMin: 10 * time.Second, HotMax: 60 * time.Second}), tg)
	now := t0
	index(t, p, next(t, p, now), now, sessionAt(1, t0))
	poll(t, p, next(t, p, now), now, listing("queued", now))

	// Drive by hand: the index is due at 15 s, 30 s, …; the test only
	// cares when the target's polls come.
	var polls []time.Duration
	statuses := map[int]string{4: "sending", 8: "delivered"} // changes before those polls
	status := "queued"
	for len(polls) < 8 {
		a, wait := p.Next(now)
		if wait > 0 {
			now = now.Add(wait)
			continue
		}
		if a.Kind == activity.KindIndex {
			index(t, p, a, now, sessionAt(1, t0))
			continue
		}
		polls = append(polls, now.Sub(t0))
		if s, ok := statuses[len(polls)]; ok {
			status = s
		}
		poll(t, p, a, now, listing(status, now.Add(-time.Second)))
	}
	// 10, +20, +40, +60 (cap), then sending: +10, +20, +40, then delivered.
	want := []time.Duration{10, 30, 70, 130, 140, 160, 200, 260}
	for i := range want {
		want[i] *= time.Second
	}
	if len(polls) != len(want) {
		t.Fatalf("polls at %v, want %v", polls, want)
	}
	for i := range want {
		if polls[i] != want[i] {
			t.Fatalf("polls at %v, want %v", polls, want)
		}
	}
	if st := p.Stats(); st.HotTargets != 0 || st.ColdTargets != 1 {
		t.Errorf("after delivered: %d hot, %d cold, want cold", st.HotTargets, st.ColdTargets)
	}
}

// TestFailedPollRetries: a failed poll keeps the target's class and is
// tried again HotMin later (HotMax when cold); a failed index HotMin later.
func TestFailedPollRetries(t *testing.T) {
	hot, cold := target(1, 1), target(2, 1)
	p := newPlanner(t, fast(activity.Config{IndexEvery: time.Hour}), hot, cold)
	index(t, p, next(t, p, t0), t0, sessionAt(1, t0), sessionAt(2, t0))
	poll(t, p, next(t, p, t0), t0, listing("queued", t0))
	poll(t, p, next(t, p, t0), t0, listing("delivered", t0))

	now := t0.Add(activity.DefaultHotMin)
	a := next(t, p, now)
	if a.Target != hot {
		t.Fatalf("action %s, want the hot target", describe(a))
	}
	p.Done(a, now, errors.New("503"))
	if w := idle(t, p, now); w != activity.DefaultHotMin {
		t.Errorf("failed hot poll: next in %v, want %v", w, activity.DefaultHotMin)
	}
	now = t0.Add(activity.DefaultColdEvery)
	for {
		a = next(t, p, now)
		if a.Target == cold {
			break
		}
		p.Observe(a.Target, listing("queued", now), now)
		p.Done(a, now, nil)
	}
	p.Done(a, now, errors.New("503"))
	failedAt := now
	// Serve everything else until the budget has nothing to do; the cold
	// target must not come back before HotMax.
	for now = failedAt; now.Before(failedAt.Add(activity.DefaultHotMax)); {
		a, wait := p.Next(now)
		if wait > 0 {
			now = now.Add(wait)
			continue
		}
		if a.Target == cold {
			t.Fatalf("failed cold poll tried again %v later, want %v", now.Sub(failedAt), activity.DefaultHotMax)
		}
		if a.Kind == activity.KindIndex {
			index(t, p, a, now, sessionAt(1, t0), sessionAt(2, t0))
			continue
		}
		poll(t, p, a, now, listing("delivered", now))
	}
	if a := next(t, p, now); a.Target != cold {
		t.Errorf("at HotMax after its failure: %s, want the cold target", describe(a))
	}
}

// TestIndexed: the first list is a baseline; a moved or new session makes
// its targets new; a session without targets is returned for discovery;
// a target in flight when its session moves is polled again after.
func TestIndexed(t *testing.T) {
	a1, b1 := target(1, 1), target(2, 1)
	p := newPlanner(t, fast(activity.Config{}), a1, b1)
	if u := index(t, p, next(t, p, t0), t0, sessionAt(1, t0), sessionAt(2, t0)); u != nil {
		t.Errorf("baseline: unknown %v", u)
	}
	first := next(t, p, t0) // a1, in flight
	if first.Target != a1 {
		t.Fatalf("first poll %s, want a1", describe(first))
	}
	unknown := p.Indexed([]proxy.Session{sessionAt(1, t0.Add(time.Second)), sessionAt(2, t0), sessionAt(4, time.Time{})}, t0)
	if len(unknown) != 1 || unknown[0] != session(4) {
		t.Errorf("unknown %v, want [%s]", unknown, session(4))
	}
	poll(t, p, first, t0, listing("delivered", t0))
	a := next(t, p, t0)
	if a.Target != a1 || a.Class != activity.ClassNew {
		t.Errorf("after its session moved in flight: %s, want new 1@1", describe(a))
	}
	poll(t, p, a, t0, listing("delivered", t0))
	a = next(t, p, t0)
	if a.Target != b1 || a.Class != activity.ClassCold {
		t.Errorf("then %s, want cold 1@2 (its session did not move)", describe(a))
	}
	if st := p.Stats(); st.Moved != 2 {
		t.Errorf("moved %d, want 2 (a session moved, a new one)", st.Moved)
	}
}

// TestBudget: requests paced by the budget average its rate and never put
// more than Burst + 5 × Rate in any 5 s window, Twilio's; Next waits for a
// token.
func TestBudget(t *testing.T) {
	const rate, burst = 27.0, 10
	b := activity.NewBudget(rate, burst, t0)
	now := t0
	var at []time.Time
	for range 2000 {
		now = now.Add(b.Take(now))
		at = append(at, now)
	}
	for i, j := 0, 0; i < len(at); i++ {
		for at[i].Sub(at[j]) >= 5*time.Second {
			j++
		}
		if n := i - j + 1; n > burst+5*rate {
			t.Fatalf("%d requests within 5 s ending at %v", n, at[i].Sub(t0))
		}
	}
	if r := float64(len(at)-burst) / at[len(at)-1].Sub(t0).Seconds(); r > rate || r < rate*0.99 {
		t.Errorf("rate %.2f/s, want %v", r, rate)
	}
	if b.Spent() != 2000 {
		t.Errorf("spent %d", b.Spent())
	}

	p := newPlanner(t, activity.Config{Rate: rate, Burst: 1}, target(1, 1))
	p.Budget().Take(t0)
	if w := idle(t, p, t0); w < time.Second/28 || w > time.Second/26 {
		t.Errorf("empty budget: wait %v, want about 1/27 s", w)
	}
	if a := next(t, p, t0.Add(time.Second/26)); a.Kind != activity.KindIndex {
		t.Errorf("with a token: %s, want the index", describe(a))
	}
}

// TestInFlight: which listings make a target hot.
func TestInFlight(t *testing.T) {
	c := fast(activity.Config{Settle: 15 * time.Minute})
	now := t0
	apiSent := listing("delivered", now)
	apiSent[0].InboundResourceSID, apiSent[0].InboundResourceStatus = "", ""
	nullOut := listing("", now)
	inboundMoving := listing("delivered", now)
	inboundMoving[0].InboundResourceStatus = "receiving"
	for _, tc := range []struct {
		name string
		l    []proxy.Interaction
		want bool
	}{
		{"empty", nil, false},
		{"queued", listing("queued", now), true},
		{"queued long ago: stuck, not hot", listing("queued", now.Add(-16*time.Minute)), false},
		{"delivered", listing("delivered", now), false},
		{"undelivered", listing("undelivered", now), false},
		{"sent, receipt to come", listing("sent", now.Add(-time.Minute)), true},
		{"sent long ago", listing("sent", now.Add(-15*time.Minute)), false},
		{"no inbound leg", apiSent, false},
		{"null outbound status with a resource", nullOut, true},
		{"inbound leg receiving", inboundMoving, true},
		{"unknown status", listing("some-new-status", now), true},
	} {
		if got := c.InFlight(tc.l, now); got != tc.want {
			t.Errorf("%s: InFlight = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNewRejects: bad config and bad targets are named.
func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		c       activity.Config
		targets []proxy.Target
		want    string
	}{
		{activity.Config{Rate: -1}, nil, "rate: -1 is negative"},
		{activity.Config{Burst: -2}, nil, "burst: -2 is negative"},
		{activity.Config{ColdEvery: -time.Second}, nil, "cold_every: -1s is negative"},
		{activity.Config{HotMin: 10 * time.Minute}, nil, "hot_max: 5m0s is below hot_min 10m0s"},
		{activity.Config{}, []proxy.Target{target(1, 1), target(1, 1)}, "listed twice"},
		{activity.Config{}, []proxy.Target{target(1, 1), {Source: proxy.SourceParticipant,
			ServiceSID: "KS" + strings.Repeat("1", 32), SessionSID: session(1), ParticipantSID: target(1, 2).ParticipantSID}},
			"is not of Service"},
	} {
		_, err := activity.New(tc.c, tc.targets, t0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want %q", tc.c, err, tc.want)
		}
	}
}

// TestHotBackoffStaysAtCap: a target whose leg stays in flight (updated
// every time, so within Settle) through many unchanged polls is polled
// every HotMax, never sooner: HotMin doubled 40 times would overflow.
func TestHotBackoffStaysAtCap(t *testing.T) {
	tg := target(1, 1)
	p := newPlanner(t, fast(activity.Config{IndexEvery: 1000 * time.Hour}), tg)
	now := t0
	index(t, p, next(t, p, now), now, sessionAt(1, t0))
	l := listing("queued", now)
	for i := range 40 {
		a := next(t, p, now)
		// date_updated moves, so the leg stays within Settle; the
		// fingerprint ignores dates, so every poll after the first is
		// unchanged.
		l[0].DateUpdated = now
		p.Observe(a.Target, l[:1:1], now)
		p.Done(a, now, nil)
		w := idle(t, p, now)
		if i >= 6 && w != activity.DefaultHotMax {
			t.Fatalf("poll %d: next in %v, want HotMax %v", i+1, w, activity.DefaultHotMax)
		}
		now = now.Add(w)
	}
}

// TestDoneWithoutListing: a poll reported done that the planner never saw
// a listing of (polled around Lister) waits its interval again instead of
// being handed out again at once, for ever.
func TestDoneWithoutListing(t *testing.T) {
	tg := target(1, 1)
	p := newPlanner(t, fast(activity.Config{IndexEvery: 1000 * time.Hour}), tg)
	index(t, p, next(t, p, t0), t0, sessionAt(1, t0))
	a := next(t, p, t0)
	p.Done(a, t0, nil)
	if w := idle(t, p, t0); w != activity.DefaultColdEvery {
		t.Errorf("next in %v, want the cold interval %v", w, activity.DefaultColdEvery)
	}
}

// TestRepeatedFailuresBackOff: a hot target whose polls keep failing (its
// session deleted: 404 until discovery drops it) is tried again after
// HotMin, then twice that, … up to HotMax, not every HotMin; a listing
// seen again starts the count over.
func TestRepeatedFailuresBackOff(t *testing.T) {
	hot := target(1, 1)
	p := newPlanner(t, fast(activity.Config{IndexEvery: 24 * time.Hour}), hot)
	index(t, p, next(t, p, t0), t0, sessionAt(1, t0))
	poll(t, p, next(t, p, t0), t0, listing("queued", t0))
	now := t0.Add(activity.DefaultHotMin)
	var waits []time.Duration
	for range 7 {
		a := next(t, p, now)
		p.Done(a, now, errors.New("404"))
		w := idle(t, p, now)
		waits = append(waits, w)
		now = now.Add(w)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, activity.DefaultHotMax, activity.DefaultHotMax}
	if !slices.Equal(waits, want) {
		t.Errorf("retries after %v, want %v", waits, want)
	}
	poll(t, p, next(t, p, now), now, listing("queued", now))
	now = now.Add(idle(t, p, now))
	p.Done(next(t, p, now), now, errors.New("404"))
	if w := idle(t, p, now); w != activity.DefaultHotMin {
		t.Errorf("first failure after a listing: retry in %v, want %v", w, activity.DefaultHotMin)
	}
}
