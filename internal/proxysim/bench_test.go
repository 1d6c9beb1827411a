package proxysim_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// scaleOptions is issue 5's scale check: 10,000 targets × 200 interactions
// across 10 Services (2 participants × 500 sessions × 10 Services).
func scaleOptions() proxysim.Options {
	return proxysim.Options{Seed: 1, Services: 10, Sessions: 500, Participants: 2, Interactions: 200,
		FailureRate: 0.05, StuckRate: 0.02, InteractionEvery: time.Minute, RateLimit: -1,
		Clock: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
}

// BenchmarkServePage200 serves whole 200-interaction listings (one page at
// the client's PageSize=1000) of the scale world over real HTTP, round
// robin over all 10,000 targets, from GOMAXPROCS concurrent clients.
func BenchmarkServePage200(b *testing.B) {
	sim := proxysim.New(scaleOptions())
	srv := httptest.NewServer(sim)
	defer srv.Close()
	tgs := sim.Targets()
	if len(tgs) != 10000 {
		b.Fatalf("%d targets", len(tgs))
	}
	c := sim.Credentials()
	var next atomic.Int64
	var bytes atomic.Int64
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		client := srv.Client()
		for pb.Next() {
			tg := tgs[int(next.Add(1))%len(tgs)]
			req, _ := http.NewRequest(http.MethodGet, srv.URL+participantPath(tg)+"?PageSize=1000", nil)
			req.SetBasicAuth(c.AccountSID, c.AuthToken)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			bytes.Add(n)
		}
	})
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e3, "cpu-µs/page")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
	b.ReportMetric(float64(bytes.Load())/float64(b.N), "B/page")
}

// BenchmarkRenderPage200 is the simulator's own CPU per 200-interaction
// page: the handler called directly, no network.
func BenchmarkRenderPage200(b *testing.B) {
	sim := proxysim.New(scaleOptions())
	tgs := sim.Targets()
	c := sim.Credentials()
	reqs := make([]*http.Request, 256)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, participantPath(tgs[i*37%len(tgs)])+"?PageSize=1000", nil)
		reqs[i].SetBasicAuth(c.AccountSID, c.AuthToken)
	}
	b.ReportAllocs()
	b.ResetTimer()
	w := &discardWriter{h: http.Header{}}
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		sim.ServeHTTP(w, reqs[i%len(reqs)])
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e3, "cpu-µs/page")
	b.ReportMetric(float64(w.n)/float64(b.N), "B/page")
}

// cpuTime is the process's user+system CPU time in nanoseconds: on a
// shared machine, CPU per page is a steadier figure than wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the handler, not a recorder's buffer.
type discardWriter struct {
	h    http.Header
	code int
	n    int64
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
