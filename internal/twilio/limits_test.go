package twilio

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// windowLimiter is Twilio's documented limit as a test server enforces it:
// at most limit requests in any sliding window.
type windowLimiter struct {
	mu       sync.Mutex
	window   time.Duration
	limit    int
	arrivals []time.Time
	rejected int
	peak     int // most requests seen in one window
}

func (l *windowLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := l.arrivals[:0]
	for _, t := range l.arrivals {
		if now.Sub(t) < l.window {
			keep = append(keep, t)
		}
	}
	l.arrivals = keep
	if len(l.arrivals) >= l.limit {
		l.rejected++
		return false
	}
	l.arrivals = append(l.arrivals, now)
	l.peak = max(l.peak, len(l.arrivals))
	return true
}

// TestConcurrentListingsStayUnderTwiliosLimit runs concurrent listings of
// one Service, together far more than Twilio allows at once, against a
// server that enforces 30 requests/s over a 5 s sliding window (150 per
// window, bursts to 150/s): with the default limits none is refused.
func TestConcurrentListingsStayUnderTwiliosLimit(t *testing.T) {
	const listings, pages = 8, 25 // 200 requests: 50 more than one window allows
	lim := &windowLimiter{window: 5 * time.Second, limit: 150}
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		if !lim.allow(time.Now()) {
			w.Header().Set("Retry-After", "1")
			writeError(w, 429, 20429, "Too Many Requests")
			return
		}
		next := ""
		if page+1 < pages {
			next = fmt.Sprintf("http://%s%s?PageSize=1000&PageToken=PT%d", r.Host, r.URL.Path, page+1)
		}
		writeJSON(w, 200, pageJSON(page, page+1, next))
	})
	cfg := testConfig(a)
	cfg.RequestsPerSecond, cfg.Burst = 0, 0 // the defaults: 27/s, burst 10
	cfg.MaxAttempts = 1                     // a 429 would fail the listing
	c := newClient(t, cfg)

	var wg sync.WaitGroup
	errs := make(chan error, listings)
	for i := range listings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg := testTarget
			tg.ParticipantSID = fmt.Sprintf("KP%032x", i)
			items, err := c.ListInteractions(context.Background(), tg)
			if err == nil && len(items) != pages {
				err = fmt.Errorf("%d items, want %d", len(items), pages)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if lim.rejected != 0 {
		t.Errorf("the server refused %d requests", lim.rejected)
	}
	if n := a.requests.Load(); n != listings*pages {
		t.Errorf("%d requests, want %d", n, listings*pages)
	}
	t.Logf("peak requests in a 5 s window: %d of 150", lim.peak)
}

// TestMaxInFlightCapsConcurrentRequests: however many callers, no more
// than MaxInFlight requests are open at the server at once.
func TestMaxInFlightCapsConcurrentRequests(t *testing.T) {
	var open, peak atomic.Int64
	release := make(chan struct{})
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		n := open.Add(1)
		defer open.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		writeJSON(w, 200, pageJSON(0, 1, ""))
	})
	cfg := testConfig(a)
	cfg.MaxInFlight = 3
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ListInteractions(context.Background(), testTarget); err != nil {
				t.Error(err)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // wait for the condition, with a deadline
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Errorf("peak %d requests in flight, want 3", p)
	}
}
