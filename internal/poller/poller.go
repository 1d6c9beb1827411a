// Package poller schedules the polls of monitord's targets on cron specs and
// performs one complete poll of a target: list every page → diff → commit
// snapshot, health and outbox events in one transaction → wake the publisher.
//
// Three parts, each with its own Run: the Scheduler decides which target is
// due at which tick (a heap of next due instants; robfig/cron parses the
// specs and computes Next), the worker (Poller.Poll) performs one complete
// poll of a target, and the Heartbeat publishes the dead man's switch. The
// Poller joins the first two: each target is spread across its interval by
// a stable offset (see Spread), never overlaps itself (an activation that
// finds the previous poll still running or still queued is skipped and
// counted: the schedule cannot be met), and survives panics in its poll.
// Polls run through a bounded worker pool with a per-Service share, so a
// Service whose request budget cannot keep up delays only its own targets,
// and waiting polls are served first come, first served, so none starves.
//
// The scheduler's clock is injected (Config.SchedClock), so a test or a
// benchmark runs hours of schedule in seconds.
//
// The set of targets is replaceable at run time (SetTargets): SIGHUP reload
// and target discovery both use it.
package poller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/schedule"
	"github.com/monitord/monitord/internal/state"
)

// Lister lists every interaction of a target: a complete listing or an
// error. *twilio.Client implements it.
type Lister interface {
	// AppendInteractions appends the complete listing of t to dst and
	// returns the result, or an error and dst unchanged in length. dst is
	// the array of an earlier poll (see listings): an implementation must
	// not keep dst or the returned slice once it returns, since the
	// poller fills that array again. The items' strings it may share.
	AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error)
}

// Store is the per-target state the poller reads and commits, keyed by
// proxy.Target.Key. *state.DB and *state.Memory implement it; nothing
// here assumes one process owns every key: a commit names the revision it
// was computed from, and fails with state.ErrConflict when another writer
// got there first.
type Store interface {
	Load(key string) (state.TargetState, state.Revision, error)
	Commit(key string, rev state.Revision, next state.Next, msgs []event.Message) (state.Revision, error)
}

// Waker is told that a commit added events to the outbox (notify.Publisher).
type Waker interface{ Wake() }

// RenderFunc encodes an event as the message that is stored and published.
type RenderFunc func(event.Event) (event.Message, error)

// Observer receives the poller's measurements (admin.Metrics implements it).
type Observer interface {
	// PollDone reports a finished poll: its result (see the Result
	// constants), how long it waited for a worker after its activation,
	// and how long it took.
	PollDone(result string, wait, took time.Duration)
	// PollSkipped reports an activation dropped because the target's
	// previous poll was still queued or running.
	PollSkipped()
	// EventsQueued reports n events of kind committed to the outbox.
	EventsQueued(kind event.Kind, n int)
	// FailedQueued reports one failed event of a Service committed to the
	// outbox, with its error code (0 when unknown).
	FailedQueued(serviceSID string, code int)
	// ReasonFetched reports one reason fetch by its result (see the
	// Reason constants).
	ReasonFetched(result string)
}

// Poll results, as reported to the Observer.
const (
	ResultOK         = "ok"          // complete listing, committed
	ResultError      = "error"       // listing failed; health committed
	ResultOutboxFull = "outbox_full" // nothing committed: retried next time
	ResultStateError = "state_error" // state could not be read or written
	ResultConflict   = "conflict"    // another instance committed the target first (ha): nothing committed
	ResultCancelled  = "cancelled"   // shutdown or removal interrupted it
	ResultPanic      = "panic"       // recovered; the target polls again
)

// Origins of a target.
const (
	OriginConfigured = "configured"
	OriginDiscovered = "discovered"
)

// TargetSpec is one target to poll and how.
type TargetSpec struct {
	Target   proxy.Target
	Schedule string // cron spec; "" means Config.DefaultSchedule
	Lister   Lister // the client of the target's account
	// Messages fetches the reasons of failed events (the account's
	// client); nil: failed events go out without error_code.
	Messages MessageFetcher
	Account  string // the account's name, for status and logs
	Origin   string // OriginConfigured or OriginDiscovered
	Labels   map[string]string
	// Driven targets are polled only through Poll, by whoever drives them
	// (poll.mode activity: a planner per Service); the scheduler leaves
	// them out and Schedule is not used.
	Driven bool
}

// Config configures a Poller. Zero values take the defaults noted.
type Config struct {
	DefaultSchedule string         // default "@every 1m"
	Location        *time.Location // default UTC
	Spread          bool           // spread targets across their interval
	MaxSpread       time.Duration  // cap on a target's offset; 0: the whole interval

	MaxConcurrent    int           // polls in flight overall; default 64
	MaxPerService    int           // polls in flight per Service; default 8
	PollTimeout      time.Duration // bound on one listing; default 2m
	ShutdownGrace    time.Duration // in-flight polls may finish for this long; default 10s
	FailureThreshold int           // failed polls before 5xx/timeouts make target_error; default 3
	NotFoundEvery    int           // a target gone 404 is polled every Nth activation; default 10
	LogEvery         int           // a failing target logs every Nth failure; default 10
	// ReasonTimeout bounds the wait of one poll for the reasons of its
	// failed events (TargetSpec.Messages), after the listing; default 5s.
	ReasonTimeout time.Duration
	// MaxReasonWaits bounds the polls waiting for their reasons at once,
	// apart from the worker pool (a poll leaves its worker before it
	// waits); a poll that finds none free sends its failed events without
	// a reason at once (ReasonSkipped); default 256. The daemon sets what
	// the FetchMessage budgets can serve within ReasonTimeout.
	MaxReasonWaits int

	Rules        diff.Rules
	PublishKinds []event.Kind // kinds that reach the outbox; empty: all
	Render       RenderFunc   // required
	Store        Store        // required
	Waker        Waker        // may be nil
	Observer     Observer     // may be nil
	Log          *zap.Logger  // may be nil

	// Dispatch, when set, receives every due tick of a current target
	// instead of a local poll: the instance only schedules, and whoever
	// takes the tick (several instances, internal/ha: a work queue) polls it
	// through Poll. It is called from the scheduler's loop and must not
	// block. Nil: ticks are polled here (single instance).
	Dispatch func(proxy.Target, Tick)

	// OnTick is called from the scheduler's own loop once a second while
	// it is scheduling (systemd's WATCHDOG=1 hangs off it).
	OnTick func(time.Time)
	// Clock returns the time events are stamped with; default time.Now.
	Clock func() time.Time
	// SchedClock is the scheduler's clock: when targets are due and what
	// wakes it; default RealClock. Apart from Clock, so a test can freeze
	// the time of events while polls run on schedule.
	SchedClock Clock
}

func (c *Config) setDefaults() {
	if c.DefaultSchedule == "" {
		c.DefaultSchedule = "@every 1m"
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 64
	}
	if c.MaxPerService <= 0 {
		c.MaxPerService = 8
	}
	if c.MaxPerService > c.MaxConcurrent {
		c.MaxPerService = c.MaxConcurrent
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = 2 * time.Minute
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = 3
	}
	if c.NotFoundEvery <= 0 {
		c.NotFoundEvery = 10
	}
	if c.LogEvery <= 0 {
		c.LogEvery = 10
	}
	if c.ReasonTimeout <= 0 {
		c.ReasonTimeout = 5 * time.Second
	}
	if c.MaxReasonWaits <= 0 {
		c.MaxReasonWaits = 256
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.SchedClock == nil {
		c.SchedClock = RealClock{}
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
}

type nopObserver struct{}

func (nopObserver) PollDone(string, time.Duration, time.Duration) {}
func (nopObserver) PollSkipped()                                  {}
func (nopObserver) EventsQueued(event.Kind, int)                  {}
func (nopObserver) FailedQueued(string, int)                      {}
func (nopObserver) ReasonFetched(string)                          {}

// Poller schedules and performs polls. Create it with New, give it targets
// with SetTargets (before or during Run), and run it with Run.
type Poller struct {
	cfg    Config
	rules  atomic.Pointer[ruleSet] // replaced by SetRules on reload
	global chan struct{}
	// reasonWaits holds a slot per poll waiting for its reasons
	// (Config.MaxReasonWaits).
	reasonWaits chan struct{}

	mu         sync.Mutex
	entries    map[string]*entry
	perService map[string]chan struct{}
	sched      *Scheduler      // set while Run schedules
	pollCtx    context.Context // parent of every scheduled poll while running: cancelled after the shutdown grace
	runCtx     context.Context // cancelled at shutdown: queued polls give up
	stopped    bool
	cycle      cycle
	polls      sync.WaitGroup // scheduled polls in flight or waiting for a worker

	lastTick  atomic.Int64 // unix nanos
	lastCycle atomic.Int64 // unix nanos of the last complete cycle

	// reasonLog rate-limits the log line about failed events sent
	// without their reason.
	reasonLog rate.Sometimes

	// stateErr is the last state error (read, render or write) when no
	// commit has succeeded since; nil otherwise. /readyz reports it: a full
	// disk leaves the outbox readable, so only a failed write shows it.
	stateErr atomic.Pointer[error]
	// stateFailures counts state errors since the last good commit, so
	// that a state file failing on every poll (a full disk) logs its
	// first failure and then one line every LogEvery, not one per poll.
	stateFailures atomic.Int64
}

// New checks cfg and returns a Poller with no targets.
func New(cfg Config) (*Poller, error) {
	cfg.setDefaults()
	if cfg.Render == nil {
		return nil, errors.New("poller: Render is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("poller: Store is required")
	}
	if _, err := schedule.Parse(cfg.DefaultSchedule); err != nil {
		return nil, fmt.Errorf("poller: default schedule: %w", err)
	}
	p := &Poller{
		cfg:         cfg,
		global:      make(chan struct{}, cfg.MaxConcurrent),
		reasonWaits: make(chan struct{}, cfg.MaxReasonWaits),
		entries:     make(map[string]*entry),
		perService:  make(map[string]chan struct{}),
		cycle:       cycle{pending: make(map[string]struct{})},
		reasonLog:   rate.Sometimes{Interval: time.Minute},
	}
	p.SetRules(cfg.Rules, cfg.PublishKinds)
	return p, nil
}

// ruleSet is what a poll reads of the rules, swapped whole on reload.
type ruleSet struct {
	diff    diff.Rules
	publish map[event.Kind]bool // nil: every kind
}

// SetRules replaces the diff rules and the published kinds (empty: all)
// from the next poll on: a reload changes them without rescheduling.
func (p *Poller) SetRules(r diff.Rules, publishKinds []event.Kind) {
	rs := &ruleSet{diff: r}
	if len(publishKinds) > 0 {
		rs.publish = make(map[event.Kind]bool, len(publishKinds))
		for _, k := range publishKinds {
			rs.publish[k] = true
		}
	}
	p.rules.Store(rs)
}

// Run schedules every target until ctx is done. Then it stops scheduling,
// abandons polls still waiting for a worker, lets in-flight polls finish
// for Config.ShutdownGrace, cancels the rest, and returns nil once every
// poll has returned. A Poller runs once. The heartbeat is not part of it:
// see Heartbeat.
func (p *Poller) Run(ctx context.Context) error {
	pollCtx, cancelPolls := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPolls()
	s := NewScheduler(p.cfg.SchedClock, p.cfg.Location, p.activate, p.tick)

	p.mu.Lock()
	if p.stopped || p.sched != nil {
		p.mu.Unlock()
		return errors.New("poller: Run called twice")
	}
	p.sched, p.pollCtx, p.runCtx = s, pollCtx, ctx
	now := p.cfg.SchedClock.Now().In(p.cfg.Location)
	for _, e := range p.entries {
		p.scheduleLocked(e, now)
	}
	p.cycleCheckLocked(p.cfg.Clock()) // no targets: a cycle is trivially complete
	p.mu.Unlock()

	sctx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		_ = s.Run(sctx) // returns nil when sctx is done
	}()

	<-ctx.Done()
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	stopSched()
	<-schedDone
	done := make(chan struct{})
	go func() { p.polls.Wait(); close(done) }()
	grace := time.NewTimer(p.cfg.ShutdownGrace)
	select {
	case <-done:
	case <-grace.C:
		p.cfg.Log.Warn("cancelling in-flight polls after shutdown grace",
			zap.Duration("grace", p.cfg.ShutdownGrace))
		cancelPolls()
		<-done
	}
	grace.Stop()
	return nil
}

// tick runs from the scheduler's loop every second: proof that it
// schedules.
func (p *Poller) tick(time.Time) {
	now := time.Now()
	p.lastTick.Store(now.UnixNano())
	if p.cfg.OnTick != nil {
		p.cfg.OnTick(now)
	}
}

// LastTick is when the scheduler last ticked (zero before Run).
func (p *Poller) LastTick() time.Time { return unixTime(p.lastTick.Load()) }

// StateErr returns the last error reading or writing state if no commit
// has succeeded since, else nil. A full outbox is back-pressure, not a
// state error.
func (p *Poller) StateErr() error {
	if e := p.stateErr.Load(); e != nil {
		return *e
	}
	return nil
}

// LastCycle is when every current target had last completed a poll (ok or
// failed) since the previous cycle; zero until the first cycle completes.
func (p *Poller) LastCycle() time.Time { return unixTime(p.lastCycle.Load()) }

func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// serviceSem returns the semaphore bounding polls in flight on a Service.
func (p *Poller) serviceSem(service string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.perService[service]
	if !ok {
		s = make(chan struct{}, p.cfg.MaxPerService)
		p.perService[service] = s
	}
	return s
}

// acquire takes a worker: first the Service's share, then a global slot.
// Channel senders are queued first in, first out, so the polls that have
// waited longest go first and no target starves when a Service's budget
// cannot keep up; a saturated Service holds at most MaxPerService global
// slots, so the other Services keep their pace.
// It gives up when ctx is done or abort is closed (abort may be nil).
func (p *Poller) acquire(ctx context.Context, abort <-chan struct{}, service string) (release func(), err error) {
	s := p.serviceSem(service)
	select {
	case s <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-abort:
		return nil, context.Canceled
	}
	select {
	case p.global <- struct{}{}:
	case <-ctx.Done():
		<-s
		return nil, ctx.Err()
	case <-abort:
		<-s
		return nil, context.Canceled
	}
	return func() { <-p.global; <-s }, nil
}

// cycle tracks which targets have not completed a poll in the current
// cycle; when none is left, a cycle is complete.
type cycle struct {
	pending map[string]struct{}
}

// cycleDoneLocked records that key completed a poll.
func (p *Poller) cycleDoneLocked(key string, now time.Time) {
	delete(p.cycle.pending, key)
	p.cycleCheckLocked(now)
}

func (p *Poller) cycleCheckLocked(now time.Time) {
	if len(p.cycle.pending) > 0 {
		return
	}
	p.lastCycle.Store(now.UnixNano())
	for k := range p.entries {
		p.cycle.pending[k] = struct{}{}
	}
}
