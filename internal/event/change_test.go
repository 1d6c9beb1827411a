package event

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/proxy"
)

// TestFromChangesIDs pins the id of each interaction kind to the value the
// diff golden files hold (internal/diff/testdata), and checks that the
// status is left out of the id of created and deleted: whatever status an
// interaction is created or deleted with, it is one event.
func TestFromChangesIDs(t *testing.T) {
	ki := func(n int) string { return fmt.Sprintf("KI%032x", n) }
	cases := []struct {
		c    diff.Change
		want string
	}{
		{diff.Change{Kind: diff.Created, InteractionSID: ki(1), Status: "accepted"}, "91566f4a24060919790d3c26793fc8a7"},
		{diff.Change{Kind: diff.Created, InteractionSID: ki(1), Status: "queued"}, "91566f4a24060919790d3c26793fc8a7"},
		{diff.Change{Kind: diff.StatusChanged, InteractionSID: ki(1), Leg: diff.Inbound, PrevStatus: "receiving", Status: "received"}, "9471dde686c788575b6dba5c1d2d2a92"},
		{diff.Change{Kind: diff.Failed, InteractionSID: ki(2), Leg: diff.Outbound, PrevStatus: "sending", Status: "failed"}, "c93ffc72cbc745444139f293f2458ab4"},
		// A baseline failure is the same failure: same id.
		{diff.Change{Kind: diff.Failed, InteractionSID: ki(2), Leg: diff.Outbound, Status: "failed", Baseline: true}, "c93ffc72cbc745444139f293f2458ab4"},
		{diff.Change{Kind: diff.Stuck, InteractionSID: ki(7), Leg: diff.Outbound, Status: "sending"}, "b510c557f1240859aec9237a5503e229"},
		{diff.Change{Kind: diff.Deleted, InteractionSID: ki(1), PrevStatus: "delivered"}, "5e28cc4b05de45e5449de0662b1ee4b0"},
		{diff.Change{Kind: diff.Deleted, InteractionSID: ki(1), PrevStatus: "sent"}, "5e28cc4b05de45e5449de0662b1ee4b0"},
	}
	for _, tc := range cases {
		evs := FromChanges(exTarget, time.Unix(1, 0), []diff.Change{tc.c})
		if len(evs) != 1 || evs[0].ID != tc.want {
			t.Errorf("%s %s %q -> %q: got %+v, want id %s", tc.c.Kind, tc.c.Leg, tc.c.PrevStatus, tc.c.Status, evs, tc.want)
		}
	}
}

// TestFromChangesFields: every field of a change reaches its event
// unchanged, in order, with the target and the diff's instant added; the
// instant is in UTC without a monotonic reading, as Diff used to set it, so
// that events compare with == and encode the same on every host.
func TestFromChangesFields(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 5, time.UTC)
	changes := []diff.Change{
		{
			Kind: diff.Failed, InteractionSID: "KI" + fmt.Sprintf("%032x", 3), Leg: diff.Inbound,
			PrevStatus: "receiving", Status: "failed", Baseline: true, Type: "message",
			DateCreated: at.Add(-time.Hour), DateUpdated: at.Add(-time.Minute),
			InboundResourceSID: "SM" + fmt.Sprintf("%032x", 1), OutboundResourceSID: "SM" + fmt.Sprintf("%032x", 2),
			OutboundResourceURL: "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/SM.json", Body: "hello",
		},
		{Kind: diff.Deleted, InteractionSID: "KI" + fmt.Sprintf("%032x", 4), PrevStatus: "sent"},
	}
	// A time in another zone with a monotonic reading, as a clock gives it.
	now := time.Now().In(time.FixedZone("east", 3600))
	evs := FromChanges(exTarget, now, changes)
	want := []Event{
		{
			ID: InteractionID(changes[0].InteractionSID, Failed, Inbound, "failed"), Kind: Failed,
			Target: exTarget, Time: now.UTC(), InteractionSID: changes[0].InteractionSID, Leg: Inbound,
			PrevStatus: "receiving", Status: "failed", Baseline: true, Type: "message",
			DateCreated: at.Add(-time.Hour), DateUpdated: at.Add(-time.Minute),
			InboundResourceSID: changes[0].InboundResourceSID, OutboundResourceSID: changes[0].OutboundResourceSID,
			OutboundResourceURL: changes[0].OutboundResourceURL, Body: "hello",
		},
		{
			ID: InteractionID(changes[1].InteractionSID, Deleted, NoLeg, ""), Kind: Deleted,
			Target: exTarget, Time: now.UTC(), InteractionSID: changes[1].InteractionSID, PrevStatus: "sent",
		},
	}
	if d := cmp.Diff(want, evs); d != "" {
		t.Fatalf("events (-want +got):\n%s", d)
	}
	for i := range evs {
		// == rather than Equal: the zone and the monotonic reading count.
		if evs[i].Time != now.UTC() || evs[i].Time.Location() != time.UTC {
			t.Fatalf("event %d: time %#v, want %#v", i, evs[i].Time, now.UTC())
		}
	}
	if evs := FromChanges(exTarget, now, nil); evs != nil {
		t.Fatalf("no changes: %v, want nil", evs)
	}
}

// BenchmarkDiffToEvents is the poll path from a listing to the events the
// commit renders: Diff against the previous snapshot of a 200-interaction
// target, then FromChanges. "one" changes one interaction's outbound
// status (the common changed poll), "all" every one (a burst). Figures in
// docs/performance.md, side by side with the commit before the seam, where
// Diff built the events itself.
func BenchmarkDiffToEvents(b *testing.B) {
	const n = 200
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	listing := func(changed int, out string) []proxy.Interaction {
		l := make([]proxy.Interaction, n)
		for i := range l {
			st := "sent"
			if i < changed {
				st = out
			}
			l[i] = proxy.Interaction{
				SID: fmt.Sprintf("KI%032x", n-i), Type: "message",
				InboundResourceSID: fmt.Sprintf("SM%032x", 1000+i), InboundResourceStatus: "received",
				OutboundResourceSID: fmt.Sprintf("SM%032x", 2000+i), OutboundResourceStatus: st,
				OutboundResourceURL: fmt.Sprintf("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/SM%032x.json", 2000+i),
				DateCreated:         t0.Add(-2 * time.Minute), DateUpdated: t0.Add(-time.Minute),
			}
		}
		return l
	}
	for _, bc := range []struct {
		name    string
		changed int
	}{{"one", 1}, {"all", n}} {
		b.Run(bc.name, func(b *testing.B) {
			r := diff.DefaultRules()
			_, prev := diff.Diff(diff.Snapshot{}, listing(0, ""), t0, r)
			l := listing(bc.changed, "delivered")
			b.ReportAllocs()
			for b.Loop() {
				changes, _ := diff.Diff(prev, l, t0, r)
				if evs := FromChanges(exTarget, t0, changes); len(evs) != bc.changed {
					b.Fatalf("%d events, want %d", len(evs), bc.changed)
				}
			}
		})
	}
}
