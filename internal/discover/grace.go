package discover

import (
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

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
