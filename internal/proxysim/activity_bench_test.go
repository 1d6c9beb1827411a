package proxysim_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// worldOptions is the world of issue 13's BenchmarkActivity, as
// docs/performance.md ("Activity world") gives it: one Service, 10,000
// sessions of two participants (20,000 participant targets), the default
// Activity, 5 % of messages failing (a quarter of the undelivered ones
// late), 1 % stuck.
func worldOptions(clock func() time.Time) proxysim.Options {
	return proxysim.Options{Seed: 13, Sessions: 10000, Participants: 2, FailureRate: 0.05, StuckRate: 0.01,
		Activity: &proxysim.Activity{}, Clock: clock, RateLimit: -1}
}

// bufferWriter is a ResponseWriter that keeps the body in a reused buffer.
type bufferWriter struct {
	h    http.Header
	code int
	body []byte
}

func (w *bufferWriter) Header() http.Header  { return w.h }
func (w *bufferWriter) WriteHeader(code int) { w.code = code }
func (w *bufferWriter) Write(p []byte) (int, error) {
	w.body = append(w.body, p...)
	return len(p), nil
}

// BenchmarkWorld is what the simulator costs a simulated-clock benchmark of
// activity-driven polling: the 10,000-session world advanced over 2
// simulated hours in 15 s steps. At each step the sessions index is read
// (100 pages through the handler, no network) and both participants of
// every session whose date_last_interaction moved are listed; at the end the
// failures of the 2 hours are asked for. One op is the 2 simulated hours.
func BenchmarkWorld(b *testing.B) {
	const (
		step    = 15 * time.Second
		horizon = 2 * time.Hour
	)
	var index, listing, failures int64 // CPU ns (cpuTime)
	var pages, listings, nFailures int
	cpu := cpuTime()
	for b.Loop() {
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		sim := proxysim.New(worldOptions(func() time.Time { return now }))
		c := sim.Credentials()
		svc := sim.Services()[0]
		targets := map[string][]proxysim.Target{}
		all := sim.Targets()
		if len(all) != 20000 {
			b.Fatalf("%d participant targets, want 20,000", len(all))
		}
		for _, tg := range all {
			targets[tg.SessionSID] = append(targets[tg.SessionSID], tg)
		}
		w := &discardWriter{h: http.Header{}}
		bw := &bufferWriter{h: http.Header{}}
		serve := func(url string) []byte {
			req := httptest.NewRequest(http.MethodGet, url, nil)
			req.SetBasicAuth(c.AccountSID, c.AuthToken)
			bw.body, bw.code = bw.body[:0], 0
			c0 := cpuTime()
			sim.ServeHTTP(bw, req)
			index += cpuTime() - c0
			if bw.code != http.StatusOK {
				b.Fatalf("GET %s: %d", url, bw.code)
			}
			return bw.body
		}
		last := map[string]string{}
		for t := time.Duration(0); t <= horizon; t += step {
			now = sim.Epoch().Add(t)
			var moved []string
			for next := "/v1/Services/" + svc + "/Sessions?PageSize=100"; next != ""; {
				body := serve(next)
				pages++
				var items [][2]string
				items, next = scanSessions(body)
				for _, it := range items {
					if last[it[0]] != it[1] {
						last[it[0]] = it[1]
						moved = append(moved, it[0])
					}
				}
			}
			if t == 0 {
				moved = nil // the first index is the baseline, not activity
			}
			for _, ses := range moved {
				for _, tg := range targets[ses] {
					req := httptest.NewRequest(http.MethodGet, participantPath(tg)+"?PageSize=1000", nil)
					req.SetBasicAuth(c.AccountSID, c.AuthToken)
					c0 := cpuTime()
					sim.ServeHTTP(w, req)
					listing += cpuTime() - c0
					listings++
				}
			}
		}
		c0 := cpuTime()
		nFailures += len(sim.Failures(sim.Epoch(), sim.Epoch().Add(horizon)))
		failures += cpuTime() - c0
	}
	n := float64(b.N)
	// cpu-s/op is the whole process, the benchmark's own scanning of the
	// pages and GC included; sim-cpu-s/op and the rest are the process's
	// CPU time while the simulator was called (GC it caused included).
	b.ReportMetric(float64(cpuTime()-cpu)/n/1e9, "cpu-s/op")
	b.ReportMetric(float64(index+listing+failures)/n/1e9, "sim-cpu-s/op")
	b.ReportMetric(float64(index)/1e6/float64(pages/100), "cpu-ms/index")
	b.ReportMetric(float64(listing)/1e3/float64(max(listings, 1)), "cpu-µs/listing")
	b.ReportMetric(float64(listings)/n, "listings/op")
	b.ReportMetric(float64(failures)/1e6/n, "cpu-ms/failures")
	b.ReportMetric(float64(nFailures)/n, "failures/op")
}

// scanSessions picks (sid, date_last_interaction) out of a sessions page and
// its next page's URL, without decoding the rest: the benchmark measures the
// simulator, not encoding/json.
func scanSessions(body []byte) (items [][2]string, next string) {
	// Patterns that start with a rare byte: bytes.Index stops at every
	// occurrence of the first one.
	const dli, sid, np = `_last_interaction":`, `sid":"KC`, `"next_page_url":`
	rest := body
	for {
		i := bytes.Index(rest, []byte(dli))
		if i < 0 {
			break
		}
		rest = rest[i+len(dli):]
		v := "null"
		if rest[0] == '"' {
			v = string(rest[1:21])
		}
		j := bytes.Index(rest, []byte(sid))
		rest = rest[j+len(sid):]
		items = append(items, [2]string{"KC" + string(rest[:32]), v})
	}
	if i := bytes.Index(body, []byte(np)); i >= 0 && body[i+len(np)] == '"' {
		u := body[i+len(np)+1:]
		next = string(u[:bytes.IndexByte(u, '"')])
	}
	return items, next
}

// BenchmarkSessionsPage serves one page of 100 sessions of a 10,000-session
// Service, the unit of an activity index, for the activity world and for
// the fixed schedule of the same size side by side: what the bursty
// world's date_last_interaction (a walk back over the session's slots)
// costs against the schedule's arithmetic.
func BenchmarkSessionsPage(b *testing.B) {
	at := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	clock := func() time.Time { return at }
	for _, bc := range []struct {
		name string
		o    proxysim.Options
	}{
		{"activity", worldOptions(clock)},
		{"schedule", proxysim.Options{Seed: 13, Sessions: 10000, Participants: 2, Interactions: 10,
			InteractionEvery: time.Minute, Clock: clock, RateLimit: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sim := proxysim.New(bc.o)
			at = sim.Epoch().Add(time.Hour)
			c := sim.Credentials()
			// Every page's URL, as a client following next_page_url has them.
			var urls []string
			for next := "/v1/Services/" + sim.Services()[0] + "/Sessions?PageSize=100"; next != ""; {
				urls = append(urls, next)
				w := &bufferWriter{h: http.Header{}}
				req := httptest.NewRequest(http.MethodGet, next, nil)
				req.SetBasicAuth(c.AccountSID, c.AuthToken)
				sim.ServeHTTP(w, req)
				_, next = scanSessions(w.body)
			}
			if len(urls) != 100 {
				b.Fatalf("%d pages", len(urls))
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				req := httptest.NewRequest(http.MethodGet, urls[i%len(urls)], nil)
				req.SetBasicAuth(c.AccountSID, c.AuthToken)
				sim.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e3, "cpu-µs/page")
		})
	}
}
