package targets

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is the simulator over HTTP, a client of it and a temp-dir state
// file: the parts a Set drives are real.
type world struct {
	client  *twilio.Client
	db      *state.DB
	targets []proxy.Target // two Services, one session each, two participants each
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sim := proxysim.New(proxysim.Options{Seed: 21, Services: 2, Sessions: 1, Participants: 2, Interactions: 2})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cr := sim.Credentials()
	c, err := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID,
		APIKeySecret: cr.APIKeySecret, MaxAttempts: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &world{client: c, db: db}
	for _, st := range sim.Targets() {
		w.targets = append(w.targets, proxy.Target{Source: proxy.SourceParticipant,
			ServiceSID: st.ServiceSID, SessionSID: st.SessionSID, ParticipantSID: st.ParticipantSID})
	}
	slices.SortFunc(w.targets, func(a, b proxy.Target) int { return compareKeys(a.Key(), b.Key()) })
	if len(w.targets) != 4 || w.targets[0].ServiceSID == w.targets[2].ServiceSID {
		t.Fatalf("simulator targets %v, want two Services of two", w.targets)
	}
	return w
}

func compareKeys(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// poller is a fresh poller on w's state file: a new process, as far as
// the state is concerned.
func (w *world) poller(t *testing.T) *poller.Poller {
	t.Helper()
	p, err := poller.New(poller.Config{
		DefaultSchedule: "@every 1s",
		Rules:           diff.DefaultRules(),
		Render:          func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
		Store:           w.db,
		Log:             zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *world) specs(ts ...proxy.Target) []poller.TargetSpec {
	out := make([]poller.TargetSpec, len(ts))
	for i, t := range ts {
		out[i] = poller.TargetSpec{Target: t, Lister: w.client, Account: "default"}
	}
	return out
}

func (w *world) keys(t *testing.T) []string {
	t.Helper()
	keys, err := w.db.Keys()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func keysOf(ts ...proxy.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Key()
	}
	slices.Sort(out)
	return out
}

func newSet(t *testing.T, p Setter, store Store, ob Observer) *Set {
	t.Helper()
	s, err := New(Config{Poller: p, Store: store, Observer: ob, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStateForgottenOnePath follows the state of four targets through a
// restart, discovery and a reload: each deletion of the lifecycle in
// docs/daemon.md, all through the Set.
func TestStateForgottenOnePath(t *testing.T) {
	w := newWorld(t)
	a1, b1, b2 := w.targets[0], w.targets[2], w.targets[3]
	svcB := b1.ServiceSID

	// A first run polls all four: each has state.
	p1 := w.poller(t)
	if err := newSet(t, p1, w.db, nil).Configure(w.specs(w.targets...), nil); err != nil {
		t.Fatal(err)
	}
	if res := p1.PollAll(context.Background()); res[poller.ResultOK] != 4 {
		t.Fatalf("first run polls: %v", res)
	}
	if got := w.keys(t); !slices.Equal(got, keysOf(w.targets...)) {
		t.Fatalf("state after the first run %v", got)
	}

	// Restart with a1 configured and Service B discovered: a1's sibling,
	// removed
	// while stopped, is forgotten; B's targets wait for discovery.
	p2 := w.poller(t)
	ob := &origins{}
	s := newSet(t, p2, w.db, ob)
	tmpl := map[string]poller.TargetSpec{svcB: {Lister: w.client, Account: "default", Schedule: "@every 2s"}}
	if err := s.Configure(w.specs(a1), tmpl); err != nil {
		t.Fatal(err)
	}
	if got, want := w.keys(t), keysOf(a1, b1, b2); !slices.Equal(got, want) {
		t.Fatalf("state after start-up %v, want %v", got, want)
	}

	// Discovery's first set of B has b1 only: b2 ended while stopped.
	setDiscovered(s, svcB, []proxy.Target{b1})
	if got, want := w.keys(t), keysOf(a1, b1); !slices.Equal(got, want) {
		t.Fatalf("state after B's first discovered set %v, want %v", got, want)
	}
	st := p2.Status()
	if len(st) != 2 || st[0].Origin+st[1].Origin != poller.OriginConfigured+poller.OriginDiscovered {
		t.Fatalf("polled %+v, want a1 configured and b1 discovered", st)
	}
	if ob.configured != 1 || ob.discovered != 1 {
		t.Errorf("targets by origin %+v, want 1 and 1", ob)
	}

	// b1's grace ends: it leaves the set and its state goes.
	setDiscovered(s, svcB, nil)
	if got, want := w.keys(t), keysOf(a1); !slices.Equal(got, want) {
		t.Fatalf("state after b1 was dropped %v, want %v", got, want)
	}

	// A reload that removes a1.
	if err := s.Configure(nil, tmpl); err != nil {
		t.Fatal(err)
	}
	if got := w.keys(t); len(got) != 0 {
		t.Fatalf("state after a1 was removed %v, want none", got)
	}
}

// TestSharedStoreStartForgetsNothing: over a store several instances
// share (ha), an instance that starts on an older config, one without a
// target the others have added (a rolling change), keeps that target's
// state, so the target is not baselined again and a failure in between
// still pages. A reload that removes a target still forgets its state.
func TestSharedStoreStartForgetsNothing(t *testing.T) {
	w := newWorld(t)
	a1, a2 := w.targets[0], w.targets[1]

	// An instance on the new config polls a1 and a2.
	p1 := w.poller(t)
	if err := newSet(t, p1, w.db, nil).Configure(w.specs(a1, a2), nil); err != nil {
		t.Fatal(err)
	}
	if res := p1.PollAll(context.Background()); res[poller.ResultOK] != 2 {
		t.Fatalf("first instance polls: %v", res)
	}

	// Another, still on the old config (a1 only), starts.
	p2 := w.poller(t)
	s, err := New(Config{Poller: p2, Store: w.db, Shared: true, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Configure(w.specs(a1), nil); err != nil {
		t.Fatal(err)
	}
	if got, want := w.keys(t), keysOf(a1, a2); !slices.Equal(got, want) {
		t.Fatalf("state after the old-config start %v, want %v", got, want)
	}

	// Its config catches up, then a later change removes a1.
	if err := s.Configure(w.specs(a1, a2), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Configure(w.specs(a2), nil); err != nil {
		t.Fatal(err)
	}
	if got, want := w.keys(t), keysOf(a2); !slices.Equal(got, want) {
		t.Fatalf("state after a reload removed a1 %v, want %v", got, want)
	}

	// A shared store is not read at start-up: one that cannot list its
	// keys does not fail it.
	p3 := w.poller(t)
	s3, err := New(Config{Poller: p3, Store: brokenStore{}, Shared: true, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Configure(w.specs(a1), nil); err != nil {
		t.Fatalf("start over a shared store: %v", err)
	}
}

// origins records the targets-by-origin observation.
type origins struct{ configured, discovered int }

func (o *origins) TargetsByOrigin(configured, discovered int) {
	o.configured, o.discovered = configured, discovered
}

// TestRemovedWhileRunning removes a target from a running poller: its
// state is gone when Configure returns and stays gone while the other
// target keeps being polled (no late commit brings it back).
func TestRemovedWhileRunning(t *testing.T) {
	w := newWorld(t)
	a1, a2 := w.targets[0], w.targets[1]
	p := w.poller(t)
	s := newSet(t, p, w.db, nil)
	if err := s.Configure(w.specs(a1, a2), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("poller: %v", err)
		}
	}()
	waitFor(t, "both targets polled", 20*time.Second, func() bool { return len(w.keys(t)) == 2 })

	if err := s.Configure(w.specs(a1), nil); err != nil {
		t.Fatal(err)
	}
	if got, want := w.keys(t), keysOf(a1); !slices.Equal(got, want) {
		t.Fatalf("state right after removal %v, want %v", got, want)
	}
	last := p.Status()[0].LastAttempt
	waitFor(t, "a1 polled again", 20*time.Second, func() bool { return p.Status()[0].LastAttempt.After(last) })
	if got, want := w.keys(t), keysOf(a1); !slices.Equal(got, want) {
		t.Fatalf("state after another poll %v, want %v", got, want)
	}
}

// TestRefusedChangesNothing: a set the poller refuses leaves the targets
// and every target's state as they were.
func TestRefusedChangesNothing(t *testing.T) {
	w := newWorld(t)
	a1, a2 := w.targets[0], w.targets[1]
	p := w.poller(t)
	s := newSet(t, p, w.db, nil)
	if err := s.Configure(w.specs(a1, a2), nil); err != nil {
		t.Fatal(err)
	}
	if res := p.PollAll(context.Background()); res[poller.ResultOK] != 2 {
		t.Fatalf("polls: %v", res)
	}
	bad := w.specs(a1)
	bad[0].Lister = nil
	if err := s.Configure(bad, nil); err == nil {
		t.Fatal("a spec without a lister was accepted")
	}
	if got := s.Specs(); len(got) != 2 {
		t.Errorf("specs after a refused reload: %d, want 2", len(got))
	}
	if got := w.keys(t); len(got) != 2 {
		t.Errorf("state after a refused reload %v, want both", got)
	}

	// A discovered set the poller refuses (its template has no lister)
	// is logged and changes nothing either.
	svc := w.targets[2].ServiceSID
	if err := s.Configure(w.specs(a1, a2), map[string]poller.TargetSpec{svc: {}}); err != nil {
		t.Fatal(err)
	}
	setDiscovered(s, svc, []proxy.Target{w.targets[2]})
	if got := len(p.Status()); got != 2 {
		t.Errorf("polled %d after a refused discovered set, want 2", got)
	}
}

// TestStartUpStoreError: a state file that cannot list its keys fails
// start-up before anything is polled.
func TestStartUpStoreError(t *testing.T) {
	w := newWorld(t)
	p := w.poller(t)
	s := newSet(t, p, brokenStore{}, nil)
	if err := s.Configure(w.specs(w.targets[0]), nil); err == nil || !errors.Is(err, errBroken) {
		t.Fatalf("Configure over a broken store: %v", err)
	}
	if n := len(p.Status()); n != 0 {
		t.Errorf("poller has %d targets after a failed start-up, want 0", n)
	}
}

var errBroken = errors.New("disk on fire")

type brokenStore struct{}

func (brokenStore) Keys() ([]string, error)     { return nil, errBroken }
func (brokenStore) Forget(keys ...string) error { return errBroken }

func TestServiceOf(t *testing.T) {
	for key, want := range map[string]string{
		"participant/KSa/KCb/KPc": "KSa",
		"session/KSa/KCb":         "KSa",
		"session":                 "",
		"":                        "",
	} {
		if got := serviceOf(key); got != want {
			t.Errorf("serviceOf(%q) = %q, want %q", key, got, want)
		}
	}
}

// waitFor waits for cond, checking every 20 ms, for up to d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadKeepsDiscoverEntries: discover entries are fixed at start-up
// (each has its Discoverer): a reload that drops one keeps its Service's
// targets polled as before, one that adds one changes nothing yet, and
// both say so; a reload that changes an entry's poll settings applies
// them at once.
func TestReloadKeepsDiscoverEntries(t *testing.T) {
	w := newWorld(t)
	a1, b1 := w.targets[0], w.targets[2]
	svcB := b1.ServiceSID
	p := w.poller(t)
	core, logs := observer.New(zap.WarnLevel)
	s, err := New(Config{Poller: p, Store: w.db, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := poller.TargetSpec{Lister: w.client, Schedule: "@every 2s"}
	if err := s.Configure(w.specs(a1), map[string]poller.TargetSpec{svcB: tmpl}); err != nil {
		t.Fatal(err)
	}
	setDiscovered(s, svcB, []proxy.Target{b1})

	// The entry is gone from the config: b1 is still polled, as before.
	if err := s.Configure(w.specs(a1), nil); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); len(st) != 2 || st[1].ParticipantSID != b1.ParticipantSID || st[1].Schedule != "@every 2s" {
		t.Errorf("after removing the entry: %+v, want a1 and b1 on @every 2s", st)
	}
	// Back, with another poll schedule: applied at once.
	tmpl.Schedule = "@every 3s"
	if err := s.Configure(w.specs(a1), map[string]poller.TargetSpec{svcB: tmpl}); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); len(st) != 2 || st[1].Schedule != "@every 3s" {
		t.Errorf("after changing the entry's schedule: %+v, want b1 on @every 3s", st)
	}
	// A new Service: nothing discovers it before a restart.
	svcC := sid("KS", 'c')
	if err := s.Configure(w.specs(a1), map[string]poller.TargetSpec{svcB: tmpl, svcC: tmpl}); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message+" "+e.ContextMap()["service"].(string))
	}
	want := []string{
		"reload: removing a discover entry takes effect after a restart " + svcB,
		"reload: a new discover entry takes effect after a restart " + svcC,
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("warnings %q, want %q", msgs, want)
	}
}

// setDiscovered hands s a Service's discovered set as its Trackers would,
// for tests of what follows from a set rather than of the grace rule.
func setDiscovered(s *Set, svc string, discovered []proxy.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setDiscoveredLocked(svc, discovered, true)
}
