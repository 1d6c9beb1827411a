package diff

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/monitord/monitord/internal/proxy"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// sid returns the n-th interaction SID: KI followed by n in 32 hex digits,
// so SID order is numeric order.
func sid(n int) string { return fmt.Sprintf("KI%032x", n) }

// ix builds interaction n with the given inbound and outbound statuses,
// updated at `updated`.
func ix(n int, in, out string, updated time.Time) proxy.Interaction {
	return proxy.Interaction{
		SID:                    sid(n),
		Type:                   "message",
		Data:                   `{"body":"hello"}`,
		InboundResourceSID:     fmt.Sprintf("SM%032x", 1000+n),
		InboundResourceStatus:  in,
		OutboundResourceSID:    fmt.Sprintf("SM%032x", 2000+n),
		OutboundResourceStatus: out,
		OutboundResourceURL:    fmt.Sprintf("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/SM%032x.json", 2000+n),
		DateCreated:            updated.Add(-time.Minute),
		DateUpdated:            updated,
	}
}

// ev is the short form of a change the tables compare against.
type ev struct {
	N      int
	Kind   Kind
	Leg    Leg
	Prev   string
	Status string
}

func short(t *testing.T, evs []Change) []ev {
	t.Helper()
	out := []ev{}
	for _, e := range evs {
		var n int
		if _, err := fmt.Sscanf(e.InteractionSID, "KI%x", &n); err != nil {
			t.Fatalf("event sid %q: %v", e.InteractionSID, err)
		}
		out = append(out, ev{n, e.Kind, e.Leg, e.PrevStatus, e.Status})
	}
	return out
}

// baselined diffs listing as a target's first listing at now and returns the
// resulting snapshot, failing the test if the baseline emitted anything.
func baselined(t *testing.T, listing []proxy.Interaction, now time.Time, r Rules) Snapshot {
	t.Helper()
	evs, s := Diff(Snapshot{}, listing, now, r)
	if len(evs) != 0 {
		t.Fatalf("baseline emitted %v", short(t, evs))
	}
	return s
}

func TestRules(t *testing.T) {
	r := DefaultRules()
	old := t0.Add(-time.Hour)
	type step struct {
		listing []proxy.Interaction
		at      time.Time
		want    []ev
	}
	cases := []struct {
		name  string
		rules Rules
		steps []step
	}{
		{"baseline is silent", r, []step{
			{[]proxy.Interaction{ix(1, "received", "delivered", old), ix(2, "received", "queued", old)}, t0, nil},
		}},
		{"baseline pages a recent failure on each alert leg", r, []step{
			{[]proxy.Interaction{ix(1, "received", "failed", t0.Add(-time.Minute)), ix(2, "failed", "undelivered", t0.Add(-15*time.Minute))}, t0,
				[]ev{{1, Failed, Outbound, "", "failed"}, {2, Failed, Inbound, "", "failed"}, {2, Failed, Outbound, "", "undelivered"}}},
		}},
		{"baseline does not page an old failure", r, []step{
			{[]proxy.Interaction{ix(1, "received", "failed", t0.Add(-15*time.Minute-time.Second))}, t0, nil},
		}},
		{"baseline does not page a failure with null date_updated", r, []step{
			{[]proxy.Interaction{ix(1, "received", "failed", time.Time{})}, t0, nil},
		}},
		{"baseline recent failure in the future (clock skew) pages", r, []step{
			{[]proxy.Interaction{ix(1, "received", "failed", t0.Add(time.Minute))}, t0, []ev{{1, Failed, Outbound, "", "failed"}}},
		}},
		{"baseline alert_recent 0 disables", Rules{AlertStatuses: r.AlertStatuses, StuckAfter: r.StuckAfter}, []step{
			{[]proxy.Interaction{ix(1, "received", "failed", t0)}, t0, nil},
		}},
		{"baseline of an empty listing then created", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "delivered", t0)}, t0.Add(time.Minute), []ev{{1, Created, "", "", "delivered"}}},
		}},
		{"created then status changes per leg", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "receiving", "queued", t0)}, t0, []ev{{1, Created, "", "", "queued"}}},
			{[]proxy.Interaction{ix(1, "received", "sent", t0.Add(time.Second))}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Inbound, "receiving", "received"}, {1, StatusChanged, Outbound, "queued", "sent"}}},
			{[]proxy.Interaction{ix(1, "received", "delivered", t0.Add(2*time.Second))}, t0.Add(2 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "sent", "delivered"}}},
		}},
		{"created directly failed pages", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "undelivered", t0)}, t0,
				[]ev{{1, Created, "", "", "undelivered"}, {1, Failed, Outbound, "", "undelivered"}}},
		}},
		{"entering failed pages, failed to undelivered does not page again", r, []step{
			{[]proxy.Interaction{ix(1, "received", "sent", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "failed", t0)}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Outbound, "sent", "failed"}, {1, Failed, Outbound, "sent", "failed"}}},
			{[]proxy.Interaction{ix(1, "received", "undelivered", t0)}, t0.Add(2 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "failed", "undelivered"}}},
		}},
		{"backwards status is status_changed, not a second page", r, []step{
			{[]proxy.Interaction{ix(1, "received", "sent", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "undelivered", t0)}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Outbound, "sent", "undelivered"}, {1, Failed, Outbound, "sent", "undelivered"}}},
			{[]proxy.Interaction{ix(1, "received", "undelivered", t0)}, t0.Add(2 * time.Minute), nil},
			{[]proxy.Interaction{ix(1, "received", "failed", t0)}, t0.Add(3 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "undelivered", "failed"}}},
		}},
		{"fails, recovers, fails again pages again", r, []step{
			{[]proxy.Interaction{ix(1, "received", "sent", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "failed", t0)}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Outbound, "sent", "failed"}, {1, Failed, Outbound, "sent", "failed"}}},
			{[]proxy.Interaction{ix(1, "received", "delivered", t0)}, t0.Add(2 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "failed", "delivered"}}},
			{[]proxy.Interaction{ix(1, "received", "failed", t0)}, t0.Add(3 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "delivered", "failed"}, {1, Failed, Outbound, "delivered", "failed"}}},
		}},
		{"inbound leg failure pages", r, []step{
			{[]proxy.Interaction{ix(1, "receiving", "", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "failed", "", t0)}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Inbound, "receiving", "failed"}, {1, Failed, Inbound, "receiving", "failed"}}},
		}},
		{"null and unknown statuses are values", r, []step{
			{[]proxy.Interaction{ix(1, "received", "", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "unknown", old)}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Outbound, "", "unknown"}}},
			{[]proxy.Interaction{ix(1, "received", "brand-new-status", old)}, t0.Add(2 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "unknown", "brand-new-status"}}},
			{[]proxy.Interaction{ix(1, "received", "", old)}, t0.Add(3 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "brand-new-status", ""}}},
		}},
		{"configured alert statuses", Rules{AlertStatuses: []string{"delivery-unknown"}}, []step{
			{[]proxy.Interaction{ix(1, "received", "sent", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "failed", old)}, t0.Add(time.Minute),
				[]ev{{1, StatusChanged, Outbound, "sent", "failed"}}},
			{[]proxy.Interaction{ix(1, "received", "delivery-unknown", old)}, t0.Add(2 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "failed", "delivery-unknown"}, {1, Failed, Outbound, "failed", "delivery-unknown"}}},
		}},
		{"deleted when absent from a complete listing", r, []step{
			{[]proxy.Interaction{ix(1, "received", "delivered", old), ix(2, "received", "sent", old)}, t0, nil},
			{[]proxy.Interaction{ix(2, "received", "sent", old)}, t0.Add(time.Minute), []ev{{1, Deleted, "", "delivered", ""}}},
			{nil, t0.Add(2 * time.Minute), []ev{{2, Deleted, "", "sent", ""}}},
			{[]proxy.Interaction{ix(2, "received", "sent", old)}, t0.Add(3 * time.Minute), []ev{{2, Created, "", "", "sent"}}},
		}},
		{"stuck once per interaction, after stuck_after from date_updated", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "queued", t0)}, t0, []ev{{1, Created, "", "", "queued"}}},
			{[]proxy.Interaction{ix(1, "received", "queued", t0)}, t0.Add(15*time.Minute - time.Second), nil},
			{[]proxy.Interaction{ix(1, "received", "queued", t0)}, t0.Add(15 * time.Minute), []ev{{1, Stuck, Outbound, "", "queued"}}},
			{[]proxy.Interaction{ix(1, "received", "queued", t0)}, t0.Add(time.Hour), nil},
			{[]proxy.Interaction{ix(1, "received", "sending", t0.Add(time.Hour))}, t0.Add(3 * time.Hour),
				[]ev{{1, StatusChanged, Outbound, "queued", "sending"}}},
		}},
		{"stuck clock restarts when the outbound status changes", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "accepted", t0)}, t0, []ev{{1, Created, "", "", "accepted"}}},
			{[]proxy.Interaction{ix(1, "received", "queued", t0.Add(10*time.Minute))}, t0.Add(10 * time.Minute),
				[]ev{{1, StatusChanged, Outbound, "accepted", "queued"}}},
			{[]proxy.Interaction{ix(1, "received", "queued", t0.Add(10*time.Minute))}, t0.Add(20 * time.Minute), nil},
			{[]proxy.Interaction{ix(1, "received", "queued", t0.Add(10*time.Minute))}, t0.Add(25 * time.Minute), []ev{{1, Stuck, Outbound, "", "queued"}}},
		}},
		{"terminal outbound statuses are never stuck, null is", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "sent", t0), ix(2, "received", "delivered", t0), ix(3, "received", "", t0), ix(4, "received", "undelivered", t0)}, t0,
				[]ev{{1, Created, "", "", "sent"}, {2, Created, "", "", "delivered"}, {3, Created, "", "", ""},
					{4, Created, "", "", "undelivered"}, {4, Failed, Outbound, "", "undelivered"}}},
			{[]proxy.Interaction{ix(1, "received", "sent", t0), ix(2, "received", "delivered", t0), ix(3, "received", "", t0), ix(4, "received", "undelivered", t0)}, t0.Add(time.Hour),
				[]ev{{3, Stuck, Outbound, "", ""}}},
		}},
		{"new interaction already overdue is created and stuck", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "queued", t0.Add(-time.Hour))}, t0,
				[]ev{{1, Created, "", "", "queued"}, {1, Stuck, Outbound, "", "queued"}}},
		}},
		{"stuck at baseline is history", r, []step{
			{[]proxy.Interaction{ix(1, "received", "queued", old)}, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "queued", old)}, t0.Add(time.Hour), nil},
		}},
		{"stuck_after 0 disables", Rules{AlertStatuses: r.AlertStatuses}, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(1, "received", "queued", old)}, t0, []ev{{1, Created, "", "", "queued"}}},
			{[]proxy.Interaction{ix(1, "received", "queued", old)}, t0.Add(24 * time.Hour), nil},
		}},
		{"duplicate SIDs: last occurrence wins", r, []step{
			{nil, t0, nil},
			{[]proxy.Interaction{ix(2, "received", "queued", t0), ix(1, "received", "sent", t0), ix(2, "received", "delivered", t0)}, t0,
				[]ev{{1, Created, "", "", "sent"}, {2, Created, "", "", "delivered"}}},
		}},
		{"event order: SID then kind", r, []step{
			{[]proxy.Interaction{ix(1, "receiving", "queued", old), ix(3, "received", "sent", old)}, t0, nil},
			{[]proxy.Interaction{ix(3, "received", "failed", old), ix(2, "received", "sent", old), ix(1, "failed", "failed", old)}, t0.Add(time.Minute),
				[]ev{
					{1, StatusChanged, Inbound, "receiving", "failed"}, {1, StatusChanged, Outbound, "queued", "failed"},
					{1, Failed, Inbound, "receiving", "failed"}, {1, Failed, Outbound, "queued", "failed"},
					{2, Created, "", "", "sent"},
					{3, StatusChanged, Outbound, "sent", "failed"}, {3, Failed, Outbound, "sent", "failed"},
				}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s Snapshot
			for i, st := range tc.steps {
				evs, next := Diff(s, st.listing, st.at, tc.rules)
				got := short(t, evs)
				want := st.want
				if want == nil {
					want = []ev{}
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Fatalf("step %d: events (-want +got):\n%s", i, d)
				}
				checkChanges(t, evs)
				// The same listing again at the same instant is nothing new.
				if again, _ := Diff(next, st.listing, st.at, tc.rules); len(again) != 0 {
					t.Fatalf("step %d: repeating the listing emitted %v", i, short(t, again))
				}
				s = next
			}
		})
	}
}

// checkChanges checks that no two changes of one Diff are the same change:
// (interaction, kind, leg) is unique, which makes the event ids derived
// from them unique too (event.FromChanges holds the id rule; its tests
// check the ids).
func checkChanges(t *testing.T, evs []Change) {
	t.Helper()
	type key struct {
		sid  string
		kind Kind
		leg  Leg
	}
	seen := map[key]bool{}
	for _, e := range evs {
		k := key{e.InteractionSID, e.Kind, e.Leg}
		if seen[k] {
			t.Fatalf("duplicate change %s %s %q", e.InteractionSID, e.Kind, e.Leg)
		}
		seen[k] = true
	}
}

func TestChangeFields(t *testing.T) {
	r := DefaultRules()
	s := baselined(t, nil, t0, r)
	it := ix(1, "received", "failed", t0)
	evs, _ := Diff(s, []proxy.Interaction{it}, t0, r)
	if len(evs) != 2 {
		t.Fatalf("got %d changes", len(evs))
	}
	want := Change{
		Kind: Failed, InteractionSID: it.SID, Leg: Outbound, Status: "failed",
		Type: "message", DateCreated: it.DateCreated, DateUpdated: it.DateUpdated,
		InboundResourceSID: it.InboundResourceSID, OutboundResourceSID: it.OutboundResourceSID,
		OutboundResourceURL: it.OutboundResourceURL,
	}
	if d := cmp.Diff(want, evs[1]); d != "" {
		t.Fatalf("failed change (-want +got):\n%s", d)
	}
	if evs[0].Body != "" {
		t.Fatal("body copied without IncludeBody")
	}
	r.IncludeBody = true
	evs, _ = Diff(s, []proxy.Interaction{it}, t0, r)
	if evs[0].Body != it.Data || evs[1].Body != it.Data {
		t.Fatalf("IncludeBody: bodies %q %q", evs[0].Body, evs[1].Body)
	}
}

func TestDiffDoesNotModifyInputs(t *testing.T) {
	r := DefaultRules()
	listing := []proxy.Interaction{ix(3, "received", "sent", t0), ix(1, "received", "queued", t0), ix(2, "received", "sent", t0)}
	s := baselined(t, listing, t0, r)
	before := append([]Entry(nil), s.Entries...)
	changed := []proxy.Interaction{ix(2, "received", "delivered", t0), ix(1, "received", "failed", t0)}
	keep := append([]proxy.Interaction(nil), changed...)
	_, next := Diff(s, changed, t0.Add(time.Hour), r)
	if d := cmp.Diff(before, s.Entries); d != "" {
		t.Fatalf("prev modified:\n%s", d)
	}
	if d := cmp.Diff(keep, changed); d != "" {
		t.Fatalf("listing modified:\n%s", d)
	}
	if next.Len() != 2 {
		t.Fatalf("next has %d entries", next.Len())
	}
}

func TestUnchangedSharesEntries(t *testing.T) {
	r := DefaultRules()
	listing := []proxy.Interaction{ix(1, "received", "delivered", t0), ix(2, "received", "sent", t0)}
	s := baselined(t, listing, t0, r)
	evs, next := Diff(s, listing, t0.Add(time.Minute), r)
	if len(evs) != 0 || &next.Entries[0] != &s.Entries[0] {
		t.Fatalf("unchanged listing: %d events, shared=%v", len(evs), &next.Entries[0] == &s.Entries[0])
	}
}

func TestFind(t *testing.T) {
	s := baselined(t, []proxy.Interaction{ix(5, "", "sent", t0), ix(1, "", "sent", t0), ix(3, "", "queued", t0)}, t0, DefaultRules())
	for _, n := range []int{1, 3, 5} {
		if e, ok := s.Find(sid(n)); !ok || e.SID != sid(n) {
			t.Fatalf("Find(%d) = %v %v", n, e.SID, ok)
		}
	}
	for _, n := range []int{0, 2, 4, 6} {
		if _, ok := s.Find(sid(n)); ok {
			t.Fatalf("Find(%d) found", n)
		}
	}
}

// Pure diff cost, without bbolt: what the state benchmarks add on top is
// the disk. Figures in docs/performance.md.
func benchTarget(n int) []proxy.Interaction {
	listing := make([]proxy.Interaction, n)
	// Twilio lists newest first, not by SID: start unsorted like the API.
	for i := range listing {
		listing[i] = ix(n-i, "received", "delivered", t0.Add(-time.Hour))
	}
	return listing
}

func BenchmarkDiffUnchanged(b *testing.B) {
	const n = 200
	listing := benchTarget(n)
	_, s := Diff(Snapshot{}, listing, t0, DefaultRules())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if evs, _ := Diff(s, listing, t0.Add(time.Minute), DefaultRules()); len(evs) != 0 {
			b.Fatal("events")
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "interactions/s")
}

// TestListingWithoutSIDChangesNothing: an item whose SID is null cannot be
// identified, so the listing is not complete. Dropping the item reported
// the SID it had before as deleted, and created when it came back; now the
// listing changes nothing, at baseline or after. (The client refuses such
// a listing first; this is Diff's own guarantee.)
func TestListingWithoutSIDChangesNothing(t *testing.T) {
	r := DefaultRules()
	prev := baselined(t, []proxy.Interaction{ix(1, "received", "sent", t0), ix(2, "received", "sent", t0)}, t0, r)
	noSID := ix(2, "received", "failed", t0.Add(time.Minute))
	noSID.SID = ""
	for name, p := range map[string]Snapshot{"after the baseline": prev, "at the baseline": {}} {
		evs, next := Diff(p, []proxy.Interaction{ix(1, "received", "failed", t0.Add(time.Minute)), noSID}, t0.Add(time.Minute), r)
		if len(evs) != 0 {
			t.Errorf("%s: events %v, want none", name, short(t, evs))
		}
		if !next.Equal(p) {
			t.Errorf("%s: next snapshot %+v, want the previous one", name, next)
		}
	}
}

// TestTerminal holds Rules.Terminal to the stuck rule's sets: the default
// terminal statuses, the alert statuses (terminal whatever the list says),
// and null or unknown values as non-terminal.
func TestTerminal(t *testing.T) {
	def := DefaultRules()
	custom := Rules{AlertStatuses: []string{"failed"}, TerminalStatuses: []string{"delivered"}}
	for _, tc := range []struct {
		r      Rules
		status string
		want   bool
	}{
		{def, "delivered", true},
		{def, "sent", true},
		{def, "undelivered", true},
		{def, "queued", false},
		{def, "sending", false},
		{def, "", false},
		{def, "some-new-status", false},
		{custom, "delivered", true},
		{custom, "failed", true},
		{custom, "sent", false},
	} {
		if got := tc.r.Terminal(tc.status); got != tc.want {
			t.Errorf("Terminal(%q) with terminal %v, alert %v = %v, want %v",
				tc.status, tc.r.TerminalStatuses, tc.r.AlertStatuses, got, tc.want)
		}
	}
}
