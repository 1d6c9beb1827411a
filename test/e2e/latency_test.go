//go:build linux

package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// testLatency is scenario 2: detection latency, from the instant a status
// changes in the simulator (its record of changes is exact to the second,
// and a status is served from the start of its second) to the instant the
// JetStream subscriber receives the event, for 1,000 targets at @every 10s.
// Twilio's 30/s per Service means 1,000 polls per 10 s need several
// Services: 10 Services of 100 participants, 10 polls/s each.
func testLatency(t *testing.T) {
	longOnly(t)
	window := 90 * time.Second
	world := proxysim.Options{
		Seed: *seed, Services: 10, Sessions: 50, Participants: 2,
		Interactions: 3, BacklogGap: time.Minute, InteractionEvery: 30 * time.Second,
		FailureRate: 0.2,
		// Measured, not enforced: the simulator's limiter runs on its
		// clock, which finish freezes, and a frozen window never empties.
		// The busiest second and 5 s window per Service are reported, and
		// scenario 1 runs against the enforced limit.
		RateLimit: -1,
	}
	r := newRig(t, rigOptions{Sim: world, Schedule: "@every 10s"})
	d := r.start()
	firstStart := d.started
	d.WaitReady(2 * time.Minute)
	baselined := time.Now()
	for time.Since(baselined) < window {
		select {
		case <-d.exited:
			t.Fatalf("monitord exited: %v\n%s", d.waitErr, d.LogTail(20))
		case <-time.After(time.Second): // the measuring window
		}
	}
	m := d.MustMetrics()
	st := r.sim.Stats() // before the freeze, which stops the simulator's clock
	v := r.finish(d, firstStart, baselined, nil, nil)
	if !v.OK() {
		t.Error(v)
	}

	hs := histories(r.sim.Changes())
	cut := baselined.Add(time.Second)
	var lat []time.Duration
	for _, e := range r.rec.Events() {
		h := hs[e.CE.Data.InteractionSID]
		if h == nil {
			continue
		}
		var at time.Time
		switch e.Kind() {
		case "created":
			at = h.created
		case "status_changed", "failed":
			at = h.reached(e.CE.Data.Leg, e.CE.Data.Status)
		default:
			continue
		}
		if at.IsZero() || !at.After(cut) {
			continue
		}
		lat = append(lat, e.At.Sub(at))
	}
	if len(lat) == 0 {
		t.Fatal("no event to measure")
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	figure(t, "latency: 1000 targets at @every 10s over 10 Services; %d events (created, status_changed, failed) in %v: p50 %v, p90 %v, p99 %v, max %v (goal p99 ≤ 11s)",
		len(lat), window, pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1].Round(time.Millisecond))
	figure(t, "latency: CPU of monitord %.1fs over the run (%.0f%% of one core), RSS %.0f MiB; polls skipped %.0f",
		m["process_cpu_seconds_total"], 100*m["process_cpu_seconds_total"]/time.Since(firstStart).Seconds(),
		m["process_resident_memory_bytes"]/(1<<20), m["monitord_polls_skipped_total"])
	figure(t, "latency: busiest Service: %d requests in its busiest second, %d in its busiest 5 s window (Twilio allows 150)",
		st.MaxPerSecond(), maxPerWindow(st))
	figure(t, "latency: %s", v)
}
