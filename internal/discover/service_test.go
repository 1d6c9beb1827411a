package discover

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// TestRefreshServiceReturnsTheIndex: RefreshService refreshes one
// Service's entry and hands back the sessions list it read, so that in
// poll.mode activity one sessions list serves both discovery and the
// activity index. A participants list failing after the sessions list
// still returns that list, with the error; an unknown Service is an error.
func TestRefreshServiceReturnsTheIndex(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 4, Sessions: 3, Participants: 2})
	svc := w.sim.Services()[0]
	rec := newRecorder()
	d := w.newDiscoverer(rec, rec.entry(time.Hour, Entry{ServiceSID: svc}))
	ctx := context.Background()

	ss, err := d.RefreshService(ctx, svc)
	if err != nil || len(ss) != 3 {
		t.Fatalf("RefreshService: %d sessions, err %v; want 3", len(ss), err)
	}
	wantSet(t, rec, svc, participantTargets(w.sim.Targets()))
	if n := w.sessionsReqs.Load(); n != 1 {
		t.Errorf("%d sessions lists, want 1", n)
	}

	opened, err := w.sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.fault(opened[0].SessionSID+"/Participants", http.StatusInternalServerError)
	ss, err = d.RefreshService(ctx, svc)
	if err == nil || len(ss) != 4 {
		t.Fatalf("with a failing participants list: %d sessions, err %v; want 4 and the error", len(ss), err)
	}

	if _, err := d.RefreshService(ctx, "KS"+"ffffffffffffffffffffffffffffffff"); err == nil {
		t.Error("an unknown Service was refreshed")
	}
}
