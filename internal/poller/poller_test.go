package poller

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a poller against the simulator over HTTP, with a temp-dir
// state file: every part real.
type fixture struct {
	sim    *proxysim.Sim
	url    string // the simulator's base URL
	client *twilio.Client
	db     *state.DB
	obs    *recorder
	p      *Poller
	now    *atomic.Int64 // the simulator's and poller's clock, unix seconds
}

func newFixture(t *testing.T, so proxysim.Options, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{now: new(atomic.Int64), obs: newRecorder()}
	f.now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix())
	clock := func() time.Time { return time.Unix(f.now.Load(), 0).UTC() }
	so.Clock = clock
	f.sim = proxysim.New(so)
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	cr := f.sim.Credentials()
	c, err := twilio.New(twilio.Config{
		BaseURL: srv.URL, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret,
		MaxAttempts: 1, RequestTimeout: 5 * time.Second, MessagesBaseURL: srv.URL, MessagesPerSecond: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f.client = c
	f.db, err = state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	cfg := Config{
		Rules:    diff.DefaultRules(),
		Render:   func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
		Store:    f.db,
		Waker:    f.obs,
		Observer: f.obs,
		Log:      zaptest.NewLogger(t),
		Clock:    clock,
	}
	if mod != nil {
		mod(&cfg)
	}
	f.p, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// specs returns the simulator's targets as participant targets.
func (f *fixture) specs(l Lister) []TargetSpec {
	if l == nil {
		l = f.client
	}
	var out []TargetSpec
	for _, st := range f.sim.Targets() {
		out = append(out, TargetSpec{Target: proxy.Target{Source: proxy.SourceParticipant,
			ServiceSID: st.ServiceSID, SessionSID: st.SessionSID, ParticipantSID: st.ParticipantSID}, Lister: l})
	}
	return out
}

// outbox drains and returns the kinds of the events in the outbox.
func (f *fixture) outbox(t *testing.T) []event.Kind {
	t.Helper()
	recs, err := f.db.Peek(event.Position{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []event.Kind
	var seqs []event.Position
	for _, r := range recs {
		var ce struct {
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(r.Data, &ce); err != nil {
			t.Fatal(err)
		}
		// <prefix>.<kind>.<service>.<session>.<participant>
		kinds = append(kinds, event.Kind(strings.Split(r.Subject, ".")[1]))
		seqs = append(seqs, r.Position)
	}
	if err := f.db.Delete(seqs); err != nil {
		t.Fatal(err)
	}
	return kinds
}

// recorder is a channel-backed Observer and Waker.
type recorder struct {
	mu      sync.Mutex
	results map[string]int
	skipped int
	events  map[event.Kind]int
	failed  map[int]int // FailedQueued by code
	reasons map[string]int
	wakes   int
	done    chan string // every PollDone result, if anyone listens
}

func newRecorder() *recorder {
	return &recorder{results: map[string]int{}, events: map[event.Kind]int{}, failed: map[int]int{},
		reasons: map[string]int{}, done: make(chan string, 1000)}
}

func (r *recorder) PollDone(result string, _, _ time.Duration) {
	r.mu.Lock()
	r.results[result]++
	r.mu.Unlock()
	select {
	case r.done <- result:
	default:
	}
}

func (r *recorder) PollSkipped() { r.mu.Lock(); r.skipped++; r.mu.Unlock() }

func (r *recorder) EventsQueued(k event.Kind, n int) { r.mu.Lock(); r.events[k] += n; r.mu.Unlock() }

func (r *recorder) FailedQueued(_ string, code int) { r.mu.Lock(); r.failed[code]++; r.mu.Unlock() }

func (r *recorder) ReasonFetched(result string) { r.mu.Lock(); r.reasons[result]++; r.mu.Unlock() }

func (r *recorder) Wake() { r.mu.Lock(); r.wakes++; r.mu.Unlock() }

func (r *recorder) count(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.results[result]
}

func (r *recorder) skips() int { r.mu.Lock(); defer r.mu.Unlock(); return r.skipped }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runPoller runs p until the test ends and returns a stop function that
// cancels it and waits for Run to return.
func runPoller(t *testing.T, p *Poller) (stop func()) {
	t.Helper()
	return runPart(t, p.Run)
}

// runPart runs a part's Run until the test ends and returns a stop
// function that cancels it and waits for Run to return.
func runPart(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestPollBaselineThenChanges(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 1, Sessions: 2, Participants: 2}, nil)
	specs := f.specs(nil)
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res := f.p.PollAll(ctx); res[ResultOK] != len(specs) {
		t.Fatalf("baseline results %v", res)
	}
	for _, k := range f.outbox(t) {
		// The baseline is silent but for fresh failures.
		if k != event.Failed {
			t.Errorf("baseline produced %s", k)
		}
	}
	if res := f.p.PollAll(ctx); res[ResultOK] != len(specs) {
		t.Fatalf("second poll %v", res)
	}
	if k := f.outbox(t); len(k) != 0 {
		t.Fatalf("unchanged listing produced %v", k)
	}

	st := f.sim.Targets()[0]
	if _, err := f.sim.AddInteraction(st, "undelivered"); err != nil {
		t.Fatal(err)
	}
	f.now.Add(1)
	f.p.PollAll(ctx)
	got := f.outbox(t)
	if len(got) != 2 || got[0] != event.Created || got[1] != event.Failed {
		t.Fatalf("new undelivered interaction: events %v, want [created failed]", got)
	}
	if f.obs.wakes == 0 {
		t.Error("publisher never woken")
	}
	s := f.p.Summary()
	if s.Healthy != len(specs) || s.Failing != 0 || s.LastCycle.IsZero() {
		t.Errorf("summary %+v", s)
	}
}

func TestPublishKindsFilter(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 2}, func(c *Config) { c.PublishKinds = []event.Kind{event.Failed} })
	if err := f.p.SetTargets(f.specs(nil)); err != nil {
		t.Fatal(err)
	}
	f.p.PollAll(context.Background())
	f.outbox(t)
	if _, err := f.sim.AddInteraction(f.sim.Targets()[0], "failed"); err != nil {
		t.Fatal(err)
	}
	f.p.PollAll(context.Background())
	if got := f.outbox(t); len(got) != 1 || got[0] != event.Failed {
		t.Fatalf("events %v, want only [failed]", got)
	}
}

// TestTargetErrorOncePerOutage drives a target through an auth outage and a
// 5xx outage: one target_error and one target_recovered each, never one per
// failed poll, and 5xx only after the threshold.
func TestTargetErrorOncePerOutage(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 3, Participants: 1}, func(c *Config) { c.FailureThreshold = 3 })
	if err := f.p.SetTargets(f.specs(nil)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := f.sim.Targets()[0]
	f.p.PollAll(ctx)
	f.outbox(t)

	poll := func(n int) []event.Kind {
		var all []event.Kind
		for range n {
			f.now.Add(1)
			f.p.PollAll(ctx)
			all = append(all, f.outbox(t)...)
		}
		return all
	}
	if err := f.sim.SetTargetError(st, 401); err != nil {
		t.Fatal(err)
	}
	if got := poll(3); len(got) != 1 || got[0] != event.TargetError {
		t.Fatalf("auth outage: %v, want one target_error", got)
	}
	if s := f.p.Status()[0]; s.Health != HealthFailing || s.ErrorClass != ClassAuth || s.ConsecutiveFailures != 3 {
		t.Errorf("status during auth outage: %+v", s)
	}
	f.sim.SetTargetError(st, 0)
	if got := poll(2); len(got) != 1 || got[0] != event.TargetRecovered {
		t.Fatalf("recovery: %v, want one target_recovered", got)
	}

	f.sim.SetTargetError(st, 503)
	if got := poll(2); len(got) != 0 {
		t.Fatalf("5xx below threshold: %v", got)
	}
	if got := poll(3); len(got) != 1 || got[0] != event.TargetError {
		t.Fatalf("5xx at threshold: %v", got)
	}
	f.sim.SetTargetError(st, 0)
	if got := poll(1); len(got) != 1 || got[0] != event.TargetRecovered {
		t.Fatalf("second recovery: %v", got)
	}
	ts, _, err := f.db.Load(f.p.Status()[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Health.Outage != 2 || ts.Health.Failing {
		t.Errorf("stored health %+v, want outage 2, not failing", ts.Health)
	}
}

// TestFailedPollNeverMovesSnapshot: a change made while the target fails
// is reported once it recovers, because the failed polls committed nothing.
func TestFailedPollNeverMovesSnapshot(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 4, Participants: 1}, nil)
	f.p.SetTargets(f.specs(nil))
	ctx := context.Background()
	f.p.PollAll(ctx)
	f.outbox(t)
	st := f.sim.Targets()[0]
	f.sim.SetTargetError(st, 500)
	f.sim.AddInteraction(st, "failed")
	f.now.Add(1)
	if res := f.p.PollAll(ctx); res[ResultError] != 1 {
		t.Fatalf("results %v", res)
	}
	f.sim.SetTargetError(st, 0)
	f.now.Add(1)
	f.p.PollAll(ctx)
	got := f.outbox(t)
	if len(got) != 2 || got[0] != event.Created || got[1] != event.Failed {
		t.Fatalf("after recovery: %v, want [created failed] (below threshold: no target events)", got)
	}
}

func TestOutboxFullCommitsNothing(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 5, Participants: 1}, nil)
	f.db.Close()
	var err error
	f.db, err = state.Open(filepath.Join(t.TempDir(), "small.db"), state.Options{MaxOutboxEvents: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.p.cfg.Store = f.db
	f.p.SetTargets(f.specs(nil))
	ctx := context.Background()
	f.p.PollAll(ctx)
	f.outbox(t)
	st := f.sim.Targets()[0]
	// One event fills the outbox; the next poll's two events do not fit.
	f.sim.AddInteraction(st, "sent")
	f.now.Add(1)
	f.p.PollAll(ctx)
	f.sim.AddInteraction(st, "failed")
	f.now.Add(1)
	if res := f.p.PollAll(ctx); res[ResultOutboxFull] != 1 {
		t.Fatalf("results %v, want outbox_full", res)
	}
	if got := f.outbox(t); len(got) != 1 || got[0] != event.Created {
		t.Fatalf("outbox %v, want the first poll's [created]", got)
	}
	f.now.Add(1)
	f.p.PollAll(ctx)
	if got := f.outbox(t); len(got) != 2 || got[0] != event.Created || got[1] != event.Failed {
		t.Fatalf("after drain: %v, want [created failed]: nothing lost", got)
	}
}

// TestStateErrUntilNextCommit: a state file that cannot be written (here:
// closed under the poller) is reported by StateErr, which /readyz shows,
// until a commit succeeds again. Outbox-full back-pressure is not one.
func TestStateErrUntilNextCommit(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 7, Participants: 1}, nil)
	f.p.SetTargets(f.specs(nil))
	ctx := context.Background()
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 || f.p.StateErr() != nil {
		t.Fatalf("first poll: %v, StateErr %v", res, f.p.StateErr())
	}
	path := f.db.Path()
	f.db.Close()
	if res := f.p.PollAll(ctx); res[ResultStateError] != 1 {
		t.Fatalf("poll on a closed state file: %v, want state_error", res)
	}
	if err := f.p.StateErr(); err == nil || !strings.Contains(err.Error(), "state") {
		t.Fatalf("StateErr = %v, want the state error", err)
	}
	db, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.p.cfg.Store = db
	f.now.Add(1)
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 {
		t.Fatalf("poll after reopening: %v", res)
	}
	if err := f.p.StateErr(); err != nil {
		t.Fatalf("StateErr after a good commit = %v, want nil", err)
	}
}
