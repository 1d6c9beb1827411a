package proxysim_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

func worldBytes(t *testing.T, e *env) []byte {
	t.Helper()
	var b bytes.Buffer
	paths := []string{}
	for _, svc := range e.sim.Services() {
		paths = append(paths, "/v1/Services/"+svc+"/Sessions")
	}
	for _, tg := range e.sim.Targets() {
		paths = append(paths, participantPath(tg), sessionPath(tg))
	}
	for _, p := range paths {
		r := e.get(p + "?PageSize=1000")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", p, r.status)
		}
		// URLs name the test server's port: compare without it.
		b.Write(bytes.ReplaceAll(r.body, []byte(e.srv.URL), nil))
	}
	return b.Bytes()
}

func TestDeterminism(t *testing.T) {
	o := proxysim.Options{Seed: 42, Services: 2, Sessions: 2, Participants: 3, Interactions: 20,
		FailureRate: 0.2, StuckRate: 0.1, DeleteRate: 0.1, InteractionEvery: 2 * time.Minute,
		SessionOpenEvery: 3 * time.Minute, SessionLifetime: 5 * time.Minute, RateLimit: -1}
	a, b := newEnv(t, o), newEnv(t, o)
	for range 3 {
		wa, wb := worldBytes(t, a), worldBytes(t, b)
		if !bytes.Equal(wa, wb) {
			t.Fatal("same seed and clock served different bytes")
		}
		a.clock.Advance(7 * time.Minute)
		b.clock.Advance(7 * time.Minute)
	}
	o.Seed = 43
	c := newEnv(t, o)
	if bytes.Equal(worldBytes(t, a), worldBytes(t, c)) {
		t.Fatal("different seeds served the same world")
	}
	if a.sim.Credentials() == c.sim.Credentials() {
		t.Fatal("different seeds share credentials")
	}
}

// statusOf lists a target and returns outbound status by SID.
func statusOf(e *env, tg proxysim.Target) map[string]string {
	items, _ := e.listAll(participantPath(tg) + "?PageSize=1000")
	out := map[string]string{}
	for _, it := range items {
		s, _ := it["outbound_resource_status"].(string)
		out[it["sid"].(string)] = s
	}
	return out
}

func TestStatusesMoveWithTime(t *testing.T) {
	e := newEnv(t, proxysim.Options{Sessions: 20, Interactions: 10, BacklogGap: 10 * time.Second,
		FailureRate: 0.3, StuckRate: 0.1, InteractionEvery: 20 * time.Second})
	seen := map[string]int{}
	moved := 0
	before := map[string]string{}
	for _, tg := range e.sim.Targets() {
		for sid, st := range statusOf(e, tg) {
			before[sid] = st
		}
	}
	e.clock.Advance(2 * time.Minute)
	for _, tg := range e.sim.Targets() {
		for sid, st := range statusOf(e, tg) {
			seen[st]++
			if b, ok := before[sid]; ok && b != st {
				moved++
			}
		}
	}
	for _, st := range []string{"queued", "sending", "delivered", "failed", "undelivered"} {
		if seen[st] == 0 {
			t.Errorf("no interaction is %s after 2 minutes: %v", st, seen)
		}
	}
	if moved == 0 {
		t.Error("no status changed in 2 minutes")
	}
	if len(seen) == 0 || len(before) >= sum(seen) {
		t.Errorf("no interactions created over time: %d before, %d after", len(before), sum(seen))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestChangesReplayToListing checks the change record against what is
// served: replaying every change gives exactly the current listings.
func TestChangesReplayToListing(t *testing.T) {
	e := newEnv(t, proxysim.Options{Sessions: 4, Interactions: 8, BacklogGap: 5 * time.Second,
		FailureRate: 0.2, StuckRate: 0.1, DeleteRate: 0.2, InteractionEvery: 15 * time.Second,
		SessionOpenEvery: 40 * time.Second, SessionLifetime: 2 * time.Minute})
	tgs := e.sim.Targets()
	e.clock.Advance(30 * time.Second)
	items := e.list(participantPath(tgs[0])).Interactions
	sid := items[len(items)-1]["sid"].(string)
	if err := e.sim.SetStatus(sid, proxysim.LegOutbound, "failed"); err != nil {
		t.Fatal(err)
	}
	added, err := e.sim.AddInteraction(tgs[1], "")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(20 * time.Minute)
	if err := e.sim.DeleteInteraction(added); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)

	replayed := map[string]map[string]string{} // target → sid → outbound status
	for _, c := range e.sim.Changes() {
		k := c.Target.String()
		if replayed[k] == nil {
			replayed[k] = map[string]string{}
		}
		switch c.Kind {
		case "created":
			replayed[k][c.InteractionSID] = c.To
		case "status":
			if c.Leg == proxysim.LegOutbound {
				if replayed[k][c.InteractionSID] != c.From {
					t.Fatalf("change %+v does not follow %q", c, replayed[k][c.InteractionSID])
				}
				replayed[k][c.InteractionSID] = c.To
			}
		case "deleted":
			delete(replayed[k], c.InteractionSID)
		}
	}
	// ChangesSince is the tail of the same record.
	all := e.sim.Changes()
	cut := all[len(all)/2].Time
	tail := e.sim.ChangesSince(cut)
	if len(tail) == 0 || !tail[0].Time.After(cut) || !equalJSON(tail, all[len(all)-len(tail):]) {
		t.Errorf("ChangesSince(%s): %d changes, not the tail of Changes", cut, len(tail))
	}

	n := 0
	for _, tg := range e.sim.Targets() {
		got := statusOf(e, tg)
		want := replayed[tg.String()]
		if len(got) != len(want) {
			t.Fatalf("%s: %d listed, %d replayed", tg, len(got), len(want))
		}
		for sid, st := range got {
			if want[sid] != st {
				t.Errorf("%s %s: listed %q, replayed %q", tg, sid, st, want[sid])
			}
			n++
		}
	}
	if n < 100 || len(e.sim.Targets()) <= len(tgs) {
		t.Errorf("world too small to mean much: %d interactions, %d targets", n, len(e.sim.Targets()))
	}
}

func TestEdits(t *testing.T) {
	e := newEnv(t, proxysim.Options{Sessions: 2, Interactions: 4})
	tgs := e.sim.Targets()
	tg := tgs[0]
	items := e.list(participantPath(tg)).Interactions
	sid := items[0]["sid"].(string)

	if err := e.sim.SetStatus(sid, proxysim.LegOutbound, "brand-new-status"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if got := statusOf(e, tg)[sid]; got != "brand-new-status" {
		t.Errorf("status after SetStatus: %q", got)
	}
	if err := e.sim.SetStatus(sid, "sideways", "x"); err == nil {
		t.Error("SetStatus accepted a bad leg")
	}
	if err := e.sim.SetStatus("KI"+strings.Repeat("0", 32), proxysim.LegOutbound, "x"); !errors.Is(err, proxysim.ErrNotFound) {
		t.Errorf("SetStatus of unknown SID: %v", err)
	}

	added, err := e.sim.AddInteraction(tg, "queued")
	if err != nil {
		t.Fatal(err)
	}
	if got := statusOf(e, tg); got[added] != "queued" || len(got) != 5 {
		t.Errorf("after AddInteraction: %v", got)
	}
	r := e.get(participantPath(tg) + "/" + added)
	if r.status != 200 || !strings.Contains(string(r.body), `"inbound_resource_status":null`) {
		t.Errorf("fetch added: %d %s", r.status, r.body)
	}

	if err := e.sim.DeleteInteraction(added); err != nil {
		t.Fatal(err)
	}
	if _, ok := statusOf(e, tg)[added]; ok {
		t.Error("deleted interaction still listed")
	}
	wantError(t, e.get(participantPath(tg)+"/"+added), http.StatusNotFound, 20404)
	if err := e.sim.DeleteInteraction(added); !errors.Is(err, proxysim.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}

	// A closed session and its lists stay readable.
	if err := e.sim.CloseSession(tg.ServiceSID, tg.SessionSID); err != nil {
		t.Fatal(err)
	}
	r = e.get("/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"closed"`) || !strings.Contains(string(r.body), `"closed_reason":"api"`) {
		t.Errorf("closed session: %d %s", r.status, r.body)
	}
	if len(statusOf(e, tg)) != 4 {
		t.Error("closed session's listing changed")
	}
	if _, err := e.sim.AddInteraction(tgs[1], ""); !errors.Is(err, proxysim.ErrSessionClosed) {
		t.Errorf("AddInteraction on a closed session: %v", err)
	}
	if _, err := e.sim.AddInteraction(tgs[2], ""); err != nil {
		t.Error(err)
	}

	// A deleted one answers 404 everywhere.
	if err := e.sim.DeleteSession(tg.ServiceSID, tg.SessionSID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{participantPath(tg), sessionPath(tg),
		"/v1/Services/" + tg.ServiceSID + "/Sessions/" + tg.SessionSID + "/Participants",
		participantPath(tg) + "/" + sid} {
		wantError(t, e.get(p), http.StatusNotFound, 20404)
	}
	for _, x := range e.sim.Targets() {
		if x.SessionSID == tg.SessionSID {
			t.Error("deleted session still in Targets")
		}
	}

	// OpenSession: a new session with participants whose messages appear.
	opened, err := e.sim.OpenSession(tg.ServiceSID, 3)
	if err != nil || len(opened) != 3 {
		t.Fatalf("OpenSession: %v %v", opened, err)
	}
	found := false
	for _, s := range e.list("/v1/Services/" + tg.ServiceSID + "/Sessions").Sessions {
		if s["sid"] == opened[0].SessionSID {
			found = s["status"] == "open"
		}
	}
	if !found {
		t.Error("opened session not listed as open")
	}
	e.clock.Advance(time.Hour)
	if n := len(statusOf(e, opened[2])); n != 4 {
		t.Errorf("opened session's participant has %d interactions after an hour, want 4", n)
	}
	if _, err := e.sim.OpenSession("KS"+strings.Repeat("0", 32), 2); !errors.Is(err, proxysim.ErrNotFound) {
		t.Errorf("OpenSession on unknown Service: %v", err)
	}
}

func TestSessionsOpenAndClose(t *testing.T) {
	e := newEnv(t, proxysim.Options{Sessions: 2, Interactions: 3,
		SessionOpenEvery: time.Minute, SessionLifetime: 5 * time.Minute})
	svc := e.sim.Services()[0]
	count := func() (open, closed int) {
		all, _ := e.listAll("/v1/Services/" + svc + "/Sessions?PageSize=5")
		for _, s := range all {
			if s["status"] == "closed" {
				closed++
			} else {
				open++
			}
		}
		return open, closed
	}
	if o, c := count(); o != 2 || c != 0 {
		t.Fatalf("at epoch: %d open, %d closed", o, c)
	}
	e.clock.Advance(10*time.Minute + 30*time.Second)
	// Ten more opened, the first five of them closed by now.
	if o, c := count(); o != 7 || c != 5 {
		t.Errorf("after 10.5 min: %d open, %d closed, want 7 and 5", o, c)
	}
	if n := len(e.sim.Targets()); n != 12*2 {
		t.Errorf("%d targets, want 24", n)
	}
}
