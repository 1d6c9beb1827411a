package discover

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// TestDiscoveryFollowsSessions walks a Service through a session opening,
// one closing and one deleted: new participants are targets after one
// refresh; ended sessions stay targets for exactly the grace period.
func TestDiscoveryFollowsSessions(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 1, Sessions: 3, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc}))

	initial := participantTargets(w.sim.Targets())
	if len(initial) != 6 {
		t.Fatalf("simulator has %d targets, want 6", len(initial))
	}
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial)

	// A session opens: its participants are targets after one refresh, for
	// one participants list.
	w.clock.Advance(5 * time.Minute)
	opened, err := w.sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	added := participantTargets(opened)
	w.resetCounts()
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial, added)
	if n := w.participantsReqs.Load(); n != 1 {
		t.Errorf("participants requests = %d, want 1 (the new session only)", n)
	}

	// It closes: still polled, in grace.
	w.clock.Advance(5 * time.Minute)
	closedSeen := w.clock.Now()
	if err := w.sim.CloseSession(svc, opened[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial, added)
	if r := rec.last(); r.SessionsClosed != 1 || r.InGrace != 2 || r.SessionsSeen != 3 {
		t.Errorf("after close: closed=%d in grace=%d seen=%d, want 1, 2, 3", r.SessionsClosed, r.InGrace, r.SessionsSeen)
	}

	// Ten minutes later an initial session is deleted: gone from the list.
	w.clock.Advance(10 * time.Minute)
	if err := w.sim.DeleteSession(svc, initial[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial, added)
	if r := rec.last(); r.InGrace != 4 {
		t.Errorf("after delete: in grace=%d, want 4", r.InGrace)
	}

	// One minute short of the grace period: everything still there.
	w.clock.Advance(closedSeen.Add(59 * time.Minute).Sub(w.clock.Now()))
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial, added)

	// The closed session's grace is over: its targets go.
	w.clock.Advance(time.Minute)
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial)
	if r := rec.last(); r.Dropped != 2 {
		t.Errorf("dropped = %d, want 2", r.Dropped)
	}

	// Then the deleted one's.
	w.clock.Advance(10 * time.Minute)
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial[2:])
}

// TestFailedRefreshKeepsPreviousSet: a failed participants list, or a
// sessions list failing for longer than the grace period, changes nothing;
// the next complete refresh commits what it sees.
func TestFailedRefreshKeepsPreviousSet(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 2, Sessions: 2, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc}))
	initial := participantTargets(w.sim.Targets())
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial)
	calls := rec.sinkCalls()

	// A session opens and another closes, but the new session's
	// participants list fails: nothing is committed, not even the close.
	opened, err := w.sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.sim.CloseSession(svc, initial[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	w.fault(opened[0].SessionSID+"/Participants", http.StatusInternalServerError)
	err = d.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "session "+opened[0].SessionSID+": list participants: ") ||
		strings.Count(err.Error(), "list participants") != 1 {
		t.Fatalf("refresh error = %v, want the participants list's, its context said once", err)
	}
	if rec.sinkCalls() != calls {
		t.Error("a failed refresh reached the sink")
	}
	if r := rec.last(); r.Err == nil {
		t.Error("observer not told of the failure")
	}

	// The sessions list fails for three hours, far past the grace period:
	// nothing is dropped because of an error.
	w.fault("/Sessions", http.StatusServiceUnavailable)
	for i := 0; i < 3; i++ {
		w.clock.Advance(time.Hour)
		if err := d.Refresh(context.Background()); err == nil || strings.Count(err.Error(), "list sessions") != 1 {
			t.Fatalf("refresh error = %v, want the sessions list's, its context said once", err)
		}
	}
	if rec.sinkCalls() != calls {
		t.Error("a failed refresh reached the sink")
	}
	wantSet(t, rec, svc, initial)

	// Recovery: the new session is in, and the closed one's grace starts
	// now (when monitord could see it), not three hours ago.
	w.fault("/Sessions", 0)
	w.fault(opened[0].SessionSID+"/Participants", 0)
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial, participantTargets(opened))
	if r := rec.last(); r.InGrace != 2 || r.SessionsClosed != 1 {
		t.Errorf("after recovery: in grace=%d closed=%d, want 2, 1", r.InGrace, r.SessionsClosed)
	}
}

// TestDeletedBetweenLists: a session that answers 404 to its participants
// list was deleted since the sessions list; that is an answer, not an
// error: a new one is skipped, a known one enters its grace period.
func TestDeletedBetweenLists(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 3, Sessions: 2, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc, ParticipantRefreshEvery: 1}))
	initial := participantTargets(w.sim.Targets())
	mustRefresh(t, d)

	opened, err := w.sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.fault(opened[0].SessionSID+"/Participants", http.StatusNotFound)
	w.fault(initial[0].SessionSID+"/Participants", http.StatusNotFound)
	mustRefresh(t, d)
	wantSet(t, rec, svc, initial)
	if r := rec.last(); r.InGrace != 2 || r.SessionsClosed != 1 || r.SessionsSeen != 1 {
		t.Errorf("in grace=%d closed=%d seen=%d, want 2, 1, 1", r.InGrace, r.SessionsClosed, r.SessionsSeen)
	}
}

// TestEndedSessionsListedOnce: the participants of an ended session are
// listed only while the Sink does not track its targets and InGrace says
// its grace is not over. A closed session the Sink tracks costs no request
// however many refreshes it stays in grace, and neither does one that
// ended longer ago than the grace. Discovery plans from what the Sink
// answered, so the requests do not depend on where the grace rule lives.
func TestEndedSessionsListedOnce(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 12, Sessions: 3, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc, ParticipantRefreshEvery: 1000}))
	ts := participantTargets(w.sim.Targets())
	mustRefresh(t, d)

	if err := w.sim.CloseSession(svc, ts[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.clock.Advance(5 * time.Minute)
		w.resetCounts()
		mustRefresh(t, d)
		if n := w.participantsReqs.Load(); n != 0 {
			t.Errorf("refresh %d after the close: %d participants requests, want 0 (the closed session is tracked)", i, n)
		}
	}
	wantSet(t, rec, svc, ts)

	// A restart: a new Discoverer and target set. The session ended 15
	// minutes ago: listed once, then tracked.
	rec2 := newRecorder()
	d2 := w.newDiscoverer(rec2, rec2.entry(time.Hour, Entry{ServiceSID: svc, ParticipantRefreshEvery: 1000}))
	w.resetCounts()
	mustRefresh(t, d2)
	if got := w.listedPerSession()[ts[0].SessionSID]; got != 1 {
		t.Errorf("after a restart the ended session was listed %d times, want 1", got)
	}
	w.resetCounts()
	mustRefresh(t, d2)
	if n := w.participantsReqs.Load(); n != 0 {
		t.Errorf("second refresh after a restart: %d participants requests, want 0", n)
	}

	// Beyond its grace (as the Sink says), another restart lists it no more.
	w.clock.Advance(time.Hour)
	rec3 := newRecorder()
	d3 := w.newDiscoverer(rec3, rec3.entry(time.Hour, Entry{ServiceSID: svc, ParticipantRefreshEvery: 1000}))
	w.resetCounts()
	mustRefresh(t, d3)
	if got := w.listedPerSession()[ts[0].SessionSID]; got != 0 {
		t.Errorf("a session ended beyond its grace was listed %d times, want 0", got)
	}
}

// TestParticipantsListedOnlyWhenNeeded: known sessions with their two
// participants are re-listed once every N refreshes, spread so that each
// refresh takes its share; a session with fewer is re-listed every time
// (its second participant may still be added).
func TestParticipantsListedOnlyWhenNeeded(t *testing.T) {
	const every = 3
	w := newWorld(t, proxysim.Options{Seed: 4, Sessions: 12, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc, ParticipantRefreshEvery: every}))

	mustRefresh(t, d)
	if n := w.participantsReqs.Load(); n != 12 {
		t.Fatalf("first refresh: participants requests = %d, want 12", n)
	}
	var perRefresh []int64
	for window := 0; window < 2; window++ {
		w.resetCounts()
		for i := 0; i < every; i++ {
			before := w.participantsReqs.Load()
			mustRefresh(t, d)
			perRefresh = append(perRefresh, w.participantsReqs.Load()-before)
		}
		listed := w.listedPerSession()
		if len(listed) != 12 {
			t.Errorf("window %d: %d sessions re-listed, want all 12", window, len(listed))
		}
		for sid, n := range listed {
			if n != 1 {
				t.Errorf("window %d: session %s listed %d times, want once", window, sid, n)
			}
		}
	}
	for _, n := range perRefresh {
		if n == 12 {
			t.Errorf("participants requests per refresh = %v: the re-listing is not spread", perRefresh)
			break
		}
	}

	single, err := w.sim.OpenSession(svc, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < every; i++ {
		w.resetCounts()
		mustRefresh(t, d)
		if n := w.listedPerSession()[single[0].SessionSID]; n != 1 {
			t.Errorf("refresh %d: one-participant session listed %d times, want 1", i, n)
		}
	}
	if !rec.set(svc)[participantTargets(single)[0]] {
		t.Error("the one-participant session's participant is not a target")
	}
}

// TestSessionSourceAndFilters: the session source costs no participants
// lists; the status and unique_name filters select sessions.
func TestSessionSourceAndFilters(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 5, Sessions: 3, Participants: 2})
	svc := w.sim.Services()[0]
	sessions, err := w.client.ListSessions(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	sessionTarget := func(s proxy.Session) proxy.Target {
		return proxy.Target{Source: proxy.SourceSession, ServiceSID: svc, SessionSID: s.SID}
	}
	var all []proxy.Target
	for _, s := range sessions {
		all = append(all, sessionTarget(s))
	}

	t.Run("session source", func(t *testing.T) {
		rec := newRecorder()
		d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc, Source: proxy.SourceSession}))
		w.resetCounts()
		mustRefresh(t, d)
		wantSet(t, rec, svc, all)
		if n := w.participantsReqs.Load(); n != 0 {
			t.Errorf("participants requests = %d, want 0", n)
		}
	})
	t.Run("unique_name prefix", func(t *testing.T) {
		rec := newRecorder()
		d := w.newDiscoverer(rec, rec.entry(0, Entry{ServiceSID: svc, Source: proxy.SourceSession, UniqueNamePrefix: sessions[1].UniqueName}))
		mustRefresh(t, d)
		wantSet(t, rec, svc, []proxy.Target{sessionTarget(sessions[1])})
	})
	t.Run("no session matches", func(t *testing.T) {
		rec := newRecorder()
		d := w.newDiscoverer(rec, rec.entry(0, Entry{ServiceSID: svc, UniqueNamePrefix: "no such prefix"}))
		mustRefresh(t, d)
		wantSet(t, rec, svc)
		if rec.sinkCalls() != 1 {
			t.Error("an empty set must still be handed to the sink")
		}
	})
	t.Run("status", func(t *testing.T) {
		opened, err := w.sim.OpenSession(svc, 2)
		if err != nil {
			t.Fatal(err)
		}
		sessions, err := w.client.ListSessions(context.Background(), svc)
		if err != nil {
			t.Fatal(err)
		}
		byStatus := map[string][]proxy.Target{}
		for _, s := range sessions {
			byStatus[s.Status] = append(byStatus[s.Status], sessionTarget(s))
		}
		if len(byStatus["open"]) == 0 || len(byStatus["in-progress"]) == 0 {
			t.Fatalf("want sessions both open and in-progress, have %v (opened %s)", byStatus, opened[0].SessionSID)
		}
		for _, status := range []string{"open", "in-progress"} {
			rec := newRecorder()
			d := w.newDiscoverer(rec, rec.entry(0, Entry{ServiceSID: svc, Source: proxy.SourceSession, Statuses: []string{status}}))
			mustRefresh(t, d)
			wantSet(t, rec, svc, byStatus[status])
		}
	})
}

// TestRestartFollowsRecentlyClosed: a fresh discoverer (after a restart)
// follows sessions that closed within the grace period, from their
// date_ended, and ignores older ones.
func TestRestartFollowsRecentlyClosed(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 6, Sessions: 3, Participants: 2})
	svc := w.sim.Services()[0]
	ts := participantTargets(w.sim.Targets())
	if err := w.sim.CloseSession(svc, ts[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(50 * time.Minute)
	if err := w.sim.CloseSession(svc, ts[2].SessionSID); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(20 * time.Minute)

	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc}))
	mustRefresh(t, d)
	wantSet(t, rec, svc, ts[2:])
	if r := rec.last(); r.InGrace != 2 || r.SessionsSeen != 1 {
		t.Errorf("in grace=%d seen=%d, want 2, 1", r.InGrace, r.SessionsSeen)
	}
	w.clock.Advance(40 * time.Minute) // 60 minutes after the second close
	mustRefresh(t, d)
	wantSet(t, rec, svc, ts[4:])
}

// TestRunRefreshesOnSchedule: Run refreshes at once, then on the schedule,
// and returns when its context is done.
func TestRunRefreshesOnSchedule(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 7, Sessions: 1, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc, Schedule: "@every 1s"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	initial := participantTargets(w.sim.Targets())
	waitFor(t, rec, 10*time.Second, func() bool { return len(rec.set(svc)) == len(initial) })
	opened, err := w.sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	added := participantTargets(opened)
	waitFor(t, rec, 10*time.Second, func() bool { return rec.set(svc)[added[1]] })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// waitFor waits until cond holds, re-checking whenever the sink changes
// and every 50 ms, and fails the test at the deadline.
func waitFor(t *testing.T, rec *recorder, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-rec.changed:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("condition not met within %s", within)
		}
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	var c *twilio.Client
	ok := "KS" + strings.Repeat("0", 32)
	rec := newRecorder()
	_, err := New(Config{Lister: c, Entries: []Entry{
		rec.entry(0, Entry{ServiceSID: "KS12"}),
		rec.entry(0, Entry{ServiceSID: ok, Source: "conversation"}),
		rec.entry(0, Entry{ServiceSID: ok, Schedule: "every tuesday"}),
		{ServiceSID: ok},
		rec.entry(0, Entry{ServiceSID: ok, ParticipantRefreshEvery: -1}),
		rec.entry(0, Entry{ServiceSID: ok}),
	}})
	if err == nil {
		t.Fatal("New accepted bad entries")
	}
	for _, want := range []string{
		`discover[0].service_sid: "KS12" does not match`,
		`discover[1].source: "conversation" is not`,
		`discover[2].schedule: "every tuesday"`,
		`discover[3].sink is nil`,
		`discover[4].participant_refresh_every: -1 is negative`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "discover[5]") {
		t.Errorf("error %q names the good entry", err)
	}
}

// TestFailedRefreshWarnsOncePerMinute: a refresh that keeps failing (the
// activity index retries every 10 s) warns once, not at every retry.
func TestFailedRefreshWarnsOncePerMinute(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 3, Sessions: 1, Participants: 1})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	core, logs := observer.New(zap.WarnLevel)
	d, err := New(Config{Entries: []Entry{rec.entry(time.Hour, Entry{ServiceSID: svc})}, Lister: w.client,
		Observer: rec, Now: w.clock.Now, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	w.fault("/Sessions", http.StatusServiceUnavailable)
	for range 3 {
		if err := d.Refresh(context.Background()); err == nil {
			t.Fatal("refresh succeeded against a failing sessions list")
		}
	}
	if n := logs.FilterMessage("discovery refresh failed").Len(); n != 1 {
		t.Errorf("%d warnings for 3 failed refreshes within a minute, want 1", n)
	}
}
