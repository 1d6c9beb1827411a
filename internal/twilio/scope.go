package twilio

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// Endpoint names a Proxy endpoint (a path template): the unit of Twilio's
// documented rate limit, 30 requests/s per endpoint per Service.
type Endpoint string

// The Proxy endpoints the client calls.
const (
	EndpointSessions            Endpoint = "Sessions"            // a Service's sessions list
	EndpointSession             Endpoint = "Session"             // one of them
	EndpointParticipants        Endpoint = "Participants"        // a session's participants list
	EndpointInteractions        Endpoint = "Interactions"        // a session's interactions list
	EndpointInteraction         Endpoint = "Interaction"         // one of them
	EndpointMessageInteractions Endpoint = "MessageInteractions" // a participant's interactions list
	EndpointMessageInteraction  Endpoint = "MessageInteraction"  // one of them
)

// Limit scopes (Config.LimitScope).
const (
	// ScopeService: one token bucket per Service for all its endpoints,
	// the conservative reading of Twilio's limit.
	ScopeService = "service"
	// ScopeEndpoint: one bucket per endpoint of a Service, as Twilio
	// documents the limit: the sessions list and the polls do not share.
	ScopeEndpoint = "endpoint"
)

// Bucket is one request budget: Wait returns when a request may go, or
// ctx's error. *rate.Limiter is one.
type Bucket interface {
	Wait(ctx context.Context) error
}

// BucketFunc returns the bucket of a Service's requests to ep (ep is ""
// under ScopeService: every endpoint), or nil for the client's own token
// bucket. The activity planner passes its budget this way, so that the
// requests it plans take their tokens where it counts them.
type BucketFunc func(serviceSID string, ep Endpoint) Bucket

// bucket is the budget of a Service's requests to ep under the client's
// scope.
func (c *Client) bucket(serviceSID string, ep Endpoint) budget {
	if c.cfg.LimitScope != ScopeEndpoint {
		ep = ""
	}
	return budget{c.limits, bucketKey{serviceSID, ep}}
}

// bucketKey names one bucket of limits: a Service and, under
// ScopeEndpoint, an endpoint.
type bucketKey struct {
	service string
	ep      Endpoint
}

// newBucket makes the bucket of k: the BucketFunc's, else a token bucket.
func newBucket(rps rate.Limit, burst int, f BucketFunc, k bucketKey) Bucket {
	if f != nil {
		if b := f(k.service, k.ep); b != nil {
			return b
		}
	}
	return rate.NewLimiter(rps, burst)
}

// endpoints are every endpoint a Service's buckets may be keyed by.
var endpoints = []Endpoint{EndpointSessions, EndpointSession, EndpointParticipants, EndpointInteractions,
	EndpointInteraction, EndpointMessageInteractions, EndpointMessageInteraction}

// SpendBurst empties the token buckets of a Service, so that its next
// requests go at the bucket's rate from now on, without a burst. An
// instance that takes a Service over from another (several instances)
// calls it: the previous owner may have spent its own burst within the
// same 5 s window of Twilio's, and two bursts on top of the rate would
// pass the limit (5 × 27 + 2 × 10 = 155 > 150). Buckets the client does
// not own (Config.Buckets) are left alone.
func (c *Client) SpendBurst(serviceSID string) {
	keys := []bucketKey{{serviceSID, ""}}
	if c.cfg.LimitScope == ScopeEndpoint {
		keys = keys[:0]
		for _, ep := range endpoints {
			keys = append(keys, bucketKey{serviceSID, ep})
		}
	}
	now := time.Now()
	for _, k := range keys {
		if lim, ok := c.limits.limiter(k).(*rate.Limiter); ok {
			if n := int(lim.TokensAt(now)); n > 0 {
				lim.AllowN(now, n)
			}
		}
	}
}
