package twilio

import (
	"context"

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

// bucketKey is the key of a Service's bucket for ep under the client's
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
