package targets

import (
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// Tracker applies the grace period to one discover entry's refreshes: it
// is the entry's half of the target set. Discovery reports what a complete
// refresh saw (Saw); the Tracker decides which of the entry's targets are
// still tracked, live or in grace, and hands the Service's set to the Set,
// which polls it and forgets the state of the targets that left it.
//
// It also answers the one question discovery needs to plan its requests
// (InGrace): whether an ended session it does not track is still worth
// listing participants for.
type Tracker struct {
	set   *Set
	svc   string
	grace time.Duration
	// tracked is the entry's committed set, guarded by set.mu: zero time
	// while live, else the instant it stopped being live (its grace runs
	// from there).
	tracked map[proxy.Target]time.Time
}

// Tracker returns the Tracker of one discover entry watching svc, whose
// ended and vanished sessions' targets are still polled for grace. Two
// entries of one Service each get their own (with their own grace); the
// Service's discovered set is the union of theirs.
func (s *Set) Tracker(svc string, grace time.Duration) (*Tracker, error) {
	if grace < 0 {
		return nil, fmt.Errorf("grace: %s is negative", grace)
	}
	t := &Tracker{set: s, svc: svc, grace: grace, tracked: map[proxy.Target]time.Time{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trackers[svc] = append(s.trackers[svc], t)
	return t, nil
}

// InGrace reports whether a session that ended at ended is still in its
// grace period at now. Discovery lists the participants of an ended
// session it does not track only then: after a restart, its targets are
// followed for the rest of their grace.
func (t *Tracker) InGrace(ended, now time.Time) bool {
	return now.Sub(ended) < t.grace
}

// Saw takes one complete refresh of the entry at now: live are the targets
// of sessions followed as live; ended maps each target of a session first
// seen already ended (after a restart, typically) to the session's end.
// A tracked target in neither has vanished (session closed or gone,
// participant removed, filtered out) and starts or continues its grace.
//
// It commits the grace rule's outcome, hands the Service's discovered set
// to the Set and returns what the entry tracks now (zero time: live; else
// the instant its grace started) and how many targets were dropped, their
// grace over. The returned map is the caller's.
func (t *Tracker) Saw(now time.Time, live []proxy.Target, ended map[proxy.Target]time.Time) (tracked map[proxy.Target]time.Time, dropped int) {
	seen := make(map[proxy.Target]sighting, len(live)+len(ended))
	for x, at := range ended {
		seen[x] = sighting{endedAt: at}
	}
	for _, x := range live {
		seen[x] = sighting{live: true}
	}
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	next, dropped := nextSet(t.tracked, seen, now, t.grace)
	t.tracked = next
	// Two entries of one Service deliver under s.mu, so never out of order.
	s.setDiscoveredLocked(t.svc, s.unionLocked(t.svc), true)
	return maps.Clone(next), dropped
}

// Tracked returns what the entry tracks now (zero time: live; else the
// instant its grace started): with ha, the owner of the Service writes it
// into the shared bucket after each refresh. The map is the caller's.
func (t *Tracker) Tracked() map[proxy.Target]time.Time {
	t.set.mu.Lock()
	defer t.set.mu.Unlock()
	return maps.Clone(t.tracked)
}

// Adopt replaces what the entry tracks with another instance's decision
// (with ha, the Service owner's last refresh, read from the shared bucket)
// and polls it. It applies no grace rule and forgets no state: dropping a
// target, and forgetting its state, is decided once, by the Service's
// owner in Saw; an instance adopting a set that lags behind the owner's
// must not delete what the owner committed since. An owner that adopts
// the set before it refreshes starts its grace timers where the previous
// owner left them.
func (t *Tracker) Adopt(tracked map[proxy.Target]time.Time) {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	t.tracked = maps.Clone(tracked)
	if t.tracked == nil {
		t.tracked = map[proxy.Target]time.Time{}
	}
	s.setDiscoveredLocked(t.svc, s.unionLocked(t.svc), false)
}

// unionLocked is svc's discovered set: every target one of its entries
// tracks, by key. s.mu is held.
func (s *Set) unionLocked(svc string) []proxy.Target {
	seen := map[proxy.Target]bool{}
	var union []proxy.Target
	for _, t := range s.trackers[svc] {
		for x := range t.tracked {
			if !seen[x] {
				seen[x] = true
				union = append(union, x)
			}
		}
	}
	sort.Slice(union, func(i, j int) bool { return union[i].Key() < union[j].Key() })
	return union
}

// sighting is what one complete refresh saw of one target.
type sighting struct {
	// live: the target's session is open (and passes the entry's filter) and,
	// for the participant source, the participant is still in it.
	live bool
	// endedAt is set for a target of a session that had already ended when it
	// was first seen (after a restart, typically): the session's date_ended.
	// Such a target is still followed for the rest of its grace period,
	// because its late delivery receipts are exactly what a restart would
	// otherwise miss.
	endedAt time.Time
}

// nextSet is the grace rule, pure: from the targets tracked after the last
// committed refresh (value: the instant the target stopped being live; zero
// while it is live) and what a complete refresh saw, it returns the targets
// tracked now, and how many were dropped.
//
//   - A target seen live is tracked as live, whatever it was before (a
//     participant re-added, a session seen again after a listing glitch).
//   - A tracked target not seen live (session closed or failed, gone from the
//     list, participant removed, no longer passing the filter) keeps the
//     instant it was first missed (now, if it was live until this refresh)
//     and is dropped once grace has passed since then. The instant is when
//     monitord noticed, not the session's date_ended: never drop earlier
//     than the operator asked, whatever Twilio's clock says.
//   - An untracked target seen only with endedAt is tracked from endedAt
//     (clamped to now) if grace has not yet passed; otherwise ignored.
//
// A grace of zero drops a target at the first refresh that misses it.
func nextSet(prev map[proxy.Target]time.Time, seen map[proxy.Target]sighting, now time.Time, grace time.Duration) (next map[proxy.Target]time.Time, dropped int) {
	next = make(map[proxy.Target]time.Time, len(prev))
	for t, s := range seen {
		if s.live {
			next[t] = time.Time{}
		}
	}
	for t, since := range prev {
		if _, live := next[t]; live {
			continue
		}
		if since.IsZero() {
			since = now
		}
		if now.Sub(since) >= grace {
			dropped++
			continue
		}
		next[t] = since
	}
	for t, s := range seen {
		if s.live || s.endedAt.IsZero() {
			continue
		}
		if _, tracked := prev[t]; tracked {
			continue
		}
		since := s.endedAt
		if since.After(now) {
			since = now
		}
		if now.Sub(since) < grace {
			next[t] = since
		}
	}
	return next, dropped
}
