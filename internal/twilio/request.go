package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// get fetches one URL of a Service with limits and retries and returns the
// body. Within a listing this retries the one page, never the listing.
//
// Retried: 429 and Twilio code 20429 (after Retry-After when given, as
// seconds or HTTP-date), 5xx and transport errors (after jittered
// exponential backoff). Never retried: other statuses, decode errors,
// refusals, a done context. A wait that would outlast Config.MaxBackoff or
// the context's deadline is not started: the last error is returned
// instead, which says more than "deadline exceeded".
//
// The body is a pooled buffer: the caller decodes it and releases it with
// releaseBody.
func (c *Client) get(ctx context.Context, serviceSID string, ep Endpoint, u string) (*bytes.Buffer, error) {
	return c.getWithin(ctx, c.bucket(serviceSID, ep), u)
}

// getWithin is get within the budget b: a Proxy Service's bucket, or the
// Messages API's own.
func (c *Client) getWithin(ctx context.Context, b budget, u string) (*bytes.Buffer, error) {
	for attempt := 1; ; attempt++ {
		r, err := c.attempt(ctx, b, u)
		if err == nil {
			return r.body, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := retryReason(err)
		if reason == "" || attempt >= c.cfg.MaxAttempts {
			return nil, err
		}
		wait := c.backoff(attempt)
		if r.hasRetry {
			if r.retryAfter > c.cfg.MaxBackoff {
				return nil, err
			}
			wait = r.retryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, err
		}
		c.obs.Retry(reason)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// budget is one set of limits and the bucket key within it.
type budget struct {
	l   *limits
	key bucketKey
}

// attempt makes one request within the budget.
func (c *Client) attempt(ctx context.Context, b budget, u string) (response, error) {
	if err := b.l.acquire(ctx, b.key); err != nil {
		return response{}, err
	}
	defer b.l.release()
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	r, err := c.roundTrip(actx, u)
	c.obs.Request(r.status, time.Since(start))
	return r, err
}

// retryReason names why err is worth retrying, or returns "" if not.
func retryReason(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.HTTPStatus == http.StatusTooManyRequests || ae.Code == TwilioCodeTooManyRequests:
			return "rate_limited"
		case ae.HTTPStatus >= 500:
			return "server_error"
		}
		return ""
	}
	var te *TransportError
	if errors.As(err, &te) {
		return "transport"
	}
	return ""
}

// backoff is the wait before attempt+1: MinBackoff doubled per attempt,
// capped at MaxBackoff, with "equal jitter" (half fixed, half random) so
// that callers that failed together do not retry together, yet each still
// waits a good part of the step.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 1; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// limits keeps a Client under Twilio's two limits: requests per second per
// Service, or per endpoint of a Service (a token bucket per key; see
// Config.LimitScope), and requests in flight per account (a semaphore).
type limits struct {
	rps     rate.Limit
	burst   int
	sem     chan struct{}
	buckets BucketFunc // may be nil

	mu        sync.Mutex
	byService map[bucketKey]Bucket
}

func newLimits(rps float64, burst, inFlight int, buckets BucketFunc) *limits {
	return &limits{
		rps:       rate.Limit(rps),
		burst:     burst,
		sem:       make(chan struct{}, inFlight),
		buckets:   buckets,
		byService: make(map[bucketKey]Bucket),
	}
}

// limiter returns the bucket of k. Buckets are never dropped: there are
// as many as Services monitored (times a few endpoints), a handful.
func (l *limits) limiter(k bucketKey) Bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byService[k]
	if !ok {
		lim = newBucket(l.rps, l.burst, l.buckets, k)
		l.byService[k] = lim
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
func (l *limits) acquire(ctx context.Context, k bucketKey) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := l.limiter(k).Wait(ctx); err != nil {
		<-l.sem
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Wait refuses up front a wait for a token that would outlast the
		// deadline (n=1 never exceeds a burst of at least 1): the deadline
		// is as good as reached, and callers must be able to tell a
		// timeout (errors.Is DeadlineExceeded) from a failure.
		return fmt.Errorf("rate limit: %v: %w", err, context.DeadlineExceeded)
	}
	return nil
}

func (l *limits) release() { <-l.sem }
