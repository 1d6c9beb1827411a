package discover

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/targets"
	"github.com/monitord/monitord/internal/twilio"
)

// fakeClock is the one clock of a test: the simulator's world and the
// discoverer's grace period both read it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// world is a simulator behind a real HTTP server and a real client. The
// server counts requests by list and can answer a chosen path with a
// Twilio error, as Twilio would during an incident.
type world struct {
	t      testing.TB
	clock  *fakeClock
	sim    *proxysim.Sim
	srv    *httptest.Server
	client *twilio.Client

	sessionsReqs, participantsReqs atomic.Int64

	faultMu sync.Mutex
	faults  map[string]int // path suffix -> HTTP status
	perSess map[string]int // participants requests by session SID
}

func newWorld(t testing.TB, o proxysim.Options, tune ...func(*twilio.Config)) *world {
	t.Helper()
	w := &world{t: t, clock: &fakeClock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}, faults: map[string]int{}, perSess: map[string]int{}}
	if o.Clock == nil {
		o.Clock = w.clock.Now
	}
	if o.RateLimit == 0 {
		o.RateLimit = -1 // the client's limiter is tested elsewhere; here it would only slow the tests
	}
	w.sim = proxysim.New(o)
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	cr := w.sim.Credentials()
	cfg := twilio.Config{
		BaseURL: w.srv.URL, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret,
		RequestsPerSecond: 10000, Burst: 1000, MaxAttempts: 1, MaxPages: 1000,
	}
	for _, f := range tune {
		f(&cfg)
	}
	c, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w.client = c
	return w
}

func (w *world) serve(rw http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/Sessions"):
		w.sessionsReqs.Add(1)
	case strings.HasSuffix(r.URL.Path, "/Participants"):
		w.participantsReqs.Add(1)
		parts := strings.Split(r.URL.Path, "/")
		w.faultMu.Lock()
		w.perSess[parts[len(parts)-2]]++
		w.faultMu.Unlock()
	}
	w.faultMu.Lock()
	status := 0
	for suffix, s := range w.faults {
		if strings.HasSuffix(r.URL.Path, suffix) {
			status = s
		}
	}
	w.faultMu.Unlock()
	if status != 0 {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		code := 20500
		if status == http.StatusNotFound {
			code = 20404
		}
		_, _ = rw.Write([]byte(`{"code":` + strconv.Itoa(code) + `,"message":"injected","more_info":"https://www.twilio.com/docs/errors/` + strconv.Itoa(code) + `","status":` + strconv.Itoa(status) + `}`))
		return
	}
	w.sim.ServeHTTP(rw, r)
}

// fault makes requests whose path ends with suffix answer status; 0 clears.
func (w *world) fault(suffix string, status int) {
	w.faultMu.Lock()
	defer w.faultMu.Unlock()
	if status == 0 {
		delete(w.faults, suffix)
		return
	}
	w.faults[suffix] = status
}

func (w *world) resetCounts() {
	w.sessionsReqs.Store(0)
	w.participantsReqs.Store(0)
	w.faultMu.Lock()
	clear(w.perSess)
	w.faultMu.Unlock()
}

// listedPerSession returns the participants requests by session since the
// last resetCounts.
func (w *world) listedPerSession() map[string]int {
	w.faultMu.Lock()
	defer w.faultMu.Unlock()
	return maps.Clone(w.perSess)
}

// recorder is an Observer, and the poller of a real target set
// (internal/targets) whose Trackers are the entries' Sinks: it keeps the
// discovered sets the target set hands on, grace applied.
type recorder struct {
	mu      sync.Mutex
	targets *targets.Set
	sets    map[string][]proxy.Target
	calls   int
	results []RefreshResult
	changed chan struct{}
	tmpl    map[string]poller.TargetSpec
}

func newRecorder() *recorder {
	r := &recorder{sets: map[string][]proxy.Target{}, changed: make(chan struct{}, 1), tmpl: map[string]poller.TargetSpec{}}
	set, err := targets.New(targets.Config{Poller: r})
	if err != nil {
		panic(err) // only a nil poller fails
	}
	r.targets = set
	return r
}

// entry returns e with its Sink: a Tracker of r's target set with grace.
func (r *recorder) entry(grace time.Duration, e Entry) Entry {
	r.mu.Lock()
	r.tmpl[e.ServiceSID] = poller.TargetSpec{Schedule: "@every 1m"}
	tmpl := maps.Clone(r.tmpl)
	r.mu.Unlock()
	// Configure polls discovered targets of the Service at all; it hands
	// the poller a set too, which is not one of discovery's.
	if err := r.targets.Configure(nil, tmpl); err != nil {
		panic(err) // r accepts every set
	}
	r.mu.Lock()
	r.calls = 0
	r.mu.Unlock()
	tr, err := r.targets.Tracker(e.ServiceSID, grace)
	if err != nil {
		panic(err)
	}
	e.Sink = tr
	return e
}

// SetTargets implements targets.Setter: the discovered targets by Service.
func (r *recorder) SetTargets(specs []poller.TargetSpec) error {
	r.mu.Lock()
	clear(r.sets)
	for svc := range r.tmpl {
		r.sets[svc] = nil
	}
	for _, sp := range specs {
		r.sets[sp.Target.ServiceSID] = append(r.sets[sp.Target.ServiceSID], sp.Target)
	}
	r.calls++
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) Refreshed(res RefreshResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

func (r *recorder) set(svc string) map[proxy.Target]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[proxy.Target]bool{}
	for _, t := range r.sets[svc] {
		m[t] = true
	}
	return m
}

func (r *recorder) sinkCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func (r *recorder) last() RefreshResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.results[len(r.results)-1]
}

func participantTargets(ts []proxysim.Target) []proxy.Target {
	out := make([]proxy.Target, len(ts))
	for i, t := range ts {
		out[i] = proxy.Target{Source: proxy.SourceParticipant, ServiceSID: t.ServiceSID, SessionSID: t.SessionSID, ParticipantSID: t.ParticipantSID}
	}
	return out
}

func (w *world) newDiscoverer(rec *recorder, entries ...Entry) *Discoverer {
	w.t.Helper()
	d, err := New(Config{Entries: entries, Lister: w.client, Observer: rec, Now: w.clock.Now})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

func mustRefresh(t *testing.T, d *Discoverer) {
	t.Helper()
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh: %v", err)
	}
}

// wantSet checks that the recorded set of svc is exactly want.
func wantSet(t *testing.T, rec *recorder, svc string, want ...[]proxy.Target) {
	t.Helper()
	got := rec.set(svc)
	n := 0
	for _, ts := range want {
		for _, x := range ts {
			n++
			if !got[x] {
				t.Errorf("target %s missing from the discovered set", x)
			}
		}
	}
	if len(got) != n {
		t.Errorf("discovered %d targets, want %d", len(got), n)
	}
}
