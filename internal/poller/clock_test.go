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

// stepClock is a Clock that moves only when the test calls Advance, which
// fires the timers that fall due, in order.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*stepTimer
}

type stepTimer struct {
	c  *stepClock
	at time.Time
	f  func()
}

func newStepClock(t0 time.Time) *stepClock { return &stepClock{now: t0} }

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &stepTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *stepTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// pending is the number of timers not yet fired or stopped.
func (c *stepClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the time by d and fires every timer due by then.
func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*stepTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}
