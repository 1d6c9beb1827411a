//go:build linux

package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// simClock is the simulator's clock: the wall clock until Freeze, then
// fixed. A frozen world changes no more, so once monitord has polled every
// target after the freeze, what it published can be compared with the
// simulator's record of changes as a whole.
type simClock struct {
	frozen atomic.Pointer[time.Time]
}

// Now is the simulator's time.
func (c *simClock) Now() time.Time {
	if f := c.frozen.Load(); f != nil {
		return *f
	}
	return time.Now()
}

// Freeze stops the world at the start of the next whole second (the
// simulator's resolution) and returns that instant after waiting for it, so
// that no status the world shows later is missing from Changes.
func (c *simClock) Freeze() time.Time {
	at := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(at))
	c.frozen.Store(&at)
	return at
}

// simServer serves a simulator on a loopback port through a handler that
// counts requests per listing path, so the harness can tell how often each
// target was polled (fairness) without asking monitord.
type simServer struct {
	*proxysim.Sim
	Clock *simClock
	URL   string

	srv  *http.Server
	done chan error

	mu     sync.Mutex
	counts map[string]int           // listing path → requests
	last   map[string]time.Time     // listing path → last request
	gaps   map[string]time.Duration // listing path → longest time between two requests
}

// startSim serves proxysim.New(o) with a freezable clock; the test's
// cleanup stops it.
func startSim(t testing.TB, o proxysim.Options) *simServer {
	t.Helper()
	clock := &simClock{}
	o.Clock = clock.Now
	s := &simServer{Sim: proxysim.New(o), Clock: clock, done: make(chan error, 1),
		counts: map[string]int{}, last: map[string]time.Time{}, gaps: map[string]time.Duration{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.done <- s.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("simulator server: %v", err)
		}
	})
	return s
}

func (s *simServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "Interactions") {
		now := time.Now()
		s.mu.Lock()
		p := r.URL.Path
		s.counts[p]++
		if l, ok := s.last[p]; ok {
			s.gaps[p] = max(s.gaps[p], now.Sub(l))
		}
		s.last[p] = now
		s.mu.Unlock()
	}
	s.Sim.ServeHTTP(w, r)
}

// Counts returns requests per listing path so far.
func (s *simServer) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Gaps returns the longest time between two requests per listing path
// since ResetCounts.
func (s *simServer) Gaps() map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Duration, len(s.gaps))
	for k, v := range s.gaps {
		out[k] = v
	}
	return out
}

// ResetCounts forgets the per-path counts and gaps; the gap of a path
// counts from its first request after the reset.
func (s *simServer) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
	clear(s.gaps)
	clear(s.last)
}

// listingPath is the path of a participant target's listing.
func listingPath(t proxysim.Target) string {
	return "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID + "/Participants/" + t.ParticipantSID + "/MessageInteractions"
}
