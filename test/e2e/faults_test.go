//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// testAPIFaults is scenario 5: the simulator answers badly in phases — 10%
// 5xx with latency spikes, truncated and HTML bodies; a 429 storm with
// Retry-After; one without — while one target answers 401 throughout, and
// halfway one session is deleted (404) and another closed. monitord must
// not exit, must not emit a false deleted or lose an event, and must emit
// one target_error and one target_recovered per outage.
func testAPIFaults(t *testing.T) {
	phase := 5 * time.Second
	if *long {
		phase = 30 * time.Second
	}
	r := newRig(t, rigOptions{Sim: churningWorld(6), Schedule: "@every 1s"})
	targets := r.sim.Targets()
	authTarget := targets[0]
	gone := proxysim.Target{ServiceSID: targets[len(targets)-1].ServiceSID, SessionSID: targets[len(targets)-1].SessionSID}
	// A closed session stays readable on Twilio: no 404, no target event,
	// no deleted — it just gets no new interactions.
	closed := targets[2]
	skip := map[string]bool{}
	for _, tg := range targets {
		if tg.SessionSID == gone.SessionSID {
			skip[targetKey(tg)] = true
		}
	}

	d := r.start()
	firstStart := d.started
	d.WaitReady(60 * time.Second)
	baselined := time.Now()
	r.sim.ResetStats()
	before := d.MustMetrics()

	if err := r.sim.SetTargetError(authTarget, 401); err != nil {
		t.Fatal(err)
	}
	phases := []struct {
		name string
		f    proxysim.Faults
	}{
		{"10% 5xx, latency spikes up to 1.5s, 5% truncated, 2% HTML", proxysim.Faults{ErrorRate: 0.1, Jitter: 1500 * time.Millisecond, TruncateRate: 0.05, HTMLRate: 0.02}},
		{"429 storm (50%) with Retry-After: 1", proxysim.Faults{StormRate: 0.5, StormRetryAfter: time.Second}},
		{"429 storm (50%) without Retry-After", proxysim.Faults{StormRate: 0.5}},
	}
	var deletedSession []proxysim.Change
	for i, p := range phases {
		if i == 1 {
			// The session's record disappears with it: keep what it was.
			for _, c := range r.sim.Changes() {
				if c.Target.SessionSID == gone.SessionSID {
					deletedSession = append(deletedSession, c)
				}
			}
			if err := r.sim.DeleteSession(gone.ServiceSID, gone.SessionSID); err != nil {
				t.Fatal(err)
			}
			if err := r.sim.CloseSession(closed.ServiceSID, closed.SessionSID); err != nil {
				t.Fatal(err)
			}
		}
		r.sim.SetFaults(p.f)
		st0 := r.sim.Stats()
		m0 := d.MustMetrics()
		end := time.Now().Add(phase)
		for time.Now().Before(end) {
			select {
			case <-d.exited:
				t.Fatalf("monitord exited during %q: %v\n%s", p.name, d.waitErr, d.LogTail(30))
			case <-time.After(200 * time.Millisecond): // the phase's length, watching the process
			}
		}
		st, m := r.sim.Stats(), d.MustMetrics()
		figure(t, "api_faults: phase %q for %v: %d requests, %d faults injected, %d answered 429; monitord: %.0f polls ok, %.0f failed, %.0f retries",
			p.name, phase, st.Requests-st0.Requests, st.Faults-st0.Faults, st.TooManyRequests()-st0.TooManyRequests(),
			m[mPollsOK]-m0[mPollsOK], m[`monitord_polls_total{result="error"}`]-m0[`monitord_polls_total{result="error"}`],
			sumPrefix(m, "monitord_api_retries_total")-sumPrefix(m0, "monitord_api_retries_total"))
	}
	r.sim.SetFaults(proxysim.Faults{})
	if err := r.sim.SetTargetError(authTarget, 0); err != nil {
		t.Fatal(err)
	}
	after := d.MustMetrics()
	v := r.finish(d, firstStart, baselined, skip, deletedSession)
	figure(t, "api_faults: %s", v)
	if !v.OK() {
		t.Error(v)
	}
	figure(t, "api_faults: over all phases monitord saw %.0f API responses 429, %.0f 5xx, retried %.0f times",
		after["monitord_api_rate_limited_total"]-before["monitord_api_rate_limited_total"],
		sumPrefix(after, `monitord_api_requests_total{code="5`)-sumPrefix(before, `monitord_api_requests_total{code="5`),
		sumPrefix(after, "monitord_api_retries_total")-sumPrefix(before, "monitord_api_retries_total"))

	// Target events: per target, alternating error/recovered, one of each
	// per outage; exactly one outage (auth) for the 401 target, one (not
	// found, never recovered) for each target of the deleted session.
	byTarget := map[string][]received{}
	for _, e := range r.rec.Events() {
		if k := e.Kind(); k == "target_error" || k == "target_recovered" {
			byTarget[e.TargetKey()] = append(byTarget[e.TargetKey()], e)
		}
	}
	others := 0
	for _, tg := range targets {
		key := targetKey(tg)
		evs := byTarget[key]
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, fmt.Sprintf("%s(outage %d, %s %d)", e.Kind(), e.CE.Data.Outage, e.CE.Data.Class, e.CE.Data.HTTPStatus))
		}
		for i, e := range evs {
			want := "target_error"
			if i%2 == 1 {
				want = "target_recovered"
			}
			if e.Kind() != want || (i%2 == 1 && e.CE.Data.Outage != evs[i-1].CE.Data.Outage) {
				t.Errorf("target %s: target events do not pair up per outage: %v", key, kinds)
				break
			}
		}
		switch {
		case tg == authTarget:
			if len(evs) != 2 || evs[0].CE.Data.HTTPStatus != 401 {
				t.Errorf("401 target %s: want one target_error (401) and one target_recovered, got %v", key, kinds)
			}
			figure(t, "api_faults: 401 target: %v", kinds)
		case skip[key]:
			if len(evs) != 1 || evs[0].CE.Data.HTTPStatus != 404 {
				t.Errorf("target %s of the deleted session: want one target_error (404), got %v", key, kinds)
			}
			figure(t, "api_faults: target of the deleted session: %v", kinds)
		case tg.SessionSID == closed.SessionSID:
			if len(evs) != 0 {
				t.Errorf("target %s of the closed session: want no target event, got %v", key, kinds)
			}
		default:
			others += len(evs)
			if len(evs)%2 != 0 {
				t.Errorf("target %s still failing at the end: %v", key, kinds)
			}
		}
	}
	figure(t, "api_faults: the closed session's targets: no target event; %d target events for the %d targets without a deliberate outage (transient outages from the random faults, each paired)",
		others, len(targets)-3-len(skip))
}

// sumPrefix adds every series whose name{labels} starts with prefix.
func sumPrefix(m map[string]float64, prefix string) float64 {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := 0.0
	for _, k := range keys {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			s += m[k]
		}
	}
	return s
}
