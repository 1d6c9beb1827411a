package poller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/schedule"
)

// Run to return.
// TestSchedulerHoursInSeconds runs three hours of schedule for 200 spread
// targets (half on @every 1m, half on a calendar spec) on a warp clock:
// every target is dispatched at exactly the ticks its spread schedule
// gives, once each, never before it is due, and the loop's one-second tick
// keeps coming.
func TestSchedulerHoursInSeconds(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	end := t0.Add(3 * time.Hour)
	clock := newWarpClock(t0)
	specs := map[string]string{}
	for i := range 200 {
		spec := "@every 1m"
		if i%2 == 1 {
			spec = "0 */5 * * * *"
		}
		specs[fmt.Sprintf("participant/KS%032d/KC%032d/KP%032x", i%10, i, i)] = spec
	}

	var (
		mu    sync.Mutex
		got   = map[string][]time.Time{}
		early []string
		ids   = map[string]bool{}
		beats int
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewScheduler(clock, time.UTC, func(tk Tick) {
		mu.Lock()
		defer mu.Unlock()
		if tk.Due.After(end) {
			cancel()
			return
		}
		if now := clock.Now(); now.Before(tk.Due) {
			early = append(early, fmt.Sprintf("%s at %s", tk.ID(), now))
		}
		if ids[tk.ID()] {
			early = append(early, "twice: "+tk.ID())
		}
		ids[tk.ID()] = true
		got[tk.Key] = append(got[tk.Key], tk.Due)
	}, func(time.Time) { mu.Lock(); beats++; mu.Unlock() })
	want := map[string][]time.Time{}
	for key, spec := range specs {
		sc, err := schedule.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		sp := Spread(key, sc, t0, 0)
		s.Set(key, sp)
		for n := sp.Next(t0); !n.After(end); n = sp.Next(n) {
			want[key] = append(want[key], n)
		}
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Fatalf("%d bad dispatches, first %s", len(early), early[0])
	}
	for key, w := range want {
		g := got[key]
		if len(g) != len(w) {
			t.Fatalf("%s (%s): %d ticks, want %d", key, specs[key], len(g), len(w))
		}
		for i := range w {
			if !g[i].Equal(w[i]) {
				t.Fatalf("%s: tick %d due %s, want %s", key, i, g[i], w[i])
			}
		}
	}
	if n := len(got[firstKey(specs, "@every 1m")]); n != 180 {
		t.Errorf("@every 1m over 3h: %d ticks, want 180", n)
	}
	if beats < 3*3600 {
		t.Errorf("%d one-second ticks over 3h, want at least %d", beats, 3*3600)
	}
}

func firstKey(specs map[string]string, spec string) string {
	for k, v := range specs {
		if v == spec {
			return k
		}
	}
	return ""
}

// TestSchedulerSameTicksOnEveryInstance: two schedulers started at
// different times (two instances, or one restarted) name the same
// activations of a target with the same tick ids.
func TestSchedulerSameTicksOnEveryInstance(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := "session/KS00000000000000000000000000000001/KC00000000000000000000000000000002"
	sc, _ := schedule.Parse("@every 1m")
	ticks := func(start time.Time) map[string]bool {
		clock := newWarpClock(start)
		out := map[string]bool{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := NewScheduler(clock, time.UTC, func(tk Tick) {
			if tk.Due.After(t0.Add(time.Hour)) {
				cancel()
				return
			}
			out[tk.ID()] = true
		}, nil)
		s.Set(key, Spread(key, sc, clock.Now(), 0))
		_ = s.Run(ctx)
		return out
	}
	a, b := ticks(t0), ticks(t0.Add(17*time.Minute+123*time.Millisecond))
	if len(b) != 43 {
		t.Fatalf("later instance: %d ticks, want 43", len(b))
	}
	for id := range b {
		if !a[id] {
			t.Errorf("tick %s of the later instance unknown to the first", id)
		}
	}
}

// TestSchedulerSetRemove: a target removed is dispatched no more, a
// rescheduled one follows its new schedule from its next tick, and one
// added while running is dispatched.
func TestSchedulerSetRemove(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newWarpClock(t0)
	every := func(spec string) schedule.Schedule {
		sc, err := schedule.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		return Aligned(sc)
	}
	var mu sync.Mutex
	dues := map[string][]time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s *Scheduler
	s = NewScheduler(clock, time.UTC, func(tk Tick) {
		mu.Lock()
		defer mu.Unlock()
		if tk.Due.After(t0.Add(6 * time.Hour)) {
			cancel()
			return
		}
		dues[tk.Key] = append(dues[tk.Key], tk.Due)
		switch {
		case tk.Key == "a" && len(dues["a"]) == 5:
			s.Remove("a")
			s.Set("c", every("@every 1m"))
		case tk.Key == "b" && len(dues["b"]) == 5:
			s.Set("b", every("@every 1h"))
		}
	}, nil)
	s.Set("a", every("@every 1m"))
	s.Set("b", every("@every 1m"))
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(dues["a"]); n != 5 {
		t.Errorf("removed target a dispatched %d times, want 5", n)
	}
	b := dues["b"]
	if len(b) != 5+6 {
		t.Fatalf("b dispatched %d times, want 5 by the minute then 6 by the hour: %v", len(b), b)
	}
	for i := 6; i < len(b); i++ {
		if gap := b[i].Sub(b[i-1]); gap != time.Hour {
			t.Errorf("rescheduled b: gap %s before tick %d, want 1h", gap, i)
		}
	}
	if n := len(dues["c"]); n != 6*60-5 {
		t.Errorf("c, added after 5 minutes, dispatched %d times, want %d", n, 6*60-5)
	}
	if s.Len() != 2 {
		t.Errorf("%d items, want 2", s.Len())
	}
}

// countingPublisher counts heartbeats and cancels its context at the n-th.
type countingPublisher struct {
	mu     sync.Mutex
	seqs   []uint64
	n      int
	cancel context.CancelFunc
	now    func() time.Time
	last   time.Time // now() at the n-th beat
}

func (c *countingPublisher) PublishNow(_ context.Context, m event.Message) error {
	var ce struct {
		Data struct {
			Seq uint64 `json:"seq"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seqs = append(c.seqs, ce.Data.Seq)
	if len(c.seqs) == c.n {
		c.last = c.now()
		c.cancel()
	}
	return nil
}

// TestHeartbeatWarp: the heartbeat is a part of its own on an injected
// clock: a day of 30-second beats takes no real time, numbered in order.
func TestHeartbeatWarp(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newWarpClock(t0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &countingPublisher{n: 24 * 120, cancel: cancel, now: clock.Now}
	hb, err := NewHeartbeat(HeartbeatConfig{Interval: 30 * time.Second, Instance: "i1", Publisher: pub,
		Render: func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
		Clock:  clock.Now, Ticks: clock}, summaryFunc(func() Summary { return Summary{} }))
	if err != nil {
		t.Fatal(err)
	}
	if err := hb.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for i, s := range pub.seqs {
		if s != uint64(i+1) {
			t.Fatalf("beat %d has seq %d", i, s)
		}
	}
	if got, want := pub.last, t0.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("the %d-th beat at %s, want %s", pub.n, got, want)
	}
}

type summaryFunc func() Summary

func (f summaryFunc) Summary() Summary { return f() }

func TestNewHeartbeatErrors(t *testing.T) {
	render := func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) }
	pub := chanPublisher(make(chan event.Message, 1))
	sum := summaryFunc(func() Summary { return Summary{} })
	for _, c := range []struct {
		cfg  HeartbeatConfig
		want string
	}{
		{HeartbeatConfig{Publisher: pub, Render: render}, "heartbeat: Interval must be positive"},
		{HeartbeatConfig{Interval: time.Second, Render: render}, "heartbeat: Publisher is required"},
		{HeartbeatConfig{Interval: time.Second, Publisher: pub}, "heartbeat: Render is required"},
	} {
		if _, err := NewHeartbeat(c.cfg, sum); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
}

// TestHeartbeatOwnedServices: with several instances the heartbeat says
// which Services the instance polls ([] for a standby); a single instance's
// leaves the field out.
func TestHeartbeatOwnedServices(t *testing.T) {
	render := func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) }
	sum := summaryFunc(func() Summary { return Summary{} })
	for _, c := range []struct {
		owned func() []string
		want  string
	}{
		{nil, ""},
		{func() []string { return nil }, `"owned_services":[]`},
		{func() []string { return []string{"KS1", "KS2"} }, `"owned_services":["KS1","KS2"]`},
	} {
		hb, err := NewHeartbeat(HeartbeatConfig{Interval: time.Second, Instance: "i1", Publisher: &countingPublisher{},
			Render: render, Owned: c.owned}, sum)
		if err != nil {
			t.Fatal(err)
		}
		m, err := render(hb.Beat(time.Unix(1, 0), 1))
		if err != nil {
			t.Fatal(err)
		}
		got := string(m.Data)
		if c.want == "" && strings.Contains(got, "owned_services") || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("heartbeat %s: want %q", got, c.want)
		}
	}
}
