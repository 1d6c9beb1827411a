package discover

import (
	"context"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// BenchmarkRefresh10kSessions measures what refreshing a Service with
// 10,000 open sessions (two participants each) costs in requests, the
// figure that matters under Twilio's per-Service limit: at the client's 25
// requests/s the real time of a refresh is requests/25 ("s@25rps"). The
// client runs unthrottled here; the simulator serves the same API. Pages of
// 100 sessions, Twilio's documented maximum for the Sessions list (the
// simulator would serve 1000).
//
//	go test -run '^$' -bench Refresh10k -benchtime 1x ./internal/discover/
func BenchmarkRefresh10kSessions(b *testing.B) {
	const sessions = 10000
	w := newWorld(b, proxysim.Options{Seed: 10, Sessions: sessions, Participants: 2}, func(c *twilio.Config) {
		c.PageSize = 100
		c.RequestsPerSecond, c.Burst, c.MaxInFlight = 1e6, 1e6, 16
	})
	svc := w.sim.Services()[0]
	entry := Entry{ServiceSID: svc, ParticipantRefreshEvery: DefaultParticipantRefreshEvery}
	newD := func() (*Discoverer, *recorder) {
		rec := newRecorder()
		d, err := New(Config{Entries: []Entry{rec.entry(time.Hour, entry)}, Lister: w.client, Observer: rec, Now: w.clock.Now, Concurrency: 16})
		if err != nil {
			b.Fatal(err)
		}
		return d, rec
	}
	report := func(b *testing.B, refreshes int) {
		reqs := float64(w.sessionsReqs.Load()+w.participantsReqs.Load()) / float64(refreshes)
		b.ReportMetric(reqs, "requests/refresh")
		b.ReportMetric(float64(w.sessionsReqs.Load())/float64(refreshes), "session-pages/refresh")
		b.ReportMetric(reqs/25, "s@25rps/refresh")
	}

	b.Run("cold", func(b *testing.B) {
		w.resetCounts()
		for b.Loop() {
			d, rec := newD()
			if err := d.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			if n := len(rec.set(svc)); n != 2*sessions {
				b.Fatalf("discovered %d targets, want %d", n, 2*sessions)
			}
		}
		report(b, b.N)
	})

	// Warm: a full cycle of ParticipantRefreshEvery refreshes per op, so
	// the spread re-listing is averaged in.
	b.Run("warm", func(b *testing.B) {
		d, _ := newD()
		if err := d.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		w.resetCounts()
		refreshes := 0
		for b.Loop() {
			for range entry.ParticipantRefreshEvery {
				w.clock.Advance(5 * time.Minute)
				if err := d.Refresh(context.Background()); err != nil {
					b.Fatal(err)
				}
				refreshes++
			}
		}
		report(b, refreshes)
	})

	// Warm with churn: 100 sessions open and 100 close between refreshes
	// (28,800 a day each way at @every 5m).
	b.Run("warm+churn100", func(b *testing.B) {
		d, rec := newD()
		if err := d.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		open := participantTargets(w.sim.Targets())
		w.resetCounts()
		refreshes := 0
		for b.Loop() {
			for range entry.ParticipantRefreshEvery {
				w.clock.Advance(5 * time.Minute)
				for i := 0; i < 100; i++ {
					if _, err := w.sim.OpenSession(svc, 2); err != nil {
						b.Fatal(err)
					}
					if err := w.sim.CloseSession(svc, open[0].SessionSID); err != nil {
						b.Fatal(err)
					}
					open = open[2:]
				}
				if err := d.Refresh(context.Background()); err != nil {
					b.Fatal(err)
				}
				refreshes++
			}
		}
		report(b, refreshes)
		b.ReportMetric(float64(rec.last().Targets), "targets")
	})
}

// BenchmarkRefreshAt25rps runs a cold refresh of 500 sessions through the
// client's default per-Service limit (27 requests/s, burst 10) against the
// simulator enforcing Twilio's (150 per 5 s window per endpoint): it shows
// the real time is requests/25 and that discovery stays under the limit
// (zero 429s). About 20 s.
//
//	go test -run '^$' -bench RefreshAt25rps -benchtime 1x ./internal/discover/
func BenchmarkRefreshAt25rps(b *testing.B) {
	const sessions = 500
	// The simulator's rate window runs on its clock: here the real one.
	o := proxysim.Options{Seed: 11, Sessions: sessions, Participants: 2, RateLimit: 150, Clock: time.Now}
	w := newWorld(b, o, func(c *twilio.Config) {
		c.PageSize = 100
		c.RequestsPerSecond, c.Burst, c.MaxInFlight = 0, 0, 0 // the defaults: 27/s, burst 10
	})
	svc := w.sim.Services()[0]
	for b.Loop() {
		rec := newRecorder()
		d, err := New(Config{Entries: []Entry{rec.entry(time.Hour, Entry{ServiceSID: svc})}, Lister: w.client})
		if err != nil {
			b.Fatal(err)
		}
		w.resetCounts()
		start := time.Now()
		if err := d.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		reqs := float64(w.sessionsReqs.Load() + w.participantsReqs.Load())
		b.ReportMetric(reqs, "requests/refresh")
		b.ReportMetric(took.Seconds(), "s/refresh")
		b.ReportMetric(reqs/took.Seconds(), "requests/s")
	}
	st := w.sim.Stats()
	b.ReportMetric(float64(st.RateLimited+st.ConcurrencyLimited), "429s")
	b.ReportMetric(float64(st.MaxPerSecond()), "max-1s-rate")
}
