package ha

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state/kvstore"
)

// barrier holds each listing until n listings are under way, so that the
// polls that made them load the same state before either commits.
type barrier struct {
	next poller.Lister
	mu   sync.Mutex
	n    int
	all  chan struct{}
}

func (b *barrier) AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error) {
	out, err := b.next.AppendInteractions(ctx, t, dst)
	b.mu.Lock()
	b.n--
	if b.n == 0 {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-ctx.Done():
	}
	return out, err
}

// TestHADoublePollOneCommitWins is issue 12's scenario 3 in its direct
// form: two instances poll one target for the same tick from the same
// state (what a task delivered twice does). One commit wins; the other
// instance commits nothing, counts a conflict and not a state error (its
// /readyz stays ready), and the events stream holds the winner's events
// once.
func TestHADoublePollOneCommitWins(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	w := newWorld(t, proxysim.Options{Seed: 5, Participants: 1, Interactions: 2})
	w.freeze()
	tg := w.targets()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		pollers [2]*poller.Poller
		counts  [2]*queued
		store   *kvstore.Store
		b       = &barrier{n: 2, all: make(chan struct{})}
	)
	for i := range pollers {
		_, js := cl.Connect()
		s, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: "monitord_state", Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		store = s
		counts[i] = &queued{}
		pollers[i], err = poller.New(poller.Config{Rules: diff.DefaultRules(), Store: s, Observer: counts[i], Clock: w.now,
			Render: func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
			Log:    zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
		if err != nil {
			t.Fatal(err)
		}
		if err := pollers[i].SetTargets([]poller.TargetSpec{{Target: tg, Lister: w.client(t)}}); err != nil {
			t.Fatal(err)
		}
	}
	b.next = w.client(t)
	// The baseline, by the first instance alone.
	tick := poller.Tick{Key: tg.Key(), Due: w.now()}
	if res, err := pollers[0].Poll(ctx, tg, tick); err != nil || res != poller.ResultOK {
		t.Fatalf("baseline poll = %s, %v", res, err)
	}
	if _, err := w.sim.AddInteraction(proxysim.Target{ServiceSID: tg.ServiceSID, SessionSID: tg.SessionSID,
		ParticipantSID: tg.ParticipantSID}, "undelivered"); err != nil {
		t.Fatal(err)
	}
	// Both instances poll the next tick; each listing waits for the other.
	for _, p := range pollers {
		if err := p.SetTargets([]poller.TargetSpec{{Target: tg, Lister: b}}); err != nil {
			t.Fatal(err)
		}
	}
	before := [2]int64{counts[0].n.Load(), counts[1].n.Load()}
	tick.Due = tick.Due.Add(time.Minute)
	results := make([]string, 2)
	var wg sync.WaitGroup
	for i, p := range pollers {
		wg.Go(func() {
			res, err := p.Poll(ctx, tg, tick)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	ok, conflict := -1, -1
	for i, r := range results {
		switch r {
		case poller.ResultOK:
			ok = i
		case poller.ResultConflict:
			conflict = i
		}
	}
	if ok < 0 || conflict < 0 {
		t.Fatalf("double poll results %v, want one ok and one conflict", results)
	}
	if err := pollers[conflict].StateErr(); err != nil {
		t.Errorf("the losing instance's StateErr = %v, want nil (its /readyz must stay ready)", err)
	}
	if n := counts[conflict].n.Load() - before[conflict]; n != 0 {
		t.Errorf("the losing instance committed %d events, want none", n)
	}
	won := counts[ok].n.Load() - before[ok]
	if won == 0 {
		t.Fatal("the winning instance committed no event: the test checks nothing")
	}

	// Publish what is pending and read the stream.
	cfg := notify.DefaultConfig()
	cfg.URLs = strings.Split(cl.URLs(), ",")
	cfg.Stream.Replicas = 3
	pub, err := notify.New(cfg, store, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pub.Run(rctx) }()
	defer func() { stop(); <-done }()
	if err := pub.WaitEmptyConnected(ctx); err != nil {
		t.Fatal(err)
	}
	_, js := cl.Connect()
	ids := streamEvents(t, js)
	total := counts[0].n.Load() + counts[1].n.Load()
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if int64(len(ids)) != total || len(seen) != len(ids) {
		t.Errorf("%d events in the stream (%d ids), %d committed: want each committed event once", len(ids), len(seen), total)
	}
}
