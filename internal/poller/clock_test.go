package poller

import (
	"sync"
	"time"
)

// warpClock is a Clock on which every wait is instant: AfterFunc moves
// the time forward by d and calls f at once. A loop that always waits for
// its next deadline (the Scheduler, the Heartbeat) then runs hours of
// schedule in seconds, and deterministically, since time moves only when
// the loop waits.
type warpClock struct {
	mu  sync.Mutex
	now time.Time
}

func newWarpClock(t0 time.Time) *warpClock { return &warpClock{now: t0} }

func (c *warpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *warpClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	c.mu.Unlock()
	f()
	return firedTimer{}
}

// firedTimer is a Timer that has already fired.
type firedTimer struct{}

func (firedTimer) Stop() bool { return false }
