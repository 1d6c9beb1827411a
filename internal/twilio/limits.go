package twilio

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/time/rate"
)

// limits keeps a Client under Twilio's two limits: requests per second per
// Service (a token bucket per Service SID) and requests in flight per
// account (a semaphore).
type limits struct {
	rps   rate.Limit
	burst int
	sem   chan struct{}

	mu        sync.Mutex
	byService map[string]*rate.Limiter
}

func newLimits(rps float64, burst, inFlight int) *limits {
	return &limits{
		rps:       rate.Limit(rps),
		burst:     burst,
		sem:       make(chan struct{}, inFlight),
		byService: make(map[string]*rate.Limiter),
	}
}

// limiter returns the Service's bucket. Buckets are never dropped: there
// are as many as Services monitored, a handful.
func (l *limits) limiter(serviceSID string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byService[serviceSID]
	if !ok {
		lim = rate.NewLimiter(l.rps, l.burst)
		l.byService[serviceSID] = lim
	}
	return lim
}

// acquire waits for an in-flight slot and then for a token of the
// Service's bucket; release must follow when the response is read.
//
// The slot is taken first on purpose: a token taken before a long wait
// for a slot would let requests bunch up after the wait and pass Twilio's
// window faster than the bucket's rate. Holding a slot while waiting for a
// token costs at most 1/rate of idle slot time instead.
func (l *limits) acquire(ctx context.Context, serviceSID string) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := l.limiter(serviceSID).Wait(ctx); err != nil {
		<-l.sem
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

func (l *limits) release() { <-l.sem }
