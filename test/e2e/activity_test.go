//go:build linux

package e2e

import (
	"flag"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// The real-time check of issue 13: the real binary, poll.mode activity,
// against the simulator's activity world over HTTP with Twilio's limit,
// at a tenth of BenchmarkActivity's scale with the budget scaled to keep
// the same pressure, on the same timeline as
//
//	go test ./internal/activity/ -run '^$' -bench 'BenchmarkActivity/activity' -benchtime 1x \
//	  -args -activity.sessions=1000 -activity.warmup=15m -activity.horizon=10m -activity.tail=2m -activity.sweep=false
//
// so that the two clocks can be compared figure by figure
// (docs/performance.md). It takes warm-up + window + tail of real time.
var (
	rtSessions = flag.Int("e2e.activity.sessions", 1000, "activity_realtime: sessions of the Service (budget 27/s per 10,000)")
	rtWarmUp   = flag.Duration("e2e.activity.warmup", 15*time.Minute, "activity_realtime: time before the measured window")
	rtWindow   = flag.Duration("e2e.activity.window", 10*time.Minute, "activity_realtime: the measured window")
	rtTail     = flag.Duration("e2e.activity.tail", 2*time.Minute, "activity_realtime: time after the window to detect its failures")
)

func testActivityRealTime(t *testing.T) {
	longOnly(t)
	n := *rtSessions
	rps := 27 * float64(n) / 10000
	epoch := time.Now().Truncate(time.Second)
	// BenchmarkActivity's world: seed 13, the activity defaults.
	world := proxysim.Options{Seed: 13, Sessions: n, Participants: 2, FailureRate: 0.05, StuckRate: 0.01,
		Activity: &proxysim.Activity{}, Epoch: epoch}
	r := newRig(t, rigOptions{Sim: world, Schedule: "@every 1m" /* unused in activity mode */, Config: func(dc *daemonConfig) {
		dc.Mode = "activity"
		dc.Activity = "{index_every: 30s, hot_min: 10s, hot_max: 5m, cold_every: 30m, settle: 15m}"
		dc.AlertRecent = 15 * time.Minute // the default: a failure seen at a target's first poll counts
		dc.RequestsPerSecond = rps
		dc.Heartbeat = time.Minute
	}})
	d := startDaemon(t, r.bin, r.cfgPath, r.cfg.AdminAddr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("monitord's last lines:\n%s", d.LogTail(30))
		}
	})
	r.rec = startRecorder(t, r.nats.URL(), 30*time.Second)
	from := epoch.Add(*rtWarmUp)
	end := from.Add(*rtWindow)
	wait := func(until time.Time) {
		for time.Now().Before(until) {
			if !d.Running() {
				t.Fatalf("monitord exited:\n%s", d.LogTail(30))
			}
			time.Sleep(min(5*time.Second, time.Until(until)))
		}
	}
	wait(from)
	warm := r.sim.Stats()
	r.sim.ResetStats()
	wait(end)
	st := r.sim.Stats()
	wait(end.Add(*rtTail))

	// The first failed event of each leg, by the event's time (the poll's).
	first := map[string]time.Time{}
	for _, e := range r.rec.Events() {
		if e.Kind() != "failed" {
			continue
		}
		k := strings.ToLower(e.CE.Data.InteractionSID) + "/" + e.CE.Data.Leg
		if at, ok := first[k]; !ok || e.CE.Time.Before(at) {
			first[k] = e.CE.Time
		}
	}
	var early, late []float64
	missed := 0
	for _, f := range r.sim.Failures(from, end.Add(-time.Second)) {
		at, ok := first[strings.ToLower(f.InteractionSID)+"/"+string(f.Leg)]
		if !ok {
			missed++
			continue
		}
		s := max(at.Sub(f.Time).Seconds(), 0)
		if f.Time.Sub(f.Created) <= 15*time.Minute {
			early = append(early, s)
		} else {
			late = append(late, s)
		}
	}
	slices.Sort(early)
	slices.Sort(late)
	q := func(xs []float64, p float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		return xs[min(len(xs)-1, int(math.Ceil(p*float64(len(xs))))-1)]
	}
	figure(t, "activity_realtime: %d sessions, %d targets, budget %.2f/s, warm-up %v, window %v, tail %v",
		n, len(r.cfg.Targets), rps, *rtWarmUp, *rtWindow, *rtTail)
	figure(t, "activity_realtime: %d failures in the window (%d early, %d late), %d missed by the end of the tail",
		len(early)+len(late)+missed, len(early), len(late), missed)
	figure(t, "activity_realtime: early failures detected p50 %.1f s, p99 %.1f s, max %.1f s; late max %.1f s",
		q(early, 0.5), q(early, 0.99), q(early, 1), q(late, 1))
	figure(t, "activity_realtime: %.2f requests/s in the window (%d requests); 429s %d in the warm-up, %d in the window",
		float64(st.Requests)/rtWindow.Seconds(), st.Requests, warm.TooManyRequests(), st.TooManyRequests())
	if code := d.Stop(30 * time.Second); code != 0 {
		t.Errorf("monitord exited %d:\n%s", code, d.LogTail(30))
	}
}
