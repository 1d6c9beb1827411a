//go:build linux

package e2e

import (
	"testing"
	"time"
)

const (
	mPollsOK   = `monitord_polls_total{result="ok"}`
	mOutbox    = `monitord_outbox_events`
	mNATSUp    = `monitord_nats_connected`
	mPublished = `monitord_events_published_total`
)

// testNATSOutage is scenario 4: NATS stops during a run and starts again
// on the same port and store. Polling must go on (polls keep completing,
// the outbox grows), and afterwards every event arrives, in order per
// target, none twice.
func testNATSOutage(t *testing.T) {
	outage := 8 * time.Second
	if *long {
		outage = 60 * time.Second
	}
	r := newRig(t, rigOptions{Sim: churningWorld(5), Schedule: "@every 1s"})
	d := r.start()
	firstStart := d.started
	d.WaitReady(60 * time.Second)
	baselined := time.Now()
	// Let some events flow through a healthy NATS first.
	if err := waitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		return len(r.rec.Events()) > 0, nil
	}); err != nil {
		t.Fatalf("no event before the outage: %v", err)
	}

	r.nats.Stop()
	down := time.Now()
	if err := waitFor(20*time.Second, 100*time.Millisecond, func() (bool, error) {
		return d.MustMetrics()[mNATSUp] == 0, nil
	}); err != nil {
		t.Fatalf("monitord never noticed NATS was down: %v", err)
	}
	// Sample the metrics once a second for the whole outage: every sample
	// must show more completed polls than the one before.
	before := d.MustMetrics()
	prev := before
	samples, stalls := 0, 0
	maxOutbox := 0.0
	for time.Since(down) < outage {
		time.Sleep(time.Second) // the sampling period, not a wait for a condition
		m := d.MustMetrics()
		samples++
		if m[mPollsOK] <= prev[mPollsOK] {
			stalls++
		}
		maxOutbox = max(maxOutbox, m[mOutbox])
		prev = m
	}
	polled := prev[mPollsOK] - before[mPollsOK]
	if stalls > 0 {
		t.Errorf("polling stalled in %d of %d one-second samples during the outage", stalls, samples)
	}
	if maxOutbox == 0 {
		t.Errorf("the outbox never held an event during the outage: the world did not change or events were dropped")
	}
	if err := r.nats.Start(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	var drained time.Duration
	if err := waitFor(60*time.Second, 50*time.Millisecond, func() (bool, error) {
		m := d.MustMetrics()
		if m[mNATSUp] == 1 && m[mOutbox] == 0 {
			drained = time.Since(up)
			return true, nil
		}
		return false, nil
	}); err != nil {
		t.Fatalf("outbox not drained within 60s of NATS coming back: %v\n%s", err, d.LogTail(20))
	}
	v := r.finish(d, firstStart, baselined, nil, nil)
	figure(t, "nats_outage: NATS down %v; %0.f polls completed during it (%d one-second samples, %d without progress); outbox peaked at %.0f events; drained %v after NATS returned",
		outage, polled, samples, stalls, maxOutbox, drained.Round(time.Millisecond))
	figure(t, "nats_outage: %s", v)
	if !v.OK() {
		t.Error(v)
	}
}
