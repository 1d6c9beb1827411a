package poller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/schedule"
	"github.com/monitord/monitord/internal/state"
)

// entry is one scheduled target.
type entry struct {
	key      string
	spec     atomic.Pointer[TargetSpec] // replaced in place on reload
	schedule string                     // the spec in force; guarded by Poller.mu
	sched    cron.Schedule              // parsed, not yet spread; guarded by Poller.mu
	// gone is done once the target is removed: every poll of it, scheduled
	// or through Poll, before Run or after, is cancelled then.
	gone   context.Context
	remove context.CancelFunc

	// running is held from activation to the end of the poll, waiting for
	// a worker included; skipIfRunning TryLocks it.
	running sync.Mutex
	runs    atomic.Uint64 // activations, for NotFoundEvery

	mu     sync.Mutex // guards the fields below
	polled bool
	health state.Health
	class  string // error class of the last failure
}

// TargetStatus is what /status shows about a target.
type TargetStatus struct {
	Key            string `json:"key"`
	Source         string `json:"source"`
	ServiceSID     string `json:"service_sid"`
	SessionSID     string `json:"session_sid"`
	ParticipantSID string `json:"participant_sid,omitempty"`
	Account        string `json:"account,omitempty"`
	Origin         string `json:"origin"`
	Schedule       string `json:"schedule"` // "" when driven (poll.mode activity)
	// Class is why an activity-driven target is polled when it is (new,
	// hot or cold; poll.mode activity); the poller does not know it: the
	// status document fills it in.
	Class               string            `json:"class,omitempty"`
	Labels              map[string]string `json:"labels,omitempty"`
	Health              string            `json:"health"` // unknown, healthy, failing
	ErrorClass          string            `json:"error_class,omitempty"`
	LastAttempt         time.Time         `json:"last_attempt,omitzero"`
	LastSuccess         time.Time         `json:"last_success,omitzero"`
	FailingSince        time.Time         `json:"failing_since,omitzero"`
	ConsecutiveFailures int               `json:"consecutive_failures,omitempty"`
	LastError           string            `json:"last_error,omitempty"`
}

// Health values of TargetStatus.
const (
	HealthUnknown = "unknown" // not polled since start
	HealthHealthy = "healthy"
	HealthFailing = "failing"
)

// SetTargets replaces the set of targets, before or while Run runs. It
// validates every spec first and changes nothing if one is bad. Targets
// already known keep their state and their skip lock; a changed schedule
// reschedules them; a changed account client or labels take effect at the
// next poll. Removed targets are unscheduled, and their in-flight poll is
// cancelled and awaited before SetTargets returns, so that the caller (the
// target set, internal/targets, the one path that deletes a target's
// state) can then forget their state without a late commit bringing it
// back.
func (p *Poller) SetTargets(specs []TargetSpec) error {
	now := p.cfg.SchedClock.Now().In(p.cfg.Location)
	type parsed struct {
		spec     TargetSpec
		schedule string
		sched    cron.Schedule
	}
	next := make(map[string]parsed, len(specs))
	var errs []error
	for i, s := range specs {
		if err := s.Target.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("target %d: %w", i, err))
			continue
		}
		key := s.Target.Key()
		if _, dup := next[key]; dup {
			errs = append(errs, fmt.Errorf("target %d: duplicate %s", i, key))
			continue
		}
		if s.Lister == nil {
			errs = append(errs, fmt.Errorf("target %s: no lister", key))
			continue
		}
		spec := s.Schedule
		if spec == "" {
			spec = p.cfg.DefaultSchedule
		}
		sched, err := schedule.Parse(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", key, err))
			continue
		}
		if s.Origin == "" {
			s.Origin = OriginConfigured
		}
		next[key] = parsed{s, spec, sched}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set targets: %w", err)
	}

	var removed []*entry
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return errors.New("set targets: poller stopped")
	}
	for key, e := range p.entries {
		if _, keep := next[key]; !keep {
			removed = append(removed, e)
			delete(p.entries, key)
			delete(p.cycle.pending, key)
			e.remove()
			if p.sched != nil {
				p.sched.Remove(key)
			}
		}
	}
	var added, rescheduled int
	for key, n := range next {
		spec := n.spec
		e, ok := p.entries[key]
		if !ok {
			e = &entry{key: key, schedule: n.schedule, sched: n.sched}
			e.gone, e.remove = context.WithCancel(context.Background())
			e.spec.Store(&spec)
			p.entries[key] = e
			p.cycle.pending[key] = struct{}{}
			added++
			if p.sched != nil {
				p.scheduleLocked(e, now)
			}
			continue
		}
		was := e.spec.Swap(&spec)
		switch {
		case was.Driven != spec.Driven && p.sched != nil:
			// Driven from now on, or no longer: the scheduler takes it
			// up or leaves it.
			e.schedule, e.sched = n.schedule, n.sched
			rescheduled++
			if spec.Driven {
				p.sched.Remove(key)
			} else {
				p.sched.Set(key, p.spread(e, now))
			}
		case e.schedule != n.schedule:
			e.schedule, e.sched = n.schedule, n.sched
			rescheduled++
			if p.sched != nil && !spec.Driven {
				p.sched.Set(key, p.spread(e, now))
			}
		}
	}
	if p.sched != nil && len(removed) > 0 {
		p.cycleCheckLocked(p.cfg.Clock())
	}
	p.mu.Unlock()

	for _, e := range removed {
		// Wait out a poll in flight (now cancelled), so it cannot commit
		// after the caller forgets the target's state; the lock stays
		// held: the entry never runs again.
		e.running.Lock()
	}
	p.cfg.Log.Info("targets set", zap.Int("targets", len(next)), zap.Int("added", added),
		zap.Int("removed", len(removed)), zap.Int("rescheduled", rescheduled))
	return nil
}

// scheduleLocked adds e to the running scheduler, unless it is driven.
// p.mu is held.
func (p *Poller) scheduleLocked(e *entry, now time.Time) {
	if !e.spec.Load().Driven {
		p.sched.Set(e.key, p.spread(e, now))
	}
}

func (p *Poller) spread(e *entry, now time.Time) cron.Schedule {
	if !p.cfg.Spread {
		return Aligned(e.sched)
	}
	return Spread(e.key, e.sched, now, p.cfg.MaxSpread)
}

// Status returns every target's status, sorted by key.
func (p *Poller) Status() []TargetStatus {
	type item struct {
		e        *entry
		schedule string
	}
	p.mu.Lock()
	list := make([]item, 0, len(p.entries))
	for _, e := range p.entries {
		list = append(list, item{e, e.schedule})
	}
	p.mu.Unlock()
	out := make([]TargetStatus, 0, len(list))
	for _, it := range list {
		out = append(out, it.e.status(it.schedule))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (e *entry) status(schedule string) TargetStatus {
	spec := e.spec.Load()
	if spec.Driven {
		schedule = ""
	}
	t := spec.Target
	st := TargetStatus{
		Key: e.key, Source: string(t.Source), ServiceSID: t.ServiceSID, SessionSID: t.SessionSID,
		ParticipantSID: t.ParticipantSID, Account: spec.Account, Origin: spec.Origin,
		Schedule: schedule, Labels: spec.Labels, Health: HealthUnknown,
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.polled {
		return st
	}
	h := e.health
	st.Health = HealthHealthy
	if h.Failing {
		st.Health = HealthFailing
		st.ErrorClass = e.class
	}
	st.LastAttempt, st.LastSuccess, st.FailingSince = h.LastAttempt, h.LastSuccess, h.FailingSince
	st.ConsecutiveFailures, st.LastError = h.ConsecutiveFailures, h.LastError
	return st
}

// Summary counts targets by health.
type Summary struct {
	Targets, Healthy, Failing, Unknown int
	LastCycle                          time.Time
}

// Summary returns the counts of targets by health.
func (p *Poller) Summary() Summary {
	p.mu.Lock()
	list := make([]*entry, 0, len(p.entries))
	for _, e := range p.entries {
		list = append(list, e)
	}
	p.mu.Unlock()
	s := Summary{Targets: len(list), LastCycle: p.LastCycle()}
	for _, e := range list {
		e.mu.Lock()
		switch {
		case !e.polled:
			s.Unknown++
		case e.health.Failing:
			s.Failing++
		default:
			s.Healthy++
		}
		e.mu.Unlock()
	}
	return s
}
