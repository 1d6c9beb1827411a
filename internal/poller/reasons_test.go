package poller

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/twilio"
)

// outEvent is what these tests read of an event in the outbox.
type outEvent struct {
	ID   string
	Kind event.Kind
	Data struct {
		InteractionSID string `json:"interaction_sid"`
		Status         string `json:"status"`
		ErrorCode      int    `json:"error_code"`
		ErrorMessage   string `json:"error_message"`
	}
}

// drain removes and returns the outbox's events.
func (f *fixture) drain(t *testing.T) []outEvent {
	t.Helper()
	recs, err := f.db.Peek(event.Position{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []outEvent
	var seqs []event.Position
	for _, r := range recs {
		var ce struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Data, &ce); err != nil {
			t.Fatal(err)
		}
		e := outEvent{ID: r.ID, Kind: event.Kind(strings.Split(r.Subject, ".")[1])}
		if err := json.Unmarshal(ce.Data, &e.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		seqs = append(seqs, r.Position)
	}
	if err := f.db.Delete(seqs); err != nil {
		t.Fatal(err)
	}
	return out
}

// reasonSpecs are the simulator's targets with the client fetching reasons.
func (f *fixture) reasonSpecs() []TargetSpec {
	specs := f.specs(nil)
	for i := range specs {
		specs[i].Messages = f.client
	}
	return specs
}

// patientClient is a client of the simulator whose requests never time out
// by themselves (an hour), so that only the poller's bound can end a wait.
func (f *fixture) patientClient(t *testing.T, messagesInFlight int) *twilio.Client {
	t.Helper()
	cr := f.sim.Credentials()
	c, err := twilio.New(twilio.Config{BaseURL: f.url, MessagesBaseURL: f.url, AccountSID: cr.AccountSID,
		APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret, MaxAttempts: 1, RequestTimeout: time.Hour,
		MessagesInFlight: messagesInFlight, MessagesPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (r *recorder) reasonCount(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reasons[result]
}

// baselined returns a fixture whose targets have had their silent first
// poll, with failures nowhere in the world yet.
func baselined(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := newFixture(t, proxysim.Options{Seed: 5, Participants: 2, RateLimit: -1}, mod)
	if err := f.p.SetTargets(f.reasonSpecs()); err != nil {
		t.Fatal(err)
	}
	if res := f.p.PollAll(context.Background()); res[ResultOK] != 2 {
		t.Fatalf("baseline %v", res)
	}
	f.drain(t)
	return f
}

// failOne adds an interaction that is undelivered from the start, pinned
// to code 30007, and returns its SID.
func (f *fixture) failOne(t *testing.T) string {
	t.Helper()
	ki, err := f.sim.AddInteraction(f.sim.Targets()[0], "undelivered")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sim.SetMessageError(ki, proxysim.LegOutbound, 30007, "Carrier violation"); err != nil {
		t.Fatal(err)
	}
	f.now.Add(1)
	return ki
}

// failedEvents returns the failed events among evs.
func failedEvents(evs []outEvent) []outEvent {
	var out []outEvent
	for _, e := range evs {
		if e.Kind == event.Failed {
			out = append(out, e)
		}
	}
	return out
}

func TestReasonArrivesInFailedEvent(t *testing.T) {
	f := baselined(t, nil)
	ki := f.failOne(t)
	if res := f.p.PollAll(context.Background()); res[ResultOK] != 2 {
		t.Fatalf("poll %v", res)
	}
	got := failedEvents(f.drain(t))
	if len(got) != 1 {
		t.Fatalf("failed events %+v, want one", got)
	}
	e := got[0]
	if e.Data.InteractionSID != ki || e.Data.ErrorCode != 30007 || e.Data.ErrorMessage != "Carrier violation" {
		t.Errorf("failed event %+v, want code 30007 and its message", e.Data)
	}
	// The reason never changes the id.
	if want := event.InteractionID(ki, event.Failed, event.Outbound, "undelivered"); e.ID != want {
		t.Errorf("id %s, want %s", e.ID, want)
	}
	if f.obs.reasonCount(ReasonOK) != 1 || f.obs.failed[30007] != 1 {
		t.Errorf("reasons %v, failed by code %v", f.obs.reasons, f.obs.failed)
	}
}

// TestReasonTimeoutSendsEventOnceWithoutCode: a Messages API that never
// answers holds the poll for ReasonTimeout only (the latency is an hour:
// without the bound the poll would not return), the failed event goes out
// without a code, and when the API is back no reason update is invented.
func TestReasonTimeoutSendsEventOnceWithoutCode(t *testing.T) {
	f := baselined(t, func(c *Config) { c.ReasonTimeout = 200 * time.Millisecond })
	specs := f.specs(nil)
	for i := range specs {
		specs[i].Messages = f.patientClient(t, 4)
	}
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	f.sim.SetMessageFaults(proxysim.Faults{Latency: time.Hour})
	ki := f.failOne(t)
	if res := f.p.PollAll(context.Background()); res[ResultOK] != 2 {
		t.Fatalf("poll %v", res)
	}
	got := failedEvents(f.drain(t))
	if len(got) != 1 || got[0].Data.InteractionSID != ki || got[0].Data.ErrorCode != 0 || got[0].Data.ErrorMessage != "" {
		t.Fatalf("failed events %+v, want one without a code", got)
	}
	if f.obs.reasonCount(ReasonTimeout) != 1 || f.obs.failed[0] != 1 {
		t.Errorf("reasons %v, failed by code %v", f.obs.reasons, f.obs.failed)
	}

	f.sim.SetMessageFaults(proxysim.Faults{})
	f.now.Add(1)
	f.p.PollAll(context.Background())
	if evs := f.drain(t); len(evs) != 0 {
		t.Errorf("after the API came back: %+v, want nothing", evs)
	}
}

func TestReasonErrorSendsEventWithoutCode(t *testing.T) {
	f := baselined(t, nil)
	f.sim.SetMessageFaults(proxysim.Faults{ErrorRate: 1})
	f.failOne(t)
	if res := f.p.PollAll(context.Background()); res[ResultOK] != 2 {
		t.Fatalf("poll %v", res)
	}
	got := failedEvents(f.drain(t))
	if len(got) != 1 || got[0].Data.ErrorCode != 0 {
		t.Fatalf("failed events %+v, want one without a code", got)
	}
	if f.obs.reasonCount(ReasonError) != 1 {
		t.Errorf("reasons %v", f.obs.reasons)
	}
}

// TestReasonWaitCancelledCommitsNothing: shutdown while the reasons are
// awaited commits nothing, so the next start derives the failed event again
// and gets its reason.
func TestReasonWaitCancelledCommitsNothing(t *testing.T) {
	f := baselined(t, func(c *Config) { c.ReasonTimeout = time.Hour })
	f.sim.SetMessageFaults(proxysim.Faults{Latency: time.Hour})
	f.failOne(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Results, 1)
	go func() { done <- f.p.PollAll(ctx) }()
	msgKey := proxysim.Key{Endpoint: proxysim.EndpointMessage}
	waitFor(t, "the message fetch", 5*time.Second, func() bool { return f.sim.Stats().Endpoints[msgKey].Requests > 0 })
	cancel()
	// The failing target's poll is the one waiting for its reason; the
	// other target's poll may have finished or, on a loaded machine, may
	// still be listing and be cancelled too. Neither commits anything then.
	if res := <-done; res[ResultCancelled] < 1 || res[ResultCancelled]+res[ResultOK] != 2 {
		t.Errorf("results %v, want the failing target's poll cancelled and the other ok or cancelled", res)
	}
	if evs := f.drain(t); len(evs) != 0 {
		t.Fatalf("cancelled poll committed %+v", evs)
	}
	f.sim.SetMessageFaults(proxysim.Faults{})
	f.p.PollAll(context.Background())
	got := failedEvents(f.drain(t))
	if len(got) != 1 || got[0].Data.ErrorCode != 30007 {
		t.Errorf("next poll: %+v, want the failed event with its code", got)
	}
}

// TestReasonBaselineManyFailuresBounded: a first listing full of recent
// failures fetches within the client's in-flight cap and the poll's bound,
// and every failed event still goes out.
func TestReasonBaselineManyFailuresBounded(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 6, Participants: 2, Interactions: 40, BacklogGap: 5 * time.Second,
		FailureRate: 1, RateLimit: -1}, func(c *Config) { c.ReasonTimeout = 300 * time.Millisecond })
	slow := f.patientClient(t, 2)
	f.sim.SetMessageFaults(proxysim.Faults{Latency: time.Hour})
	specs := f.specs(nil)
	for i := range specs {
		specs[i].Messages = slow
	}
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	if res := f.p.PollAll(context.Background()); res[ResultOK] != 2 {
		t.Fatalf("baseline %v", res)
	}
	got := failedEvents(f.drain(t))
	if len(got) < 20 {
		t.Fatalf("%d failed events at baseline, want the recent failures", len(got))
	}
	if n := f.obs.reasonCount(ReasonTimeout); n != len(got) {
		t.Errorf("%d timeouts for %d failed events: %v", n, len(got), f.obs.reasons)
	}
	if st := f.sim.Stats(); st.Endpoints[proxysim.Key{Endpoint: proxysim.EndpointMessage}].Requests > 4 {
		t.Errorf("%d message requests: two pollers × 2 in flight at most before the bound",
			st.Endpoints[proxysim.Key{Endpoint: proxysim.EndpointMessage}].Requests)
	}
}

// reasonWaitFixture is baselined with one worker in all, reasons that
// never arrive by themselves (an hour's latency, an hour's bound), and a
// failure on the first target.
func reasonWaitFixture(t *testing.T, mod func(*Config)) (*fixture, []TargetSpec) {
	t.Helper()
	f := baselined(t, func(c *Config) {
		c.MaxConcurrent, c.MaxPerService, c.ReasonTimeout = 1, 1, time.Hour
		if mod != nil {
			mod(c)
		}
	})
	f.sim.SetMessageFaults(proxysim.Faults{Latency: time.Hour})
	specs := f.specs(nil)
	for i := range specs {
		specs[i].Messages = f.patientClient(t, 4)
	}
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	f.failOne(t) // on specs[0]'s target
	return f, specs
}

// TestReasonWaitFreesWorker: a poll waiting for its reasons has given its
// worker back, so with a single worker another target's poll still runs
// and commits meanwhile. Before, the wait held the worker: at 10,000
// targets a baseline full of recent failures took the first cycle from
// 61 s to 6 minutes.
func TestReasonWaitFreesWorker(t *testing.T) {
	f, specs := reasonWaitFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() {
		r, _ := f.p.Poll(ctx, specs[0].Target, Tick{})
		done <- r
	}()
	msgKey := proxysim.Key{Endpoint: proxysim.EndpointMessage}
	waitFor(t, "the message fetch", 5*time.Second, func() bool { return f.sim.Stats().Endpoints[msgKey].Requests > 0 })

	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ocancel()
	if r, err := f.p.Poll(octx, specs[1].Target, Tick{}); err != nil || r != ResultOK {
		t.Errorf("other target's poll while the first waits for its reason: %q, %v; want ok", r, err)
	}
	select {
	case r := <-done:
		t.Fatalf("the waiting poll ended early: %q", r)
	default:
	}
	cancel()
	if r := <-done; r != ResultCancelled {
		t.Errorf("waiting poll after shutdown: %q, want cancelled", r)
	}
}

// TestReasonWaitsBounded: when MaxReasonWaits polls are waiting already,
// another poll's failed event goes out at once without its reason,
// counted as skipped, instead of piling up behind them.
func TestReasonWaitsBounded(t *testing.T) {
	f, specs := reasonWaitFixture(t, func(c *Config) { c.MaxConcurrent, c.MaxPerService, c.MaxReasonWaits = 2, 2, 1 })
	ki2, err := f.sim.AddInteraction(f.sim.Targets()[1], "failed")
	if err != nil {
		t.Fatal(err)
	}
	f.now.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() {
		r, _ := f.p.Poll(ctx, specs[0].Target, Tick{})
		done <- r
	}()
	msgKey := proxysim.Key{Endpoint: proxysim.EndpointMessage}
	waitFor(t, "the message fetch", 5*time.Second, func() bool { return f.sim.Stats().Endpoints[msgKey].Requests > 0 })

	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ocancel()
	if r, err := f.p.Poll(octx, specs[1].Target, Tick{}); err != nil || r != ResultOK {
		t.Fatalf("second failing target's poll: %q, %v; want ok without waiting", r, err)
	}
	got := failedEvents(f.drain(t))
	if len(got) != 1 || got[0].Data.InteractionSID != ki2 || got[0].Data.ErrorCode != 0 {
		t.Errorf("failed events %+v, want %s's without a code", got, ki2)
	}
	if n := f.obs.reasonCount(ReasonSkipped); n != 1 {
		t.Errorf("skipped %d, want 1: %v", n, f.obs.reasons)
	}
	if n := f.sim.Stats().Endpoints[msgKey].Requests; n != 1 {
		t.Errorf("%d message requests, want only the waiting poll's", n)
	}
	cancel()
	<-done
}
