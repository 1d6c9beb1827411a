package discover

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/targets"
)

// TestHASeedStartsWarm: with ha, a Service's new owner seeds its
// Discoverer with the set the previous owner's refresh left, and its first
// refresh lists the sessions once and the participants of no known
// session (a cold one lists every live session's). A session opened since
// is listed, and one the seed tracks as ended is not followed as new.
func TestHASeedStartsWarm(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 3, Sessions: 4, Participants: 2})
	svc := w.sim.Services()[0]
	prevRec := newRecorder()
	prev := w.newDiscoverer(prevRec, prevRec.entry(time.Hour, Entry{ServiceSID: svc}))
	mustRefresh(t, prev)
	tracked := prev.entries[0].entry.Sink.(*targets.Tracker).Tracked()
	if len(tracked) != 8 {
		t.Fatalf("previous owner tracks %d targets, want 8", len(tracked))
	}

	if _, err := w.sim.OpenSession(svc, 2); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	next := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc}))
	next.entries[0].entry.Sink.(*targets.Tracker).Adopt(tracked)
	if err := next.Seed(svc, tracked); err != nil {
		t.Fatal(err)
	}
	w.resetCounts()
	mustRefresh(t, next)
	if s, p := w.sessionsReqs.Load(), w.participantsReqs.Load(); s != 1 || p != 1 {
		t.Errorf("warm refresh: %d sessions lists and %d participants lists, want 1 and 1 (the session opened since)", s, p)
	}
	wantSet(t, rec, svc, participantTargets(w.sim.Targets()))
	if err := next.Seed("KS00000000000000000000000000000000", tracked); err == nil {
		t.Error("Seed of a Service without an entry: no error")
	}
}
