package poller

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state"
)

// poll performs one complete poll of e: list every page, diff against the
// stored snapshot, and commit snapshot, health and events in one
// transaction. A failed listing commits health only (and a target_error on
// the transition); it never moves the snapshot. ctx is the poll's parent:
// cancelled at shutdown (after the grace) or when the target is removed.
// free gives the poll's worker back; poll calls it before it waits for
// failure reasons, which need no worker (see addReasons).
func (p *Poller) poll(ctx context.Context, e *entry, free func()) string {
	spec := e.spec.Load()
	t := spec.Target
	log := p.cfg.Log.With(zap.String("target", e.key))

	ts, rev, err := p.cfg.Store.Load(e.key)
	if err != nil {
		p.stateFailed(log, "load state", err)
		return ResultStateError
	}
	lctx, cancel := context.WithTimeout(ctx, p.cfg.PollTimeout)
	buf := getListing()
	listing, err := spec.Lister.AppendInteractions(lctx, t, buf)
	cancel()
	now := p.cfg.Clock()
	if err != nil {
		putListing(listing)
		if ctx.Err() != nil {
			// Shutdown or removal interrupted the listing: not the target's fault.
			return ResultCancelled
		}
		return p.pollFailed(log, e, rev, ts.Health, err, now)
	}

	changes, next := diff.Diff(ts.Snapshot, listing, now, p.rules.Load().diff)
	events := event.FromChanges(t, now, changes)
	// Nothing below needs the listing's array: diff copied what the next
	// snapshot and the changes need. Pooled now, before a reason wait, so
	// that a poll waiting for its reasons does not pin it.
	items := len(listing)
	putListing(listing)
	// Before rendering: the reason is part of the committed event, so a
	// replay after a crash, or another instance's copy, is the same event.
	if !p.addReasons(ctx, log, spec.Messages, events, free) {
		return ResultCancelled // nothing committed: derived again next time
	}
	h, rec := succeeded(t, ts.Health, now)
	if rec != nil {
		// The target was reachable before any change seen in this listing.
		events = append([]event.Event{*rec}, events...)
	}
	msgs, kinds, err := p.render(events)
	if err != nil {
		log.Error("render events", zap.Error(err))
		return ResultStateError
	}
	// An unchanged listing passes no snapshot: the store then has nothing
	// to write, and nothing is encoded to find that out.
	if _, err := p.cfg.Store.Commit(e.key, rev, state.Next{Snapshot: state.SnapshotIfChanged(ts.Snapshot, next), Health: h}, msgs); err != nil {
		return p.commitFailed(log, err)
	}
	p.committed(e, h, "", kinds, len(msgs), now)
	if kinds[event.Failed] > 0 {
		for i := range events {
			if events[i].Kind == event.Failed {
				p.cfg.Observer.FailedQueued(t.ServiceSID, events[i].ErrorCode)
			}
		}
	}
	if rec != nil {
		log.Info("target recovered", zap.Int("failures", ts.Health.ConsecutiveFailures),
			zap.Time("since", ts.Health.FailingSince))
	}
	log.Debug("poll ok", zap.Int("interactions", items), zap.Int("events", len(msgs)))
	return ResultOK
}

// listings holds the items arrays of finished polls for the next ones to
// fill again. At scale the array was about a third of what a poll
// allocated (200 interactions: about 70 KB), all garbage a moment later. A
// sync.Pool rather than a slice per target: it holds about one array per
// poll in flight, not one per target, so RSS does not grow with targets.
var listings sync.Pool

// maxPooledItems bounds the arrays kept: a rare target with a huge listing
// does not pin its array for every later poll (4,096 items are 1.3 MB).
const maxPooledItems = 4096

func getListing() []proxy.Interaction {
	if b, ok := listings.Get().(*[]proxy.Interaction); ok {
		return (*b)[:0]
	}
	return nil
}

// putListing clears l up to its capacity, so that a pooled array pins no
// page of text of the listing it held (an error may have left items past
// its length), and pools it.
func putListing(l []proxy.Interaction) {
	if cap(l) == 0 || cap(l) > maxPooledItems {
		return
	}
	l = l[:cap(l)]
	clear(l)
	l = l[:0]
	listings.Put(&l)
}

// pollFailed commits the health of a failed poll. Logging is rate-limited:
// the first failure, the transition to failing, then every LogEvery-th.
func (p *Poller) pollFailed(log *zap.Logger, e *entry, rev state.Revision, prev state.Health, lerr error, now time.Time) string {
	t := e.spec.Load().Target
	h, ev := failed(t, prev, lerr, now, p.cfg.FailureThreshold)
	f, _ := classify(lerr)
	var events []event.Event
	if ev != nil {
		events = append(events, *ev)
	}
	msgs, kinds, err := p.render(events)
	if err != nil {
		log.Error("render events", zap.Error(err))
		return ResultStateError
	}
	if _, err := p.cfg.Store.Commit(e.key, rev, state.Next{Health: h}, msgs); err != nil {
		return p.commitFailed(log, err)
	}
	p.committed(e, h, f.class, kinds, len(msgs), now)
	fields := []zap.Field{zap.String("class", f.class), zap.Int("failures", h.ConsecutiveFailures), zap.Error(lerr)}
	switch {
	case ev != nil:
		log.Error("target failing", fields...)
	case h.ConsecutiveFailures == 1:
		log.Warn("poll failed", fields...)
	case p.logRepeat(h.ConsecutiveFailures):
		log.Warn("target still failing", fields...)
	default:
		log.Debug("poll failed", fields...)
	}
	return ResultError
}

// commitFailed handles a commit that committed nothing. A full outbox is
// back-pressure, not loss: the snapshot did not move, so the next poll
// derives the same events again once the publisher has drained. A
// conflict (another writer committed the target since this poll loaded
// it) is not a state failure either: with several instances sharing the
// KV store (docs/ha.md), a task delivered twice is polled twice, the first
// commit wins and only its events are published; the next poll starts from
// what it wrote. It must not make /readyz fail, so it is not a StateErr.
func (p *Poller) commitFailed(log *zap.Logger, err error) string {
	if errors.Is(err, state.ErrOutboxFull) {
		log.Warn("outbox full: poll not committed, retried next time", zap.Error(err))
		return ResultOutboxFull
	}
	if errors.Is(err, state.ErrConflict) {
		log.Debug("poll not committed: another writer committed the target first", zap.Error(err))
		return ResultConflict
	}
	p.stateFailed(log, "commit state", err)
	return ResultStateError
}

// logRepeat reports whether the n-th failure in a row (n > 1) is logged at
// its own level: every LogEvery-th is, the others only at debug. A failure
// that repeats on every poll is then one line per LogEvery polls, while
// metrics and health still count each one.
func (p *Poller) logRepeat(n int) bool { return n%p.cfg.LogEvery == 0 }

// stateFailed records err for StateErr until the next successful commit,
// and logs it: the first state error since a good commit at error level,
// then (logRepeat) a line with the count so far.
func (p *Poller) stateFailed(log *zap.Logger, what string, err error) {
	p.stateErr.Store(&err)
	n := int(p.stateFailures.Add(1))
	switch {
	case n == 1:
		log.Error(what, zap.Error(err))
	case p.logRepeat(n):
		log.Error(what+": still failing", zap.Int("failures", n), zap.Error(err))
	default:
		log.Debug(what, zap.Int("failures", n), zap.Error(err))
	}
}

// committed updates the in-memory view after a commit and wakes the
// publisher.
func (p *Poller) committed(e *entry, h state.Health, class string, kinds map[event.Kind]int, n int, now time.Time) {
	p.stateErr.Store(nil)
	if n := p.stateFailures.Swap(0); n > 0 {
		p.cfg.Log.Info("state commits succeed again", zap.Int64("failures", n))
	}
	e.mu.Lock()
	e.polled, e.health = true, h
	if class != "" {
		e.class = class
	} else if !h.Failing {
		e.class = ""
	}
	e.mu.Unlock()
	for k, c := range kinds {
		p.cfg.Observer.EventsQueued(k, c)
	}
	if n > 0 && p.cfg.Waker != nil {
		p.cfg.Waker.Wake()
	}
	p.mu.Lock()
	if p.entries[e.key] == e {
		p.cycleDoneLocked(e.key, now)
	}
	p.mu.Unlock()
}

// render encodes the events whose kind is published.
func (p *Poller) render(events []event.Event) ([]event.Message, map[event.Kind]int, error) {
	if len(events) == 0 {
		return nil, nil, nil
	}
	msgs := make([]event.Message, 0, len(events))
	kinds := make(map[event.Kind]int)
	publish := p.rules.Load().publish
	for _, ev := range events {
		if publish != nil && !publish[ev.Kind] {
			continue
		}
		m, err := p.cfg.Render(ev)
		if err != nil {
			return nil, nil, err
		}
		msgs = append(msgs, m)
		kinds[ev.Kind]++
	}
	return msgs, kinds, nil
}

// Results counts the outcome of PollAll.
type Results map[string]int

// PollAll polls every current target once, now, through the same worker
// pool as scheduled polls, and returns the results by kind. It is what
// `monitord once` runs; it needs no Run.
func (p *Poller) PollAll(ctx context.Context) Results {
	p.mu.Lock()
	list := make([]*entry, 0, len(p.entries))
	for _, e := range p.entries {
		list = append(list, e)
	}
	p.mu.Unlock()

	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res = make(Results)
	)
	for _, e := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.Poll(ctx, e.spec.Load().Target, Tick{})
			if err != nil {
				r = ResultCancelled // removed by SetTargets meanwhile
			}
			mu.Lock()
			res[r]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}
