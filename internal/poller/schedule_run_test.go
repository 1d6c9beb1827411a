package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// hookLister runs hook before each listing of the real client: the test's
// way to make a poll panic, block or observe its context.
type hookLister struct {
	next Lister
	hook func(ctx context.Context)
}

func (h hookLister) AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error) {
	h.hook(ctx)
	return h.next.AppendInteractions(ctx, t, dst)
}

func every1s(specs []TargetSpec) []TargetSpec {
	for i := range specs {
		specs[i].Schedule = "@every 1s"
	}
	return specs
}

// TestPanicRecoveredThenPollsAgain: with Recover inside the skip wrapper a
// panicking poll releases the target's lock, so the next activation polls.
func TestPanicRecoveredThenPollsAgain(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 10, Participants: 1}, nil)
	var calls atomic.Int32
	l := hookLister{f.client, func(context.Context) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
	}}
	if err := f.p.SetTargets(every1s(f.specs(l))); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	waitFor(t, "a panic and then a good poll", 10*time.Second, func() bool {
		return f.obs.count(ResultPanic) == 1 && f.obs.count(ResultOK) >= 1
	})
	if f.p.LastTick().IsZero() {
		t.Error("scheduler never ticked")
	}
}

// TestSlowPollSkipsNotOverlaps: activations that find the previous poll
// still running are skipped and counted; the target never runs twice at once.
func TestSlowPollSkipsNotOverlaps(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 11, Participants: 1}, nil)
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int32
	l := hookLister{f.client, func(ctx context.Context) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}}
	f.p.SetTargets(every1s(f.specs(l)))
	runPoller(t, f.p)
	waitFor(t, "two skipped activations", 10*time.Second, func() bool { return f.obs.skips() >= 2 })
	close(release)
	waitFor(t, "the slow poll to finish", 10*time.Second, func() bool { return f.obs.count(ResultOK) >= 1 })
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("%d polls of one target at once", m)
	}
}

// TestShutdownCancelsAfterGrace: a poll still in flight when the grace
// runs out is cancelled, reported as cancelled, and Run returns.
func TestShutdownCancelsAfterGrace(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 12, Participants: 1}, func(c *Config) {
		c.ShutdownGrace = 100 * time.Millisecond
	})
	started := make(chan struct{}, 1)
	l := hookLister{f.client, func(ctx context.Context) {
		started <- struct{}{}
		<-ctx.Done()
	}}
	f.p.SetTargets(every1s(f.specs(l)))
	stop := runPoller(t, f.p)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no poll started")
	}
	stop()
	if n := f.obs.count(ResultCancelled); n != 1 {
		t.Errorf("cancelled polls %d, want 1", n)
	}
	if n := f.obs.count(ResultError); n != 0 {
		t.Errorf("shutdown counted as target failure %d times", n)
	}
}

// TestSetTargetsAtRunTime adds a target to a running poller, then removes
// the first and reschedules the other.
func TestSetTargetsAtRunTime(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 13, Participants: 2}, nil)
	specs := every1s(f.specs(nil))
	if err := f.p.SetTargets(specs[:1]); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	healthy := func(n int) func() bool {
		return func() bool { return f.p.Summary().Healthy == n }
	}
	waitFor(t, "first target polled", 10*time.Second, healthy(1))
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "added target polled", 10*time.Second, healthy(2))

	// A bad set changes nothing.
	bad := append(slices.Clone(specs), specs[0])
	if err := f.p.SetTargets(bad); err == nil {
		t.Fatal("duplicate target accepted")
	}
	if n := len(f.p.Status()); n != 2 {
		t.Fatalf("bad set changed the targets: %d", n)
	}

	// Reschedule the second, remove the first.
	keep := specs[1]
	keep.Schedule = "*/2 * * * * *"
	if err := f.p.SetTargets([]TargetSpec{keep}); err != nil {
		t.Fatal(err)
	}
	keys, err := f.db.Keys()
	if err != nil {
		t.Fatal(err)
	}
	// Deleting the removed target's state is the caller's (internal/targets,
	// whose tests check it, after SetTargets has awaited the poll): the
	// poller deletes nothing.
	if len(keys) != 2 {
		t.Fatalf("state keys after removal %v, want both: the poller forgets nothing", keys)
	}
	st := f.p.Status()
	if len(st) != 1 || st[0].Schedule != "*/2 * * * * *" || st[0].Origin != OriginConfigured {
		t.Fatalf("status %+v", st)
	}
	before := f.obs.count(ResultOK)
	waitFor(t, "rescheduled target polled", 10*time.Second, func() bool { return f.obs.count(ResultOK) > before })
}

// TestNotFoundPolledLess: after a 404 makes the target failing, it is polled
// only every NotFoundEvery-th activation.
func TestNotFoundPolledLess(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 14, Participants: 1}, func(c *Config) { c.NotFoundEvery = 3 })
	f.p.SetTargets(f.specs(nil))
	f.sim.SetTargetError(f.sim.Targets()[0], 404)
	// Drive activations by hand, as the scheduler would.
	key := f.p.Status()[0].Key
	f.p.runCtx, f.p.pollCtx = context.Background(), context.Background()
	for range 9 {
		f.p.activate(Tick{Key: key})
		f.p.polls.Wait()
	}
	if got := f.obs.count(ResultError); got != 4 {
		t.Errorf("polls over 9 activations: %d, want 4 (the first, then every 3rd)", got)
	}
	if got := f.outbox(t); len(got) != 1 || got[0] != event.TargetError {
		t.Errorf("events %v, want one target_error", got)
	}
	if s := f.p.Status()[0]; s.ErrorClass != ClassNotFound {
		t.Errorf("class %q", s.ErrorClass)
	}
}

// chanPublisher is a channel-backed heartbeat Publisher.
type chanPublisher chan event.Message

func (c chanPublisher) PublishNow(_ context.Context, m event.Message) error {
	select {
	case c <- m:
	default:
	}
	return nil
}

func TestHeartbeat(t *testing.T) {
	pub := make(chanPublisher, 10)
	f := newFixture(t, proxysim.Options{Seed: 15, Participants: 1}, nil)
	hb, err := NewHeartbeat(HeartbeatConfig{Interval: 50 * time.Millisecond, Instance: "test-1", Publisher: pub,
		Render: f.p.cfg.Render, Outbox: f.db}, f.p)
	if err != nil {
		t.Fatal(err)
	}
	f.p.SetTargets(f.specs(nil))
	f.p.PollAll(context.Background())
	runPart(t, hb.Run)
	var m event.Message
	select {
	case m = <-pub:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
	}
	if m.Subject != "monitord.heartbeat.test-1" {
		t.Errorf("subject %q", m.Subject)
	}
	var ce struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.Data["instance"] != "test-1" || ce.Data["targets_healthy"] != 1.0 {
		t.Errorf("heartbeat data %v", ce.Data)
	}
}

// TestStarvedServiceStillServesEveryTarget: a Service whose request budget
// (2 requests/s) cannot keep up with its targets (8 on @every 1s) still
// polls every one of them in turn, and says the schedule cannot be met.
func TestStarvedServiceStillServesEveryTarget(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 16, Sessions: 4, Participants: 2}, func(c *Config) { c.MaxPerService = 2 })
	cr := f.sim.Credentials()
	slow, err := twilio.New(twilio.Config{BaseURL: f.url, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID,
		APIKeySecret: cr.APIKeySecret, RequestsPerSecond: 2, Burst: 1, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	specs := every1s(f.specs(slow))
	if len(specs) != 8 {
		t.Fatalf("%d targets", len(specs))
	}
	f.p.SetTargets(specs)
	runPoller(t, f.p)
	waitFor(t, "every target polled", 30*time.Second, func() bool { return f.p.Summary().Unknown == 0 })
	if f.obs.skips() == 0 {
		t.Error("no skipped activations counted although the budget is 2 polls/s for 8 polls/s")
	}
}

// TestPollerOnInjectedClock: the poller schedules on Config.SchedClock.
// With a clock that moves only when the test says so, three minutes of
// `@every 1m` poll each spread target exactly three times, whatever the
// real time taken, and nothing polls before the clock moves.
func TestPollerOnInjectedClock(t *testing.T) {
	clock := newStepClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	f := newFixture(t, proxysim.Options{Seed: 17, Sessions: 3, Participants: 2}, func(c *Config) {
		c.SchedClock, c.Spread = clock, true
	})
	specs := f.specs(nil)
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	// The scheduler parks on one timer of the clock once it has nothing
	// due; advancing before that would move its deadline.
	parked := func() bool { return clock.pending() > 0 }
	waitFor(t, "the scheduler to park", 10*time.Second, parked)
	if n := f.obs.count(ResultOK); n != 0 {
		t.Fatalf("%d polls before the clock moved", n)
	}
	for minute := 1; minute <= 3; minute++ {
		for range 60 {
			clock.Advance(time.Second)
			waitFor(t, "the scheduler to park", 10*time.Second, parked)
		}
		want := minute * len(specs)
		waitFor(t, fmt.Sprintf("%d polls after %d minutes", want, minute), 20*time.Second,
			func() bool { return f.obs.count(ResultOK) >= want })
		if n := f.obs.count(ResultOK); n != want {
			t.Fatalf("after %d minutes: %d polls, want %d", minute, n, want)
		}
	}
	if s := f.obs.skips(); s != 0 {
		t.Errorf("%d skipped activations", s)
	}
}

// TestRemovalCancelsInFlightPoll: removing a target whose poll is in
// flight cancels that poll; SetTargets returns once it has returned, so
// it cannot commit after its state is forgotten.
func TestRemovalCancelsInFlightPoll(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 18, Participants: 2}, nil)
	started := make(chan struct{}, 1)
	var cancelled atomic.Bool
	blocking := hookLister{f.client, func(ctx context.Context) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		cancelled.Store(true)
	}}
	specs := every1s(f.specs(nil))
	specs[0].Lister = blocking
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking poll never started")
	}
	if err := f.p.SetTargets(specs[1:]); err != nil {
		t.Fatal(err)
	}
	if !cancelled.Load() {
		t.Fatal("SetTargets returned while the removed target's poll was still in flight")
	}
	waitFor(t, "the removed poll reported cancelled", 10*time.Second,
		func() bool { return f.obs.count(ResultCancelled) == 1 })
	if st := f.p.Status(); len(st) != 1 || st[0].Key != specs[1].Target.Key() {
		t.Fatalf("status after removal: %+v", st)
	}
}
