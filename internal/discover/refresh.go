package discover

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/schedule"
)

// entryState is one entry's committed view, touched by one refresh at a time.
type entryState struct {
	entry Entry
	sched schedule.Schedule

	mu sync.Mutex // one refresh at a time: Run's loop and Refresh
	// failLog rate-limits the warning of failed refreshes: in poll.mode
	// activity the sessions index retries every 10 s while it fails.
	failLog   rate.Sometimes
	refreshes int // committed refreshes so far
	// sessions caches the participants of live sessions, so a refresh lists
	// them again only when needed (see Entry.ParticipantRefreshEvery).
	sessions map[string]*sessionCache
	// live is the set of sessions followed as live at the last commit.
	live map[string]bool
	// targets is what the Sink said it tracks after the last commit: zero
	// time while live, else the instant its grace started. Only the
	// sessions it names matter here: an ended one is not listed again.
	targets map[proxy.Target]time.Time
	// listed is the complete sessions list the refresh in progress read,
	// for RefreshService; nil between refreshes.
	listed []proxy.Session
}

type sessionCache struct {
	participants []string // SIDs of participants not deleted
	listedAt     int      // entryState.refreshes when listed
}

// ended reports whether a session status is final: its targets are no
// longer live (the Sink keeps them for their grace period).
func ended(status string) bool { return status == "closed" || status == "failed" }

// follows reports whether a session in this status is followed as live.
func (e Entry) follows(status string) bool {
	if ended(status) {
		return false
	}
	if len(e.Statuses) == 0 {
		return true
	}
	for _, s := range e.Statuses {
		if s == status {
			return true
		}
	}
	return false
}

// plan is one session a refresh takes targets from.
type plan struct {
	session proxy.Session
	// endedAt is zero for a live session, else the end of a session first
	// seen already ended.
	endedAt time.Time
}

// refresh runs one refresh of st, observes and logs it. It returns the
// sessions list it read, if it got that far, for RefreshService.
func (d *Discoverer) refresh(ctx context.Context, st *entryState) (listed []proxy.Session, _ error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	start := time.Now()
	res := RefreshResult{ServiceSID: st.entry.ServiceSID}
	err := d.refreshLocked(ctx, st, d.cfg.Now(), &res)
	listed, st.listed = st.listed, nil
	res.Duration = time.Since(start)
	if err != nil {
		err = fmt.Errorf("discover %s: %w", st.entry.ServiceSID, err)
		res.Err = err
	}
	if d.cfg.Observer != nil {
		d.cfg.Observer.Refreshed(res)
	}
	if err != nil {
		if ctx.Err() == nil {
			// "Keeping the previous set" read wrong in monitord once, which
			// has none: say how many targets stay, which is true of both.
			st.failLog.Do(func() {
				d.log.Warn("discovery refresh failed",
					zap.String("service", st.entry.ServiceSID), zap.Int("targets_kept", len(st.targets)), zap.Error(err))
			})
		}
		return listed, err
	}
	d.log.Debug("discovery refresh",
		zap.String("service", st.entry.ServiceSID), zap.Int("sessions_seen", res.SessionsSeen),
		zap.Int("sessions_closed", res.SessionsClosed), zap.Int("targets", res.Targets),
		zap.Int("in_grace", res.InGrace), zap.Int("dropped", res.Dropped),
		zap.Int("participant_lists", res.ParticipantLists), zap.Duration("took", res.Duration))
	return listed, nil
}

// refreshLocked lists, decides and commits; on any error it commits nothing
// but the participants cache of sessions it fully listed (each such listing
// is complete on its own, so the next refresh need not repeat it).
func (d *Discoverer) refreshLocked(ctx context.Context, st *entryState, now time.Time, res *RefreshResult) error {
	e := st.entry
	sessions, err := d.cfg.Lister.ListSessions(ctx, e.ServiceSID)
	if err != nil {
		return err // the lister says "list sessions" already
	}
	st.listed = sessions
	trackedSessions := map[string]bool{}
	for t := range st.targets {
		trackedSessions[t.SessionSID] = true
	}

	var liveTargets []proxy.Target
	endedTargets := map[proxy.Target]time.Time{}
	see := func(t proxy.Target, endedAt time.Time) {
		if endedAt.IsZero() {
			liveTargets = append(liveTargets, t)
		} else {
			endedTargets[t] = endedAt
		}
	}
	live := map[string]bool{}
	var plans []plan
	for _, s := range sessions {
		if !strings.HasPrefix(s.UniqueName, e.UniqueNamePrefix) {
			continue
		}
		var endedAt time.Time
		switch {
		case e.follows(s.Status):
			live[s.SID] = true
		case ended(s.Status) && !trackedSessions[s.SID]:
			// First seen already ended: after a restart, follow it for the
			// rest of its grace period, if any is left.
			endedAt = s.DateEnded
			if endedAt.IsZero() {
				endedAt = s.DateUpdated
			}
			if endedAt.IsZero() || !e.Sink.InGrace(endedAt, now) {
				continue
			}
		default:
			continue
		}
		if e.Source == proxy.SourceSession {
			see(proxy.Target{Source: proxy.SourceSession, ServiceSID: e.ServiceSID, SessionSID: s.SID}, endedAt)
			continue
		}
		plans = append(plans, plan{session: s, endedAt: endedAt})
	}

	if e.Source == proxy.SourceParticipant {
		gone, err := d.listParticipants(ctx, st, plans, res)
		if err != nil {
			return err
		}
		for _, p := range plans {
			if gone[p.session.SID] {
				continue
			}
			for _, kp := range st.sessions[p.session.SID].participants {
				see(proxy.Target{Source: proxy.SourceParticipant, ServiceSID: e.ServiceSID, SessionSID: p.session.SID, ParticipantSID: kp}, p.endedAt)
			}
		}
		for sid := range gone {
			delete(live, sid)
		}
	}

	res.SessionsSeen = len(live)

	// A refresh that completed as shutdown began would hand a stopping
	// poller a new set; the next start refreshes anyway.
	if err := ctx.Err(); err != nil {
		return err
	}

	// Commit.
	for sid := range st.live {
		if !live[sid] {
			res.SessionsClosed++
		}
	}
	for sid := range st.sessions {
		if !live[sid] {
			delete(st.sessions, sid)
		}
	}
	st.live = live
	st.refreshes++
	tracked, dropped := e.Sink.Saw(now, liveTargets, endedTargets)
	st.targets = tracked
	for _, since := range tracked {
		if !since.IsZero() {
			res.InGrace++
		}
	}
	res.Targets = len(tracked)
	res.Dropped = dropped
	return nil
}

// needsParticipants decides whether a session's participants are listed in
// this refresh or taken from the cache. A Proxy session has at most two
// participants, added right after it is created, and they rarely change
// afterwards; so at 10,000 sessions this turns ~10,000 requests per refresh
// into the new sessions' few. The session's date_updated is no signal: it
// moves with every interaction, not with its participants.
func (st *entryState) needsParticipants(s proxy.Session) bool {
	c := st.sessions[s.SID]
	return c == nil ||
		len(c.participants) < 2 ||
		st.refreshes-c.listedAt >= st.entry.ParticipantRefreshEvery
}

// listParticipants lists, Concurrency at a time, the participants of the
// planned sessions that need it, into st.sessions. A session that answers
// 404 was deleted since the sessions list: it is returned in gone, not as an
// error. Any other error cancels the rest and is returned.
func (d *Discoverer) listParticipants(ctx context.Context, st *entryState, plans []plan, res *RefreshResult) (gone map[string]bool, err error) {
	var todo []proxy.Session
	for _, p := range plans {
		if st.needsParticipants(p.session) {
			todo = append(todo, p.session)
		}
	}
	type result struct {
		ps  []proxy.Participant
		err error
	}
	results := make([]result, len(todo))
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, s := range todo {
		select {
		case sem <- struct{}{}:
		case <-lctx.Done():
		}
		if lctx.Err() != nil {
			results[i].err = lctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ps, err := d.cfg.Lister.ListParticipants(lctx, st.entry.ServiceSID, s.SID)
			results[i] = result{ps, err}
			if err != nil && !errors.Is(err, proxy.ErrNotFound) {
				cancel()
			}
		}()
	}
	wg.Wait()

	gone = map[string]bool{}
	var firstErr error
	for i, s := range todo {
		r := results[i]
		if r.err == nil {
			res.ParticipantLists++
			listedAt := st.refreshes
			if st.sessions[s.SID] == nil {
				listedAt -= phase(s.SID, st.entry.ParticipantRefreshEvery)
			}
			st.sessions[s.SID] = &sessionCache{participants: present(r.ps), listedAt: listedAt}
			continue
		}
		if errors.Is(r.err, proxy.ErrNotFound) {
			res.ParticipantLists++
			gone[s.SID] = true
			delete(st.sessions, s.SID)
			continue
		}
		// Prefer the error that caused the cancellation over the
		// cancellations it caused.
		if firstErr == nil || errors.Is(firstErr, context.Canceled) && !errors.Is(r.err, context.Canceled) {
			// The lister says "list participants"; the session is what is new.
			firstErr = fmt.Errorf("session %s: %w", s.SID, r.err)
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return gone, nil
}

// phase spreads the periodic re-listing of participants over the refreshes:
// after a cold start every session is listed in one refresh, and without a
// phase all of them would be due again together every Nth refresh (10,000
// requests in one go: 400 s of a Service's budget). A session's first
// listing counts as made phase refreshes earlier, so each refresh re-lists
// about 1/N of the known sessions.
func phase(sessionSID string, every int) int {
	if every <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(sessionSID))
	return int(h.Sum32() % uint32(every))
}

// present returns the SIDs of participants not removed from the session.
func present(ps []proxy.Participant) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p.DateDeleted.IsZero() {
			out = append(out, p.SID)
		}
	}
	return out
}
