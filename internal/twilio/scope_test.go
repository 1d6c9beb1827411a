package twilio_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// countingBucket counts the requests that took a token from it.
type countingBucket struct {
	mu sync.Mutex
	n  int
}

func (b *countingBucket) Wait(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return nil
}

// TestLimitScope: under ScopeService every request of a Service takes its
// token from one bucket; under ScopeEndpoint each endpoint has its own, so
// the sessions list (the activity index) and the polls do not share. The
// buckets come from Config.Buckets, as the activity planner supplies them,
// and every request takes exactly one token.
func TestLimitScope(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 3, Sessions: 2, Participants: 2, Interactions: 3})
	service := sim.Services()[0]
	for _, tc := range []struct {
		scope string
		want  []twilio.Endpoint
	}{
		{twilio.ScopeService, []twilio.Endpoint{""}},
		{twilio.ScopeEndpoint, []twilio.Endpoint{twilio.EndpointSessions, twilio.EndpointParticipants,
			twilio.EndpointMessageInteractions, twilio.EndpointInteractions}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			var mu sync.Mutex
			var asked []twilio.Endpoint
			buckets := map[twilio.Endpoint]*countingBucket{}
			c := simClient(t, sim, func(c *twilio.Config) {
				c.LimitScope = tc.scope
				c.Buckets = func(svc string, ep twilio.Endpoint) twilio.Bucket {
					if svc != service {
						t.Errorf("bucket asked for Service %s, want %s", svc, service)
					}
					mu.Lock()
					defer mu.Unlock()
					asked = append(asked, ep)
					b := &countingBucket{}
					buckets[ep] = b
					return b
				}
			})
			before := sim.Stats().Requests
			ctx := context.Background()
			ss, err := c.ListSessions(ctx, service)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := c.ListParticipants(ctx, service, ss[0].SID)
			if err != nil {
				t.Fatal(err)
			}
			pt := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: service, SessionSID: ss[0].SID, ParticipantSID: ps[0].SID}
			if _, err := c.ListInteractions(ctx, pt); err != nil {
				t.Fatal(err)
			}
			st := proxy.Target{Source: proxy.SourceSession, ServiceSID: service, SessionSID: ss[0].SID}
			if _, err := c.ListInteractions(ctx, st); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(asked, tc.want) {
				t.Errorf("buckets asked for %q, want %q", asked, tc.want)
			}
			tokens := 0
			for _, b := range buckets {
				tokens += b.n
			}
			if reqs := sim.Stats().Requests - before; int64(tokens) != reqs {
				t.Errorf("%d tokens taken for %d requests", tokens, reqs)
			}
		})
	}
}

// TestLimitScopeInvalid: a scope that is neither is refused, by name.
func TestLimitScopeInvalid(t *testing.T) {
	cr := proxysim.New(proxysim.Options{Seed: 1}).Credentials()
	_, err := twilio.New(twilio.Config{AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret,
		LimitScope: "route"})
	if err == nil || err.Error() != `twilio config: LimitScope: "route" is not "service" or "endpoint"` {
		t.Fatalf("err %v", err)
	}
}

// TestFetchSession: one session, as the list serves it; a deleted one is
// proxy.ErrNotFound; under ScopeEndpoint it has its own bucket.
func TestFetchSession(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 4, Sessions: 3, Participants: 2, Interactions: 2})
	var asked []twilio.Endpoint
	c := simClient(t, sim, func(c *twilio.Config) {
		c.LimitScope = twilio.ScopeEndpoint
		c.Buckets = func(_ string, ep twilio.Endpoint) twilio.Bucket { asked = append(asked, ep); return nil }
	})
	ctx := context.Background()
	svc := sim.Services()[0]
	ss, err := c.ListSessions(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FetchSession(ctx, svc, ss[1].SID)
	if err != nil || got != ss[1] {
		t.Fatalf("FetchSession: %+v, %v; want %+v", got, err, ss[1])
	}
	if err := sim.DeleteSession(svc, ss[2].SID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchSession(ctx, svc, ss[2].SID); !errors.Is(err, proxy.ErrNotFound) {
		t.Errorf("deleted session: %v, want ErrNotFound", err)
	}
	if !slices.Equal(asked, []twilio.Endpoint{twilio.EndpointSessions, twilio.EndpointSession}) {
		t.Errorf("buckets %q, want the list's and the fetch's", asked)
	}
}

// TestSpendBurst: a Service whose burst was spent (an instance taking it
// over) waits for the bucket's rate before its next request, while
// another Service's burst is untouched. At 0.001 requests/s the next token
// is 1,000 s away, so the request is refused up front within its 2 s.
func TestSpendBurst(t *testing.T) {
	for _, scope := range []string{twilio.ScopeService, twilio.ScopeEndpoint} {
		t.Run(scope, func(t *testing.T) {
			sim := proxysim.New(proxysim.Options{Seed: 5, Services: 2, Sessions: 1, Participants: 1, Interactions: 2})
			c := simClient(t, sim, func(c *twilio.Config) { c.RequestsPerSecond, c.Burst, c.LimitScope = 0.001, 3, scope })
			targets := sim.Targets()
			spent, other := targets[0], targets[len(targets)-1]
			if spent.ServiceSID == other.ServiceSID {
				t.Fatal("want targets of two Services")
			}
			c.SpendBurst(spent.ServiceSID)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := c.AppendInteractions(ctx, proxy.Target{Source: proxy.SourceParticipant, ServiceSID: spent.ServiceSID,
				SessionSID: spent.SessionSID, ParticipantSID: spent.ParticipantSID}, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("spent Service: %v, want a wait past the deadline", err)
			}
			if _, err := c.AppendInteractions(ctx, proxy.Target{Source: proxy.SourceParticipant, ServiceSID: other.ServiceSID,
				SessionSID: other.SessionSID, ParticipantSID: other.ParticipantSID}, nil); err != nil {
				t.Errorf("other Service: %v, want its burst", err)
			}
		})
	}
}
