package twilio_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// These tests run the client against the simulator, which serves Twilio's
// shapes (validated against the spec in its own tests), paging with opaque
// PageTokens and Twilio's rate limit.

func simClient(t *testing.T, sim *proxysim.Sim, mod func(*twilio.Config)) *twilio.Client {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cr := sim.Credentials()
	cfg := twilio.Config{
		BaseURL: srv.URL, AccountSID: cr.AccountSID, APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret,
		Version: "test", MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestSimulatorListings(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 7, Sessions: 2, Participants: 2, Interactions: 1200})
	c := simClient(t, sim, func(c *twilio.Config) { c.PageSize = 500 })
	ctx := context.Background()
	service := sim.Services()[0]

	sessions, err := c.ListSessions(ctx, service)
	if err != nil || len(sessions) != 2 {
		t.Fatalf("sessions: %d, err %v", len(sessions), err)
	}
	parts, err := c.ListParticipants(ctx, service, sessions[0].SID)
	if err != nil || len(parts) != 2 {
		t.Fatalf("participants: %d, err %v", len(parts), err)
	}
	pt := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: service, SessionSID: sessions[0].SID, ParticipantSID: parts[0].SID}
	its, err := c.ListInteractions(ctx, pt)
	if err != nil || len(its) < 1000 { // 3 pages of 500; deletions may remove a few
		t.Fatalf("participant interactions: %d, err %v", len(its), err)
	}
	seen := map[string]bool{}
	for _, it := range its {
		if seen[it.SID] || it.SessionSID != pt.SessionSID || it.DateCreated.IsZero() {
			t.Fatalf("bad or repeated item %+v", it)
		}
		seen[it.SID] = true
	}
	st := proxy.Target{Source: proxy.SourceSession, ServiceSID: service, SessionSID: sessions[0].SID}
	all, err := c.ListInteractions(ctx, st)
	if err != nil || len(all) < len(its) {
		t.Fatalf("session interactions: %d, err %v", len(all), err)
	}
	one, err := c.FetchInteraction(ctx, pt, its[0].SID)
	if err != nil || one.SID != its[0].SID {
		t.Fatalf("fetch: %+v, err %v", one, err)
	}

	gone := pt
	gone.ParticipantSID = "KP" + "ffffffffffffffffffffffffffffffff"
	if _, err := c.ListInteractions(ctx, gone); !twilio.IsNotFound(err) {
		t.Errorf("unknown participant: err %v, want not found", err)
	}
	bad := simClient(t, sim, func(c *twilio.Config) { c.APIKeySecret = "wrong" })
	if _, err := bad.ListInteractions(ctx, pt); !twilio.IsAuth(err) {
		t.Errorf("wrong secret: err %v, want auth", err)
	}
}

func TestSimulatorFaults(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 3, Interactions: 20})
	c := simClient(t, sim, func(c *twilio.Config) { c.MaxAttempts = 2 })
	tg := sim.Targets()[0]
	target := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID}
	cases := []struct {
		name   string
		faults proxysim.Faults
		check  func(error) bool
	}{
		{"truncated body", proxysim.Faults{TruncateRate: 1}, func(err error) bool {
			var de *twilio.DecodeError
			return errors.As(err, &de)
		}},
		{"wrong content type", proxysim.Faults{WrongContentTypeRate: 1}, func(err error) bool { return errors.Is(err, twilio.ErrContentType) }},
		{"HTML 502", proxysim.Faults{HTMLRate: 1}, twilio.IsRetryable},
		{"5xx", proxysim.Faults{ErrorRate: 1}, twilio.IsRetryable},
		{"429 storm", proxysim.Faults{StormRate: 1}, twilio.IsRateLimited},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim.SetFaults(tc.faults)
			got, err := c.ListInteractions(context.Background(), target)
			if got != nil || !tc.check(err) {
				t.Errorf("%d items, err %v", len(got), err)
			}
		})
	}
	sim.SetFaults(proxysim.Faults{})
	if got, err := c.ListInteractions(context.Background(), target); err != nil || len(got) == 0 {
		t.Errorf("after the faults: %d items, err %v", len(got), err)
	}
}

// TestSimulatorConcurrentListingsNeverRateLimited: listings of one
// Service, together 50% over the simulator's 150 requests per 5 s window,
// run at once with the default limits; the simulator answers no 429.
func TestSimulatorConcurrentListingsNeverRateLimited(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 11, Sessions: 3, Participants: 3, Interactions: 25})
	c := simClient(t, sim, func(c *twilio.Config) { c.PageSize = 1; c.MaxAttempts = 1 })
	targets := sim.Targets()
	const rounds = 1 // 9 targets x 25 pages: 225 requests
	var wg sync.WaitGroup
	for range rounds {
		for _, tg := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				target := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID}
				if _, err := c.ListInteractions(context.Background(), target); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	st := sim.Stats()
	if st.TooManyRequests() != 0 {
		t.Errorf("the simulator answered %d 429s", st.TooManyRequests())
	}
	if st.Requests < 200 {
		t.Errorf("only %d requests: the test did not load the limit", st.Requests)
	}
	t.Logf("%d requests, at most %d in one second", st.Requests, st.MaxPerSecond())
}

// TestAppendInteractions: the poller's way to list into an array it
// reuses. The listing is appended after what dst holds, equal to a fresh
// ListInteractions; a failed listing returns dst as it was.
func TestAppendInteractions(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 5, Interactions: 120})
	c := simClient(t, sim, func(c *twilio.Config) { c.PageSize = 50; c.MaxAttempts = 1 })
	ctx := context.Background()
	tg := sim.Targets()[0]
	target := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID, ParticipantSID: tg.ParticipantSID}
	want, err := c.ListInteractions(ctx, target)
	if err != nil || len(want) < 100 {
		t.Fatalf("list: %d items, err %v", len(want), err)
	}
	prefix := proxy.Interaction{SID: "KI" + "00000000000000000000000000000000"}
	dst := make([]proxy.Interaction, 1, 512)
	dst[0] = prefix
	got, err := c.AppendInteractions(ctx, target, dst)
	if err != nil || len(got) != 1+len(want) || got[0] != prefix || &got[0] != &dst[0] {
		t.Fatalf("append: %d items (want %d, in dst's array), err %v", len(got), 1+len(want), err)
	}
	for i := range want {
		if got[1+i] != want[i] {
			t.Fatalf("item %d: %+v, want %+v", i, got[1+i], want[i])
		}
	}

	// Truncated bodies fail the listing.
	sim.SetFaults(proxysim.Faults{TruncateRate: 1})
	got, err = c.AppendInteractions(ctx, target, dst[:1])
	var de *twilio.DecodeError
	if !errors.As(err, &de) || len(got) != 1 || got[0] != prefix {
		t.Fatalf("failed listing: %d items, err %v; want dst (1 item) and a decode error", len(got), err)
	}
}
