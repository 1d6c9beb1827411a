package twilio

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
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
func (c *Client) get(ctx context.Context, serviceSID, u string) (string, error) {
	for attempt := 1; ; attempt++ {
		r, err := c.attempt(ctx, serviceSID, u)
		if err == nil {
			return r.body, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		reason := retryReason(err)
		if reason == "" || attempt >= c.cfg.MaxAttempts {
			return "", err
		}
		wait := c.backoff(attempt)
		if r.hasRetry {
			if r.retryAfter > c.cfg.MaxBackoff {
				return "", err
			}
			wait = r.retryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return "", err
		}
		c.obs.Retry(reason)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		}
	}
}

// attempt makes one request within the limits.
func (c *Client) attempt(ctx context.Context, serviceSID, u string) (response, error) {
	if err := c.limits.acquire(ctx, serviceSID); err != nil {
		return response{}, err
	}
	defer c.limits.release()
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
