package discover

import (
	"context"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// TestRestoredParticipantsSpareTheColdRefresh: a Discoverer given what an
// earlier one knew of the participants lists only the sessions it does
// not know at its first refresh (none, here) and finds the same targets,
// where a cold one lists every session's participants.
func TestRestoredParticipantsSpareTheColdRefresh(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 6, Sessions: 5, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc}))
	mustRefresh(t, d)
	if n := w.participantsReqs.Load(); n != 5 {
		t.Fatalf("cold refresh: %d participants lists, want 5", n)
	}
	saved := d.Participants(svc)
	if len(saved) != 5 {
		t.Fatalf("%d sessions known, want 5", len(saved))
	}

	w.resetCounts()
	rec2 := newRecorder()
	d2 := w.newDiscoverer(rec2, rec2.entry(time.Hour, Entry{ServiceSID: svc}))
	d2.RestoreParticipants(svc, saved)
	if _, err := d2.RefreshService(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	if n := w.participantsReqs.Load(); n != 0 {
		t.Errorf("refresh after restore: %d participants lists, want 0", n)
	}
	wantSet(t, rec2, svc, participantTargets(w.sim.Targets()))
}
