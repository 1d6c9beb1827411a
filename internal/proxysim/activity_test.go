package proxysim_test

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// activityOptions is a bursty world of n sessions with the default
// Activity: 5 % of sessions start a conversation in any 10 minutes.
func activityOptions(n int) proxysim.Options {
	return proxysim.Options{Seed: 7, Sessions: n, Participants: 2, FailureRate: 0.2, StuckRate: 0.02,
		Activity: &proxysim.Activity{}, RateLimit: -1}
}

func TestActivityDeterminism(t *testing.T) {
	o := activityOptions(30)
	o.SessionOpenEvery, o.SessionLifetime, o.DeleteRate = 5*time.Minute, 40*time.Minute, 0.1
	a, b := newEnv(t, o), newEnv(t, o)
	for range 4 {
		if !bytes.Equal(worldBytes(t, a), worldBytes(t, b)) {
			t.Fatal("same seed and clock served different bytes")
		}
		a.clock.Advance(17 * time.Minute)
		b.clock.Advance(17 * time.Minute)
	}
	o.Seed++
	c := newEnv(t, o)
	c.clock.Advance(4 * 17 * time.Minute)
	if bytes.Equal(worldBytes(t, a), worldBytes(t, c)) {
		t.Fatal("different seeds served the same world")
	}
}

// sessionIndex reads a Service's sessions list over HTTP, 100 per page as
// Twilio serves it: date_last_interaction and status by session SID.
func sessionIndex(t *testing.T, e *env, svc string) (last, status map[string]string, pages int) {
	t.Helper()
	items, pages := e.listAll("/v1/Services/" + svc + "/Sessions?PageSize=1000")
	last, status = map[string]string{}, map[string]string{}
	for _, s := range items {
		sid := s["sid"].(string)
		last[sid], _ = s["date_last_interaction"].(string)
		status[sid] = s["status"].(string)
	}
	return last, status, pages
}

// TestDateLastInteraction reads the sessions list every minute for two
// simulated hours and holds each session's date_last_interaction to the
// newest interaction created by then in the change record: it moves with
// new interactions only, never with a status change of an existing one.
func TestDateLastInteraction(t *testing.T) {
	e := newEnv(t, activityOptions(300))
	svc := e.sim.Services()[0]
	start := e.clock.Now()
	type read struct {
		at     time.Time
		last   map[string]string
		status map[string]string
	}
	var reads []read
	for i := 0; i <= 120; i++ {
		last, status, pages := sessionIndex(t, e, svc)
		if pages != 3 || len(last) != 300 {
			t.Fatalf("%d sessions in %d pages, want 300 in 3 (100 per page)", len(last), pages)
		}
		reads = append(reads, read{e.clock.Now(), last, status})
		e.clock.Advance(time.Minute)
	}
	created := map[string][]time.Time{} // session → creation times, in order
	statusChanged := map[string][]time.Time{}
	for _, c := range e.sim.Changes() {
		switch c.Kind {
		case "created":
			created[c.Target.SessionSID] = append(created[c.Target.SessionSID], c.Time)
		case "status":
			statusChanged[c.Target.SessionSID] = append(statusChanged[c.Target.SessionSID], c.Time)
		}
	}
	// Newest creation at or before at.
	newest := func(ses string, at time.Time) string {
		ts := created[ses]
		i, _ := slices.BinarySearchFunc(ts, at, func(x, at time.Time) int {
			if x.After(at) {
				return 1
			}
			return -1
		})
		if i == 0 {
			return ""
		}
		return ts[i-1].Format(time.RFC3339)
	}
	quietChanges := 0 // a status moved, no interaction was created, between two reads
	for i, r := range reads {
		for ses, got := range r.last {
			if want := newest(ses, r.at); got != want {
				t.Fatalf("session %s at %s: date_last_interaction %q, newest interaction %q", ses, r.at, got, want)
			}
			if st := r.status[ses]; (got == "") != (st == "open") || st == "closed" {
				t.Errorf("session %s: status %q with date_last_interaction %q", ses, st, got)
			}
			if i > 0 && got == reads[i-1].last[ses] {
				for _, c := range statusChanged[ses] {
					if c.After(reads[i-1].at) && !c.After(r.at) {
						quietChanges++
						break
					}
				}
			}
		}
	}
	t.Logf("%d reads saw a status change without a new interaction", quietChanges)
	if quietChanges < 50 {
		t.Errorf("only %d reads saw a status change without a new interaction: the test shows little", quietChanges)
	}
	if got := e.clock.Now().Sub(start); got < 2*time.Hour {
		t.Fatalf("ran %s", got)
	}
}

// TestActivityModel checks the world against the parameters that
// docs/performance.md gives for it: the share of sessions active in a
// window, the size of a burst, the failure rate and the late receipts.
func TestActivityModel(t *testing.T) {
	const sessions = 1000
	o := activityOptions(sessions)
	e := newEnv(t, o)
	start := e.clock.Now()
	e.clock.Advance(2 * time.Hour)
	changes := e.sim.Changes()

	// Share of sessions with a new interaction in each 10-minute window.
	const windows = 12
	var active [windows]map[string]bool
	created, final := 0, map[string]string{}
	sentAt := map[string]time.Time{}
	late, undelivered := 0, 0
	for _, c := range changes {
		switch {
		case c.Kind == "created" && !c.Time.Before(start):
			created++
			w := int(c.Time.Sub(start) / (10 * time.Minute))
			if w < windows {
				if active[w] == nil {
					active[w] = map[string]bool{}
				}
				active[w][c.Target.SessionSID] = true
			}
		case c.Kind == "status" && c.To == "sent":
			sentAt[c.InteractionSID] = c.Time
		case c.Kind == "status" && c.To == "undelivered":
			undelivered++
			if c.Time.Sub(sentAt[c.InteractionSID]) >= 30*time.Minute {
				late++
			}
		}
		if c.Kind != "deleted" && c.Created.Before(start.Add(90*time.Minute)) {
			final[c.InteractionSID] = c.To
		}
	}
	sum := 0
	for _, a := range active {
		sum += len(a)
	}
	share := float64(sum) / windows / sessions
	t.Logf("active share %.3f, %d created, %d late of %d undelivered, outcomes of %d", share, created, late, undelivered, len(final))
	// Bursts start in 5 % of session-windows; a few spill into the next
	// window.
	if share < 0.045 || share > 0.07 {
		t.Errorf("%.3f of sessions active per 10 minutes, want about 0.05", share)
	}
	// Bursts of 2..8 messages (5 on average): about 0.05 × 12 × 5 per
	// session in two hours.
	if perSession := float64(created) / sessions; perSession < 2.4 || perSession > 3.6 {
		t.Errorf("%.2f new interactions per session in 2 h, want about 3", perSession)
	}
	// Every outcome occurs, in about the shares configured.
	outcomes := map[string]int{}
	for _, st := range final {
		outcomes[st]++
	}
	failedShare := float64(outcomes["failed"]+outcomes["undelivered"]) / float64(len(final))
	if failedShare < 0.17 || failedShare > 0.23 {
		t.Errorf("%.3f of interactions failed, want about 0.2: %v", failedShare, outcomes)
	}
	for _, st := range []string{"queued", "sending", "delivered", "failed", "undelivered"} {
		if outcomes[st] == 0 {
			t.Errorf("no interaction ended %s: %v", st, outcomes)
		}
	}
	// A quarter of undelivered receipts arrive 30 minutes to 2 hours after
	// sent.
	if late == 0 || float64(late)/float64(undelivered) < 0.15 || float64(late)/float64(undelivered) > 0.35 {
		t.Errorf("%d of %d undelivered receipts late, want about a quarter", late, undelivered)
	}
}

// TestFailures holds the ground-truth query to the change record, for a
// window in the past and for one still ahead of the clock.
func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    proxysim.Options
	}{
		{"activity", activityOptions(200)},
		{"schedule", proxysim.Options{Sessions: 20, Interactions: 5, FailureRate: 0.3, StuckRate: 0.1,
			InteractionEvery: time.Minute, RateLimit: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			t0 := e.clock.Now()
			// Asked ahead of the clock: the world is known in advance.
			ahead := e.sim.Failures(t0.Add(30*time.Minute), t0.Add(90*time.Minute))
			e.clock.Advance(2 * time.Hour)
			var want []proxysim.Change
			for _, c := range e.sim.Changes() {
				if c.Kind == "status" && (c.To == "failed" || c.To == "undelivered") {
					want = append(want, c)
				}
			}
			if got := e.sim.Failures(time.Time{}, e.clock.Now()); !equalJSON(got, want) {
				t.Fatalf("Failures of the whole run: %d, change record: %d", len(got), len(want))
			}
			var window []proxysim.Change
			for _, c := range want {
				if c.Time.After(t0.Add(30*time.Minute)) && !c.Time.After(t0.Add(90*time.Minute)) {
					window = append(window, c)
				}
			}
			if len(window) < 10 || !equalJSON(ahead, window) {
				t.Fatalf("Failures asked ahead: %d, change record: %d", len(ahead), len(window))
			}
			for _, c := range window {
				if c.Created.IsZero() || c.Created.After(c.Time) {
					t.Fatalf("failure %+v: creation time not before it", c)
				}
			}
		})
	}
}

// TestActivityReplay: replaying the change record of the activity world
// gives exactly what its listings serve, status by status.
func TestActivityReplay(t *testing.T) {
	o := activityOptions(40)
	o.DeleteRate, o.SessionOpenEvery, o.SessionLifetime = 0.1, 7*time.Minute, 30*time.Minute
	e := newEnv(t, o)
	e.clock.Advance(95 * time.Minute)
	replayed := map[string]map[string]string{}
	for _, c := range e.sim.Changes() {
		k := c.Target.String()
		if replayed[k] == nil {
			replayed[k] = map[string]string{}
		}
		switch {
		case c.Kind == "created":
			replayed[k][c.InteractionSID] = c.To
		case c.Kind == "status" && c.Leg == proxysim.LegOutbound:
			if replayed[k][c.InteractionSID] != c.From {
				t.Fatalf("change %+v does not follow %q", c, replayed[k][c.InteractionSID])
			}
			replayed[k][c.InteractionSID] = c.To
		case c.Kind == "deleted":
			delete(replayed[k], c.InteractionSID)
		}
	}
	n := 0
	for _, tg := range e.sim.Targets() {
		got, want := statusOf(e, tg), replayed[tg.String()]
		if len(got) != len(want) {
			t.Fatalf("%s: %d listed, %d replayed", tg, len(got), len(want))
		}
		for sid, st := range got {
			if want[sid] != st {
				t.Errorf("%s %s: listed %q, replayed %q", tg, sid, st, want[sid])
			}
			// Each listed interaction is also fetched by SID.
			if n%10 == 0 {
				if r := e.get(participantPath(tg) + "/" + sid); r.status != http.StatusOK {
					t.Errorf("fetch %s: %d", sid, r.status)
				}
			}
			n++
		}
	}
	if n < 200 {
		t.Errorf("world too small to mean much: %d interactions", n)
	}
}

// TestActivityMatchesOpenAPISpec validates what the activity world serves,
// at the epoch and later (bursts in flight, late receipts, sessions opened
// and closed since), against Twilio's specs: Proxy and FetchMessage.
func TestActivityMatchesOpenAPISpec(t *testing.T) {
	o := activityOptions(60)
	o.DeleteRate, o.SessionOpenEvery, o.SessionLifetime = 0.1, 3*time.Minute, 30*time.Minute
	e := newEnv(t, o)
	v := &validator{t: t, e: e, router: specRouter(t, e.srv.URL)}
	mv := messageValidator(t, e)
	for _, step := range []time.Duration{0, 37 * time.Minute, 58 * time.Minute} {
		e.clock.Advance(step)
		svc := e.sim.Services()[0]
		if n := v.walk("/v1/Services/" + svc + "/Sessions?PageSize=20"); n < 60 {
			t.Errorf("%d sessions listed", n)
		}
		for i, tg := range e.sim.Targets() {
			if i%5 != 0 {
				continue
			}
			ses := "/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID
			v.get(ses)
			v.get(ses + "/Participants/" + tg.ParticipantSID)
			v.walk(sessionPath(tg) + "?PageSize=3")
			v.walk(participantPath(tg) + "?PageSize=2")
			for _, it := range e.list(participantPath(tg) + "?PageSize=1000").Interactions {
				v.get(participantPath(tg) + "/" + it["sid"].(string))
				for _, leg := range []string{"inbound", "outbound"} {
					if sid, ok := it[leg+"_resource_sid"].(string); ok {
						if r := mv.get(messagePath(e, sid)); r.status != http.StatusOK {
							t.Fatalf("%s: %d", sid, r.status)
						}
					}
				}
			}
		}
	}
	if v.n < 300 || mv.n < 100 {
		t.Errorf("only %d Proxy and %d message responses validated", v.n, mv.n)
	}
}
