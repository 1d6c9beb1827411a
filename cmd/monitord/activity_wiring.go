package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/monitord/monitord/internal/activity"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/schedule"
	"github.com/monitord/monitord/internal/twilio"
)

// activityWiring drives the polls of poll.mode activity (issue 13): one
// activity.Planner per Service decides what to poll next, one loop per
// Service asks it and polls through Poller.Poll, and the planner's budget
// is the bucket the account's Twilio client takes each request's token
// from (buckets), so the plan and the requests count the same tokens.
//
// It stands between the target set and the poller (it is the set's
// Setter): every target it hands on is Driven, listed through the
// planner's Lister (which shows the planner each complete listing), and
// its Service's planner gets the same targets.
type activityWiring struct {
	base   activity.Config // Rules and intervals; Rate, Burst and Budget per Service
	poller *poller.Poller
	log    *zap.Logger
	perSvc int           // actions in flight per Service: the poller's per-Service share
	grace  time.Duration // in-flight polls may finish for this long at shutdown

	mu       sync.Mutex
	services map[string]*serviceLoop
	limits   map[string]config.Limits // each Service's account's limits
	// refresh is the index of a discovered Service: its discovery refresh,
	// whose sessions list is the index (one list serves both).
	refresh map[string]func(context.Context, string) ([]proxy.Session, error)
	runCtx  context.Context // set while Run runs: new Services start their loop
	loops   sync.WaitGroup
	// keepers are the Discoverers of discovered Services, whose
	// participants are saved with the planners (activity_state.go).
	keepers map[string]participantKeeper
	// statePath is the file the planners' state is saved to ("": none).
	statePath string

	// budgets are the planners' budgets by Service, under their own lock:
	// the client asks for one (buckets) from inside a request, which may
	// be a poll that SetTargets, holding mu, waits for.
	bmu     sync.Mutex
	budgets map[string]*activity.Budget
}

// sessionLister reads a Service's sessions (*twilio.Client).
type sessionLister interface {
	ListSessions(ctx context.Context, serviceSID string) ([]proxy.Session, error)
	FetchSession(ctx context.Context, serviceSID, sessionSID string) (proxy.Session, error)
}

// sessionsPerPage is what Twilio serves of a sessions list per page,
// whatever PageSize asks.
const sessionsPerPage = 100

// serviceLoop is one Service's planner and what its index reads.
type serviceLoop struct {
	svc  string
	pl   *activity.Planner
	wake chan struct{} // buffered 1: an action ended or the targets changed

	mu       sync.Mutex
	sessions sessionLister // configured targets' client; nil until targets come
	started  bool
	// targetSessions are the sessions of the Service's targets, and
	// pages the size of its last sessions list in pages: when the targets
	// are in fewer sessions than the list has pages (a few configured
	// targets in a large Service), the index fetches their sessions one
	// by one instead.
	targetSessions []string
	pages          int

	// indexLog rate-limits the warning of a failing index: it is read
	// again every hot_min while it fails.
	indexLog rate.Sometimes
}

// newActivityWiring returns the wiring of cfg's activity mode, or nil in
// schedule mode. Planners exist from here for every Service of the config,
// so that a discovered Service with no session yet still reads its index.
func newActivityWiring(cfg *config.Config, log *zap.Logger) *activityWiring {
	if cfg.Poll.Mode != config.PollModeActivity {
		return nil
	}
	a := cfg.Poll.Activity
	w := &activityWiring{
		base: activity.Config{IndexEvery: a.IndexEvery, HotMin: a.HotMin, HotMax: a.HotMax,
			ColdEvery: a.ColdEvery, Settle: a.Settle, Rules: diffRules(cfg)},
		log:      log.Named("activity"),
		perSvc:   8, // poller.Config's MaxPerService default
		grace:    cfg.Poll.ShutdownTimeout / 2,
		services: map[string]*serviceLoop{},
		limits:   map[string]config.Limits{},
		refresh:  map[string]func(context.Context, string) ([]proxy.Session, error){},
		budgets:  map[string]*activity.Budget{},
		keepers:  map[string]participantKeeper{},
	}
	w.configure(cfg)
	return w
}

// configure records which account's limits each Service of cfg has, and
// makes its planner (start-up, reload). A reload that changes an
// account's limits changes its Services' budgets from then on.
func (w *activityWiring) configure(cfg *config.Config) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range cfg.EffectiveAccounts() {
		for _, t := range a.Targets {
			w.limits[t.ServiceSID] = a.Twilio.Limits
		}
		for _, d := range a.Discover {
			w.limits[d.ServiceSID] = a.Twilio.Limits
		}
	}
	now := time.Now()
	w.bmu.Lock()
	for svc, b := range w.budgets {
		if lim, ok := w.limits[svc]; ok {
			b.SetLimits(lim.RequestsPerSecond, lim.Burst, now)
		}
	}
	w.bmu.Unlock()
	for svc := range w.limits {
		w.loopLocked(svc)
	}
}

// loopLocked returns svc's loop, making its planner (with no target yet)
// and starting it if the wiring runs. w.mu is held.
func (w *activityWiring) loopLocked(svc string) *serviceLoop {
	if l, ok := w.services[svc]; ok {
		return l
	}
	c := w.base
	c.Budget = w.budget(svc, w.limitsOf(svc))
	pl, err := activity.New(c, nil, time.Now())
	if err != nil {
		// The config was validated with the same bounds; a planner that
		// cannot be made is a bug, not an operator's mistake.
		panic(fmt.Sprintf("activity planner of %s: %v", svc, err))
	}
	l := &serviceLoop{svc: svc, pl: pl, wake: make(chan struct{}, 1), indexLog: rate.Sometimes{Interval: time.Minute}}
	w.services[svc] = l
	if w.runCtx != nil {
		w.startLocked(l)
	}
	return l
}

// limitsOf returns the limits of svc's account. w.mu is held.
func (w *activityWiring) limitsOf(svc string) config.Limits {
	if lim, ok := w.limits[svc]; ok {
		return lim
	}
	return config.DefaultLimits()
}

// budget returns svc's budget, made of lim the first time.
func (w *activityWiring) budget(svc string, lim config.Limits) *activity.Budget {
	w.bmu.Lock()
	defer w.bmu.Unlock()
	b, ok := w.budgets[svc]
	if !ok {
		b = activity.NewBudget(lim.RequestsPerSecond, lim.Burst, time.Now())
		w.budgets[svc] = b
	}
	return b
}

// buckets returns the BucketFunc of an account's client with limits lim:
// the requests that the planner counts (under scope service every request
// of the Service, under scope endpoint the listings it polls) take their
// tokens from the planner's budget; the rest (scope endpoint: the sessions
// and participants lists, single fetches) keep the client's own buckets.
// A Service's budget is made of its account's limits by whichever asks
// first, the client or the planner.
func (w *activityWiring) buckets(lim config.Limits) twilio.BucketFunc {
	return func(svc string, ep twilio.Endpoint) twilio.Bucket {
		switch ep {
		case "", twilio.EndpointMessageInteractions, twilio.EndpointInteractions:
			return budgetBucket{w.budget(svc, lim)}
		}
		return nil
	}
}

// budgetBucket makes an activity.Budget (on the caller's clock) a
// twilio.Bucket on the wall clock. A request that gives up waiting keeps
// its token spent: the next ones wait for it, the cautious side.
type budgetBucket struct{ b *activity.Budget }

func (b budgetBucket) Wait(ctx context.Context) error {
	d := b.b.Take(time.Now())
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		// As rate.Limiter does: a wait past the deadline is not started.
		return fmt.Errorf("wait %v for a token exceeds the deadline", d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setRefresh makes svc's index its discovery refresh.
func (w *activityWiring) setRefresh(svc string, f func(context.Context, string) ([]proxy.Session, error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refresh[svc] = f
	w.loopLocked(svc)
}

// setKeeper saves and restores svc's discovery participants with its
// planner's state.
func (w *activityWiring) setKeeper(svc string, k participantKeeper) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keepers[svc] = k
}

// SetTargets implements targets.Setter: it hands the poller the targets as
// driven, listed through their planner, and each planner its Service's.
func (w *activityWiring) SetTargets(specs []poller.TargetSpec) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]poller.TargetSpec, len(specs))
	bySvc := map[string][]proxy.Target{}
	lister := map[string]sessionLister{}
	for i, s := range specs {
		svc := s.Target.ServiceSID
		l := w.loopLocked(svc)
		if sl, ok := s.Lister.(sessionLister); ok {
			lister[svc] = sl
		}
		if s.Lister != nil {
			s.Lister = l.pl.Lister(s.Lister, time.Now)
		}
		s.Driven = true
		out[i] = s
		bySvc[svc] = append(bySvc[svc], s.Target)
	}
	if err := w.poller.SetTargets(out); err != nil {
		return err
	}
	now := time.Now()
	var errs []error
	for svc, l := range w.services {
		if err := l.pl.SetTargets(bySvc[svc], now); err != nil {
			errs = append(errs, err) // cannot happen: the poller took the same set
		}
		seen := map[string]bool{}
		var sessions []string
		for _, t := range bySvc[svc] {
			if !seen[t.SessionSID] {
				seen[t.SessionSID] = true
				sessions = append(sessions, t.SessionSID)
			}
		}
		l.mu.Lock()
		// nil when the Service has no target any more: its index stops
		// (and never lists through a client a reload closed).
		l.sessions = lister[svc]
		l.targetSessions = sessions
		l.mu.Unlock()
		l.poke()
	}
	return errors.Join(errs...)
}

// Run runs every Service's loop until ctx is done, then waits for them:
// each lets its polls in flight finish for the shutdown grace. It saves
// the planners' state every activitySaveEvery and once the loops are
// done; a failed save is logged, and only costs requests at the next
// start.
func (w *activityWiring) Run(ctx context.Context) error {
	w.mu.Lock()
	w.runCtx = ctx
	for _, l := range w.services {
		w.startLocked(l)
	}
	w.mu.Unlock()
	t := time.NewTicker(activitySaveEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := w.save(); err != nil {
				w.log.Warn("activity state not saved", zap.Error(err))
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	w.loops.Wait()
	if err := w.save(); err != nil {
		w.log.Warn("activity state not saved", zap.Error(err))
	}
	return nil
}

func (w *activityWiring) startLocked(l *serviceLoop) {
	if l.started {
		return
	}
	l.started = true
	ctx := w.runCtx
	w.loops.Go(func() { w.runLoop(ctx, l) })
}

func (l *serviceLoop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// runLoop asks svc's planner what to do, does it, and reports back, with
// up to perSvc actions at once: the client's bucket paces the requests,
// and round trips overlap as the poller's per-Service share allows.
func (w *activityWiring) runLoop(ctx context.Context, l *serviceLoop) {
	// Polls run on a context that outlives ctx by the grace, as scheduled
	// polls do: a poll almost done at SIGTERM commits.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var inFlight sync.WaitGroup
	defer func() {
		done := make(chan struct{})
		go func() { inFlight.Wait(); close(done) }()
		t := time.NewTimer(w.grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			cancel()
			<-done
		}
	}()
	slots := make(chan struct{}, w.perSvc)
	for {
		a, wait := l.pl.Next(time.Now())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-l.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			l.pl.Done(a, time.Now(), ctx.Err())
			return
		}
		inFlight.Go(func() {
			defer func() { <-slots; l.poke() }()
			err := w.do(pctx, l, a)
			l.pl.Done(a, time.Now(), err)
		})
	}
}

// do performs one action of svc's planner.
func (w *activityWiring) do(ctx context.Context, l *serviceLoop, a activity.Action) error {
	if a.Kind == activity.KindIndex {
		return w.index(ctx, l)
	}
	res, err := w.poller.Poll(ctx, a.Target, poller.Tick{Key: a.Target.Key(), Due: a.Due})
	if err != nil {
		return err // removed since the planner handed it out
	}
	if res != poller.ResultOK {
		return fmt.Errorf("poll %s: %s", a.Target.Key(), res)
	}
	return nil
}

// index reads svc's sessions list into its planner: through discovery's
// refresh when the Service is discovered (the same list finds new
// sessions), else straight from the configured targets' client.
func (w *activityWiring) index(ctx context.Context, l *serviceLoop) error {
	w.mu.Lock()
	refresh := w.refresh[l.svc]
	w.mu.Unlock()
	l.mu.Lock()
	sl, sessions, pages := l.sessions, l.targetSessions, l.pages
	l.mu.Unlock()
	var ss []proxy.Session
	var err error
	switch {
	case refresh != nil:
		// A failed participants list fails the refresh, not the index:
		// the sessions list is complete and still says what moved.
		ss, err = refresh(ctx, l.svc)
		if ss != nil {
			err = nil
		}
	case sl != nil && pages > 0 && len(sessions) < pages:
		ss, err = fetchSessions(ctx, sl, l.svc, sessions)
	case sl != nil:
		ss, err = sl.ListSessions(ctx, l.svc)
		if err == nil {
			l.mu.Lock()
			l.pages = (len(ss) + sessionsPerPage - 1) / sessionsPerPage
			l.mu.Unlock()
		}
	default:
		return nil // no target, no discovery: nothing to index for
	}
	if err != nil {
		// A discovered Service's failed refresh is logged by discovery.
		if ctx.Err() == nil && refresh == nil {
			l.indexLog.Do(func() {
				w.log.Warn("activity index failed; retrying", zap.String("service", l.svc), zap.Error(err))
			})
		}
		return err
	}
	l.pl.Indexed(ss, time.Now())
	return nil
}

// fetchSessions fetches each of sessions: the index of a few configured
// targets. A session gone (404) is left out: its targets' own polls say
// so.
func fetchSessions(ctx context.Context, sl sessionLister, svc string, sessions []string) ([]proxy.Session, error) {
	out := make([]proxy.Session, 0, len(sessions))
	for _, sid := range sessions {
		s, err := sl.FetchSession(ctx, svc, sid)
		if errors.Is(err, proxy.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Classes returns every driven target's class by key, for /status.
func (w *activityWiring) Classes() map[string]string {
	w.mu.Lock()
	loops := make([]*serviceLoop, 0, len(w.services))
	for _, l := range w.services {
		loops = append(loops, l)
	}
	w.mu.Unlock()
	var m map[string]activity.Class
	for _, l := range loops {
		m = l.pl.Classes(m)
	}
	out := make(map[string]string, len(m))
	for k, c := range m {
		out[k] = c.String()
	}
	return out
}

// Stats returns each Service's planner account, by Service SID.
func (w *activityWiring) Stats() map[string]activity.Stats {
	w.mu.Lock()
	loops := make(map[string]*serviceLoop, len(w.services))
	for s, l := range w.services {
		loops[s] = l
	}
	w.mu.Unlock()
	out := make(map[string]activity.Stats, len(loops))
	for s, l := range loops {
		out[s] = l.pl.Stats()
	}
	return out
}

// driveDiscovery hands each discovered Service's refresh to its planner as
// its index: in poll.mode activity discovery does not run on its own
// schedule, and one sessions list per IndexEvery serves both.
func (w *targetWiring) driveDiscovery(a *activityWiring) {
	w.driven = true
	for svc, d := range w.byService {
		a.setRefresh(svc, d.RefreshService)
		a.setKeeper(svc, d)
	}
}

// activityParticipantRefresh keeps the wall-clock period at which
// discovery lists a known session's participants again when the planner,
// not the entry's schedule, drives the refreshes: participant_refresh_every
// counts refreshes, and at an index every 30 s instead of a refresh every
// 5 min the default 12 would re-list each session every 6 min, about
// 28 requests/s at 10,000 sessions: the whole budget. Scaled, it stays
// once an hour by default (10,000 sessions: 2.8 requests/s).
func activityParticipantRefresh(d config.Discover, indexEvery time.Duration) int {
	n := d.ParticipantRefreshEvery
	if n <= 0 {
		n = config.DefaultParticipantRefreshEvery
	}
	s, err := schedule.Parse(d.Schedule)
	if err != nil || indexEvery <= 0 {
		return n // validated before; keep the entry's own count
	}
	now := time.Now()
	first := s.Next(now)
	every := s.Next(first).Sub(first)
	if every <= indexEvery {
		return n
	}
	return int((time.Duration(n)*every + indexEvery - 1) / indexEvery)
}
