package poller

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

// BenchmarkPollAllocs is one complete poll of a 200-interaction target, as
// the daemon makes it: the client lists the page from the simulator over
// HTTP, diff runs against the stored snapshot, and state commits in one
// transaction. The target is baselined before the loop, so each iteration
// is a steady-state poll, the common case at scale.
//
// The simulator's answer is rendered once and replayed (replayHandler):
// the simulator runs in this process, and its rendering would otherwise
// count in B/op although the daemon never pays for it.
//
//	go test -run '^$' -bench BenchmarkPollAllocs -benchmem -count 5 ./internal/poller/
func BenchmarkPollAllocs(b *testing.B) {
	for _, gz := range []bool{false, true} {
		name := "identity"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) { benchPoll(b, gz) })
	}
}

func benchPoll(b *testing.B, gz bool) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	sim := proxysim.New(proxysim.Options{Seed: 16, Services: 1, Sessions: 1, Participants: 1,
		Interactions: 200, Clock: clock, RateLimit: -1, Gzip: gz})
	srv := httptest.NewServer(&replayHandler{h: sim})
	defer srv.Close()
	cr := sim.Credentials()
	c, err := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: cr.AccountSID,
		APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret, RequestsPerSecond: 1e9, Burst: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	db, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	p, err := New(Config{
		Rules:  diff.DefaultRules(),
		Render: func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
		Store:  db, Log: zap.NewNop(), Clock: clock,
	})
	if err != nil {
		b.Fatal(err)
	}
	st := sim.Targets()
	if len(st) != 1 {
		b.Fatalf("%d simulated targets, want 1", len(st))
	}
	t := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: st[0].ServiceSID,
		SessionSID: st[0].SessionSID, ParticipantSID: st[0].ParticipantSID}
	if err := p.SetTargets([]TargetSpec{{Target: t, Lister: c}}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if res := p.PollAll(ctx); res[ResultOK] != 1 { // the baseline
		b.Fatalf("baseline poll: %v", res)
	}
	items, err := c.ListInteractions(ctx, t)
	if err != nil || len(items) != 200 {
		b.Fatalf("%d interactions, %v; want 200", len(items), err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := p.PollAll(ctx); res[ResultOK] != 1 {
			b.Fatalf("poll: %v", res)
		}
	}
}

// replayHandler answers each URL (and Accept-Encoding) with what h
// answered the first time, so that a benchmark measures the client's side.
type replayHandler struct {
	h     http.Handler
	mu    sync.Mutex
	cache map[string]*httptest.ResponseRecorder
}

func (rh *replayHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.URL.String() + " " + r.Header.Get("Accept-Encoding")
	rh.mu.Lock()
	rec, ok := rh.cache[key]
	if !ok {
		rec = httptest.NewRecorder()
		rh.h.ServeHTTP(rec, r)
		if rh.cache == nil {
			rh.cache = map[string]*httptest.ResponseRecorder{}
		}
		rh.cache[key] = rec
	}
	rh.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = bytes.NewReader(rec.Body.Bytes()).WriteTo(w)
}
