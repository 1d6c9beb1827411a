package activity

import (
	"sync"
	"time"
)

// Budget is a Service's request budget: a token bucket on the caller's
// clock, so a simulated clock paces it as the wall clock will. Every
// request takes one token, index pages and listings alike; the bucket
// refills at Rate and holds at most Burst.
//
// It is apart from the Planner so that whatever makes the requests (the
// client, page by page) takes the tokens: an index refresh is about 100
// requests, and charging it after the fact in one go would let Twilio's 5 s
// window see it on top of a full bucket.
type Budget struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	spent  int64
}

// NewBudget returns a full bucket of burst tokens refilled at rate per
// second from now.
func NewBudget(rate float64, burst int, now time.Time) *Budget {
	return &Budget{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// SetLimits changes the rate and the depth from now (a reload of the
// account's limits): the tokens earned so far are earned at the old rate,
// and a shallower bucket loses what it cannot hold. A debt stays owed.
func (b *Budget) SetLimits(rate float64, burst int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.rate, b.burst = rate, float64(burst)
	b.tokens = min(b.tokens, b.burst)
}

// Limits returns the rate and the depth in force.
func (b *Budget) Limits() (rate float64, burst int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate, int(b.burst)
}

// refill adds the tokens earned since the last call. Time that goes
// backwards earns nothing.
func (b *Budget) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// Take takes one token for a request at now and returns how long the
// request must wait for it (0: go now). The token is the caller's either
// way: the bucket goes into debt, and later requests wait for it.
func (b *Budget) Take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens--
	b.spent++
	if b.tokens >= 0 {
		return 0
	}
	return secs(-b.tokens / b.rate)
}

// Wait is how long from now until a token is there (0: one is).
func (b *Budget) Wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return secs((1 - b.tokens) / b.rate)
}

// Spent is the number of tokens taken so far.
func (b *Budget) Spent() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}

// secs converts seconds to a Duration, rounded up to the nanosecond so
// that waiting it always earns the token.
func secs(s float64) time.Duration { return time.Duration(s*1e9) + 1 }
