package ha

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestHAFailoverRequestsWithinLimit is issue 12's scenario 6: three
// instances, each with the per-Service budget of one monitord, against a
// simulator enforcing a Service limit that one budget stays under and two
// would not. The targets ask for more than one budget, so the owner of a
// Service spends all of it. The owner of one Service is killed mid-run;
// another takes over. Across the run the simulator answered no 429, and
// no 5 s window of a Service saw more than one budget's requests: one
// instance at a time spent each Service's budget, the failover included.
//
// The limit is Twilio's scaled down (40 per 5 s rather than 150, a budget
// of 5/s and a burst of 5 rather than 27/s and 10), so a 2-core machine
// saturates it with 16 targets.
func TestHAFailoverRequestsWithinLimit(t *testing.T) {
	const (
		limit  = 40 // per endpoint per Service per 5 s window
		rps    = 5
		burst  = 5
		window = 5 * time.Second
	)
	budget := burst + rps*int(window/time.Second) // 30: one owner's most in a window
	so := worldOptions()
	so.Sessions, so.RateLimit, so.RateWindow = 4, limit, window // 8 targets per Service, polled every second
	w := newWorld(t, so)
	w.rps, w.burst = rps, burst
	j := &journal{}
	ins := startThree(t, w, j, nil)
	w.settled("baseline", settle)

	svc := w.services[0]
	countBy := func(service string, since time.Time) int {
		n := 0
		for _, p := range j.snapshot() {
			if p.service == service && !p.at.Before(since) {
				n++
			}
		}
		return n
	}
	start := time.Now()
	// Saturated: 8 targets a second against a budget of 5 requests.
	natstest.WaitFor(t, "40 listings of each Service", settle, func() bool {
		return countBy(w.services[0], start) >= 40 && countBy(w.services[1], start) >= 40
	})
	owner := j.owner(svc)
	killedAt := time.Now()
	ins[owner].kill()
	natstest.WaitFor(t, "a new owner of "+svc, settle, func() bool { return !j.firstBy(svc, owner, killedAt).IsZero() })
	taken := j.first(svc, owner, killedAt)
	first, next := taken.at, taken.inst
	failover := first.Sub(killedAt)
	// The new owner's Node called OnOwned (the daemon spends the
	// Service's burst there) before that first listing.
	pinned := ins[next].owned.firstBy(svc, "", killedAt)
	if pinned.IsZero() || pinned.After(first) {
		t.Errorf("%s took %s over without OnOwned before its first listing (OnOwned at %v, listing at %v)",
			next, svc, pinned, first)
	}
	natstest.WaitFor(t, "40 listings by the new owner", settle, func() bool { return countBy(svc, killedAt) >= 40 })
	elapsed := time.Since(start)

	st := w.sim.Stats()
	if n := st.TooManyRequests(); n != 0 {
		t.Errorf("the simulator answered %d requests with 429", n)
	}
	for _, s := range w.services {
		es := st.Endpoints[proxysim.Key{Endpoint: proxysim.EndpointMessageInteractions, ServiceSID: s}]
		rate := float64(countBy(s, start)) / elapsed.Seconds()
		t.Logf("%s: %d requests, %.1f/s over %v (budget %d/s); most in one 5 s window %d (one budget %d, limit %d), in one second %d",
			s, es.Requests, rate, elapsed.Round(time.Millisecond), rps, es.MaxPerWindow, budget, limit, es.MaxPerSecond)
		if es.MaxPerWindow > budget {
			t.Errorf("%s: %d requests in one 5 s window, more than one instance's budget (%d): two instances spent it at once",
				s, es.MaxPerWindow, budget)
		}
	}
	t.Logf("owner %s of %s killed: %s pinned after %v, first listing by it after %v", owner, svc, next,
		pinned.Sub(killedAt).Round(time.Millisecond), failover.Round(time.Millisecond))

	// The usual end: a change reaches the stream once, the state is the listing.
	w.step(1)
	w.settled("after the failover", settle)
	w.settledOwners("ownership after the failover", ins)
	w.checkListings()
}
