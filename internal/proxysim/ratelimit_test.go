package proxysim_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

func TestRateLimitBurst(t *testing.T) {
	e := newEnv(t, proxysim.Options{Services: 2, RetryAfter: 1500 * time.Millisecond})
	tg := e.sim.Targets()[0]
	path := participantPath(tg)
	// 150 at one instant pass (the burst), the 151st is refused.
	for i := 0; i < 150; i++ {
		if r := e.get(path); r.status != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, r.status)
		}
	}
	r := e.get(path)
	wantError(t, r, http.StatusTooManyRequests, 20429)
	if ra := r.header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (1.5 s rounded up)", ra)
	}
	// Another endpoint of the same Service, and the same endpoint of
	// another Service, have their own budgets.
	if r := e.get(sessionPath(tg)); r.status != http.StatusOK {
		t.Errorf("other endpoint: %d", r.status)
	}
	other := e.sim.Targets()[len(e.sim.Targets())-1]
	if other.ServiceSID == tg.ServiceSID {
		t.Fatal("expected a target of the second Service last")
	}
	if r := e.get(participantPath(other)); r.status != http.StatusOK {
		t.Errorf("other Service: %d", r.status)
	}
	// The window slides: just under 5 s later still refused, at 5 s free.
	e.clock.Advance(5*time.Second - time.Millisecond)
	wantError(t, e.get(path), http.StatusTooManyRequests, 20429)
	e.clock.Advance(time.Millisecond)
	if r := e.get(path); r.status != http.StatusOK {
		t.Errorf("after the window: %d", r.status)
	}

	st := e.sim.Stats()
	k := proxysim.Key{Endpoint: proxysim.EndpointMessageInteractions, ServiceSID: tg.ServiceSID}
	if got := st.Endpoints[k]; got.Requests != 153 || got.RateLimited != 2 || got.MaxPerSecond != 150 || got.MaxPerWindow != 150 {
		t.Errorf("endpoint stats %+v", got)
	}
	if st.RateLimited != 2 || st.TooManyRequests() != 2 || st.MaxPerSecond() != 150 || st.Requests != 155 {
		t.Errorf("stats %+v", st)
	}
	e.sim.ResetStats()
	if st := e.sim.Stats(); st.Requests != 0 || st.Endpoints[k].Requests != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func TestRateLimitSustained(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perSec  int
		want429 bool
	}{
		{"30/s for a minute", 30, false},
		{"31/s exceeds it", 31, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Straight into the handler: 1,800 requests over HTTP would
			// only slow the test down.
			e := newEnv(t, proxysim.Options{Interactions: 1})
			path := participantPath(e.sim.Targets()[0])
			c := e.sim.Credentials()
			get := func() int {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.SetBasicAuth(c.AccountSID, c.AuthToken)
				w := httptest.NewRecorder()
				e.sim.ServeHTTP(w, req)
				return w.Code
			}
			got429 := false
			// Request i at exactly i/perSec seconds, without rounding drift.
			at := func(i int) time.Duration { return time.Duration(i) * time.Second / time.Duration(tc.perSec) }
			for i := 0; i < 60*tc.perSec; i++ {
				switch get() {
				case http.StatusOK:
				case http.StatusTooManyRequests:
					got429 = true
				default:
					t.Fatal("unexpected status")
				}
				e.clock.Advance(at(i+1) - at(i))
			}
			if got429 != tc.want429 {
				t.Errorf("429 seen: %v, want %v", got429, tc.want429)
			}
			if r := e.sim.Stats().Endpoints[proxysim.Key{Endpoint: proxysim.EndpointMessageInteractions, ServiceSID: e.sim.Targets()[0].ServiceSID}]; r.MaxPerWindow > 150 {
				t.Errorf("admitted %d in one window", r.MaxPerWindow)
			}
		})
	}
}

func TestRateLimitDisabledStillMeasures(t *testing.T) {
	e := newEnv(t, proxysim.Options{RateLimit: -1})
	path := participantPath(e.sim.Targets()[0])
	for i := 0; i < 200; i++ {
		if r := e.get(path); r.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	if m := e.sim.Stats().MaxPerSecond(); m != 200 {
		t.Errorf("MaxPerSecond %d, want 200", m)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	e := newEnv(t, proxysim.Options{MaxConcurrent: 1})
	path := participantPath(e.sim.Targets()[0])
	e.sim.SetFaults(proxysim.Faults{Latency: time.Hour})
	// One request parks in the injected latency; closing the server's
	// client connections at cleanup releases it.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := e.sim.Credentials()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.SetBasicAuth(c.AccountSID, c.AuthToken)
		if resp, err := e.srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, func() bool { return e.sim.Stats().MaxInFlight == 1 })
	wantError(t, e.get(path), http.StatusTooManyRequests, 20429)
	if st := e.sim.Stats(); st.ConcurrencyLimited != 1 || st.TooManyRequests() != 1 {
		t.Errorf("stats %+v", st)
	}
	e.srv.CloseClientConnections()
	wg.Wait()
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRateLimitServiceSIDCase: a Service SID's hex digits decode in either
// case, so the simulator serves a path with the SID upper-cased; it must
// draw from the same budget, or a client could double its limit by writing
// the SID twice.
func TestRateLimitServiceSIDCase(t *testing.T) {
	e := newEnv(t, proxysim.Options{})
	tg := e.sim.Targets()[0]
	for i := 0; i < 150; i++ {
		if r := e.get(participantPath(tg)); r.status != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, r.status)
		}
	}
	upper := tg
	upper.ServiceSID = "KS" + strings.ToUpper(tg.ServiceSID[2:])
	wantError(t, e.get(participantPath(upper)), http.StatusTooManyRequests, 20429)
	st := e.sim.Stats()
	if len(st.Endpoints) != 1 {
		t.Errorf("%d limiter keys, want 1: %v", len(st.Endpoints), st.Endpoints)
	}
}
