package proxysim

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Twilio limits Proxy to 30 requests/s per endpoint per Service, averaged
// over a 5 s sliding window, in bursts of up to 150/s: that is at most 150
// requests in any 5 s. The limiter keeps, per (endpoint, Service), the times
// of the last 150 admitted requests in a ring; a request is admitted when the
// oldest of them has left the window. Rejected requests are not counted, as
// a retrying client would otherwise never get back in.

// Key identifies an endpoint of one Service: the unit of Twilio's rate limit.
type Key struct {
	Endpoint   Endpoint
	ServiceSID string
}

// trackCapacity bounds the ring when the limit is disabled: the rates are
// still measured, up to this many per window.
const trackCapacity = 4096

type limiter struct {
	mu      sync.Mutex
	limit   int   // 0: measure only
	window  int64 // nanoseconds
	windows map[Key]*window
}

type window struct {
	ts   []int64 // admission times, a ring in time order from next
	next int
	n    int
	EndpointStats
}

func newLimiter(limit int, w time.Duration) *limiter {
	return &limiter{limit: max(limit, 0), window: int64(w), windows: map[Key]*window{}}
}

// allow admits or rejects a request to k at now (unix nanoseconds).
func (l *limiter) allow(k Key, now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[k]
	if w == nil {
		c := l.limit
		if c == 0 {
			c = trackCapacity
		}
		w = &window{ts: make([]int64, c)}
		l.windows[k] = w
	}
	w.Requests++
	if l.limit > 0 && w.n == len(w.ts) && w.ts[w.next] > now-l.window {
		w.RateLimited++
		return false
	}
	w.ts[w.next] = now
	w.next = (w.next + 1) % len(w.ts)
	w.n = min(w.n+1, len(w.ts))
	// Walk back from the newest to measure the rates just reached.
	perSec, perWin := 0, 0
	for i := 1; i <= w.n; i++ {
		t := w.ts[(w.next-i+len(w.ts))%len(w.ts)]
		if t <= now-l.window {
			break
		}
		perWin++
		if t > now-int64(time.Second) {
			perSec++
		}
	}
	w.MaxPerSecond = max(w.MaxPerSecond, perSec)
	w.MaxPerWindow = max(w.MaxPerWindow, perWin)
	return true
}

// admit applies the per-endpoint limit; false means a 429 was written.
func (s *Sim) admit(w http.ResponseWriter, rt route) bool {
	if s.limiter.allow(Key{rt.ep, rt.service}, s.clock().UnixNano()) {
		return true
	}
	s.stats.rateLimited.Add(1)
	var ra int64
	if s.o.RetryAfter > 0 {
		ra = int64((s.o.RetryAfter + time.Second - 1) / time.Second)
	}
	s.writeError(w, http.StatusTooManyRequests, codeTooMany, "Too Many Requests", ra)
	return false
}

// EndpointStats count the requests to one endpoint of one Service.
type EndpointStats struct {
	Requests    int64 // all requests that reached the limiter
	RateLimited int64 // of which answered 429 by it
	// MaxPerSecond and MaxPerWindow are the most requests admitted in any
	// 1 s and in any rate window (5 s) observed so far.
	MaxPerSecond, MaxPerWindow int
}

// Stats are the simulator's counters, for tests and harnesses.
type Stats struct {
	Requests           int64 // every request received
	RateLimited        int64 // 429s from the per-endpoint limit and injected storms
	ConcurrencyLimited int64 // 429s from MaxConcurrent
	Faults             int64 // responses replaced or damaged by injected faults
	MaxInFlight        int64
	Endpoints          map[Key]EndpointStats
}

// MaxPerSecond is the highest 1 s request rate any endpoint of any Service saw.
func (st Stats) MaxPerSecond() int {
	m := 0
	for _, e := range st.Endpoints {
		m = max(m, e.MaxPerSecond)
	}
	return m
}

// TooManyRequests is every 429 served: limits and injected storms.
func (st Stats) TooManyRequests() int64 {
	return st.RateLimited + st.ConcurrencyLimited
}

type statsCounters struct {
	requests, rateLimited, concurrencyLimited, faults, maxInFlight atomic.Int64
}

func (c *statsCounters) observeInFlight(n int64) {
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			return
		}
	}
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	st := Stats{
		Requests:           s.stats.requests.Load(),
		RateLimited:        s.stats.rateLimited.Load(),
		ConcurrencyLimited: s.stats.concurrencyLimited.Load(),
		Faults:             s.stats.faults.Load(),
		MaxInFlight:        s.stats.maxInFlight.Load(),
		Endpoints:          map[Key]EndpointStats{},
	}
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	for k, w := range s.limiter.windows {
		st.Endpoints[k] = w.EndpointStats
	}
	return st
}

// ResetStats zeroes the counters (not the limiter's memory of recent
// requests), e.g. to measure a steady state after a warm-up.
func (s *Sim) ResetStats() {
	s.stats.requests.Store(0)
	s.stats.rateLimited.Store(0)
	s.stats.concurrencyLimited.Store(0)
	s.stats.faults.Store(0)
	s.stats.maxInFlight.Store(0)
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	for _, w := range s.limiter.windows {
		w.EndpointStats = EndpointStats{}
	}
}
