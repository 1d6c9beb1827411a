// Package discover finds the targets of a whole Proxy Service by itself: on a
// cron schedule it lists the Service's sessions, and the participants of each
// open one, and reports what it saw to each entry's Sink (a Tracker of the
// target set, internal/targets, which applies the grace period and decides
// what is polled). Proxy sessions are short-lived, so a hand-written target
// list is out of date within the hour; discovery follows them instead.
//
// Three promises, each tested:
//   - A refresh either sees everything (every sessions page, every
//     participants list it needed) or reports nothing: an error keeps the
//     previous set whole, so an API hiccup never drops a target.
//   - What a refresh reports says which sessions are live and which were
//     first seen already ended, with their end; a target that is in neither
//     has vanished. The Sink turns that into the set polled, grace included.
//   - Discovery's requests go through the same twilio.Client as the polls,
//     so they share the per-Service rate budget.
//
// Discovery keeps only the planning of its requests: which sessions'
// participants to list. That depends on the grace period (an ended session
// is listed only while its targets would still be followed: Sink.InGrace)
// and on what the Sink still tracks (Saw's answer), never on a grace rule
// of its own.
package discover

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/schedule"
)

// Defaults for an Entry's zero fields.
const (
	DefaultSchedule = "@every 5m"
	// DefaultParticipantRefreshEvery re-lists the participants of an
	// already-known, complete session every 12th refresh (an hour at the
	// default schedule). See Entry.ParticipantRefreshEvery.
	DefaultParticipantRefreshEvery = 12
	// DefaultConcurrency is how many participants lists one refresh keeps in
	// flight: enough to use the Service's rate budget despite round-trip
	// latency; the client's rate limiter and in-flight cap still govern.
	DefaultConcurrency = 4
)

// Lister is what discovery needs of the API: *twilio.Client satisfies it.
// Both calls must return a complete listing (every page) or an error.
//
// Errors are expected to name their listing ("list sessions: …"), as the
// twilio client's do: discovery adds only the Service and session.
type Lister interface {
	ListSessions(ctx context.Context, serviceSID string) ([]proxy.Session, error)
	ListParticipants(ctx context.Context, serviceSID, sessionSID string) ([]proxy.Participant, error)
}

// Sink is the target set's half of one entry (*targets.Tracker satisfies
// it): it applies the grace period to what each complete refresh saw.
type Sink interface {
	// InGrace reports whether a session that ended at ended is still in its
	// grace period at now: only then are the participants of an ended
	// session that is not tracked listed.
	InGrace(ended, now time.Time) bool
	// Saw takes one complete refresh at now: the targets of live sessions,
	// and the targets of sessions first seen already ended with their end.
	// It returns what the entry tracks afterwards (zero time: live; else
	// in grace since then) and how many targets were dropped.
	Saw(now time.Time, live []proxy.Target, ended map[proxy.Target]time.Time) (tracked map[proxy.Target]time.Time, dropped int)
}

// Entry is one Service to discover, as the config's `discover` entry says.
type Entry struct {
	// ServiceSID is the Service (KS…) whose sessions are followed.
	ServiceSID string
	// Source is what to poll for each discovered session: its participants'
	// MessageInteractions (proxy.SourceParticipant, the default) or the
	// session's Interactions (proxy.SourceSession).
	Source proxy.Source
	// Statuses, when not empty, are the session statuses followed (e.g.
	// "open", "in-progress"). Sessions that are closed or failed are never
	// followed as live whatever this says. Empty: every other status.
	Statuses []string
	// UniqueNamePrefix, when not empty, keeps only sessions whose unique_name
	// starts with it.
	UniqueNamePrefix string
	// Schedule is the refresh cron spec (seconds optional, descriptors such
	// as "@every 5m"); "" is DefaultSchedule.
	Schedule string
	// Sink applies the grace period to this entry's refreshes; required.
	Sink Sink
	// ParticipantRefreshEvery: participants of a known session are re-listed
	// only when the session is new, has fewer than two participants (Proxy's
	// maximum, so a session still being set up), or every Nth refresh. 1 re-lists every refresh; 0 is
	// DefaultParticipantRefreshEvery.
	ParticipantRefreshEvery int
}

// Config configures a Discoverer.
type Config struct {
	Entries []Entry
	// Lister is the API client; use the same *twilio.Client as the poller
	// so discovery's requests share each Service's rate budget.
	Lister Lister
	// Observer receives one RefreshResult per refresh; may be nil.
	Observer Observer
	// Logger may be nil.
	Logger *zap.Logger
	// Now is the clock a refresh is dated with (the Sink measures the grace
	// period from it); nil is time.Now.
	Now func() time.Time
	// Location is the time zone of the cron schedules; nil is UTC.
	Location *time.Location
	// Concurrency is participants lists in flight per refresh; 0 is
	// DefaultConcurrency.
	Concurrency int
}

// Discoverer refreshes every entry on its schedule. Create it with New.
type Discoverer struct {
	cfg     Config
	log     *zap.Logger
	entries []*entryState
}

// New checks cfg and returns a Discoverer. Every bad entry is reported,
// each naming its index and field.
func New(cfg Config) (*Discoverer, error) {
	if cfg.Lister == nil {
		return nil, errors.New("discover: lister is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	d := &Discoverer{cfg: cfg, log: log}
	var errs []error
	for i, e := range cfg.Entries {
		st, err := newEntryState(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("discover[%d].%w", i, err))
			continue
		}
		d.entries = append(d.entries, st)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

func newEntryState(e Entry) (*entryState, error) {
	if e.Source == "" {
		e.Source = proxy.SourceParticipant
	}
	if e.Schedule == "" {
		e.Schedule = DefaultSchedule
	}
	if e.ParticipantRefreshEvery == 0 {
		e.ParticipantRefreshEvery = DefaultParticipantRefreshEvery
	}
	if err := proxy.CheckSID("service_sid", "KS", e.ServiceSID); err != nil {
		return nil, err
	}
	if !e.Source.Valid() {
		return nil, fmt.Errorf("source: %q is not %q or %q", e.Source, proxy.SourceParticipant, proxy.SourceSession)
	}
	if e.ParticipantRefreshEvery < 0 {
		return nil, fmt.Errorf("participant_refresh_every: %d is negative", e.ParticipantRefreshEvery)
	}
	sched, err := schedule.Parse(e.Schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	if e.Sink == nil {
		return nil, errors.New("sink is nil")
	}
	return &entryState{
		entry:    e,
		sched:    sched,
		sessions: map[string]*sessionCache{},
		targets:  map[proxy.Target]time.Time{},
		failLog:  rate.Sometimes{Interval: time.Minute},
	}, nil
}

// Run refreshes every entry at once, then on its schedule, until ctx is
// done. A slow refresh delays that entry's next one rather than overlapping
// it. Failed refreshes are logged and observed; Run returns nil when ctx is
// done.
func (d *Discoverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, st := range d.entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.loop(ctx, st)
		}()
	}
	wg.Wait()
	return nil
}

func (d *Discoverer) loop(ctx context.Context, st *entryState) {
	for {
		// Errors are already logged and observed by refresh.
		_, _ = d.refresh(ctx, st)
		// The schedule runs on the wall clock; Now only measures grace. A
		// spec without its own CRON_TZ= runs in the time's zone.
		now := time.Now().In(d.cfg.Location)
		next := st.sched.Next(now)
		timer := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// RefreshService refreshes, now, the entry of serviceSID (the config has
// at most one per Service) and returns the complete sessions list it read:
// in poll.mode activity that list is also the Service's activity index,
// so one refresh serves both. The list is returned even when the refresh
// failed after reading it (a participants list failed): the index does
// not depend on participants. Without an entry for serviceSID it returns
// an error.
func (d *Discoverer) RefreshService(ctx context.Context, serviceSID string) ([]proxy.Session, error) {
	for _, st := range d.entries {
		if st.entry.ServiceSID != serviceSID {
			continue
		}
		return d.refresh(ctx, st)
	}
	return nil, fmt.Errorf("discover: no entry for Service %s", serviceSID)
}

// Refresh refreshes every entry once, now, in order. It returns the
// refreshes' errors joined; an entry whose refresh failed keeps its
// previous set.
func (d *Discoverer) Refresh(ctx context.Context) error {
	var errs []error
	for _, st := range d.entries {
		_, err := d.refresh(ctx, st)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Seed gives the entry of serviceSID the set another instance's refresh
// left (with ha: the Service's previous owner's, read from the shared
// bucket; zero time: live, else in grace since), so that this instance's
// next refresh plans from it rather than cold: the participants of every
// session with live targets are taken as listed (spread over the
// re-listing cycle, as a first listing is), and sessions it tracks are
// not taken for sessions first seen ended. A session the set names with
// participants other than those cached replaces the cache. Without an
// entry for serviceSID it returns an error.
func (d *Discoverer) Seed(serviceSID string, tracked map[proxy.Target]time.Time) error {
	for _, st := range d.entries {
		if st.entry.ServiceSID != serviceSID {
			continue
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		st.seedLocked(tracked)
		return nil
	}
	return fmt.Errorf("discover: no entry for Service %s", serviceSID)
}

func (st *entryState) seedLocked(tracked map[proxy.Target]time.Time) {
	st.targets = make(map[proxy.Target]time.Time, len(tracked))
	live := map[string]bool{}
	parts := map[string][]string{}
	for t, since := range tracked {
		st.targets[t] = since
		if !since.IsZero() {
			continue
		}
		live[t.SessionSID] = true
		if t.Source == proxy.SourceParticipant {
			parts[t.SessionSID] = append(parts[t.SessionSID], t.ParticipantSID)
		}
	}
	st.live = live
	if st.entry.Source != proxy.SourceParticipant {
		return
	}
	for sid, ps := range parts {
		slices.Sort(ps)
		if c := st.sessions[sid]; c != nil && slices.Equal(slices.Sorted(slices.Values(c.participants)), ps) {
			continue
		}
		st.sessions[sid] = &sessionCache{participants: ps, listedAt: st.refreshes - phase(sid, st.entry.ParticipantRefreshEvery)}
	}
}
