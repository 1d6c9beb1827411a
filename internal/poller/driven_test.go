package poller

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// TestDrivenTargetsAreNotScheduled: a driven target (poll.mode activity) is
// polled only through Poll, never by the scheduler, while a scheduled one
// next to it keeps its rhythm; made scheduled again by SetTargets it is
// taken up by the scheduler; and removing a driven target works like
// removing any other.
func TestDrivenTargetsAreNotScheduled(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 21, Participants: 2}, nil)
	var driven, scheduled atomic.Int32
	specs := every1s(f.specs(nil))
	specs[0].Lister = hookLister{f.client, func(context.Context) { driven.Add(1) }}
	specs[0].Driven = true
	specs[1].Lister = hookLister{f.client, func(context.Context) { scheduled.Add(1) }}
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	waitFor(t, "the scheduled target polled three times", 10*time.Second, func() bool { return scheduled.Load() >= 3 })
	if n := driven.Load(); n != 0 {
		t.Fatalf("the driven target was polled %d times by the scheduler", n)
	}
	if st := f.p.Status(); st[0].Schedule != "" && st[1].Schedule != "" {
		t.Errorf("status schedules %q and %q: a driven target shows none", st[0].Schedule, st[1].Schedule)
	}
	res, err := f.p.Poll(context.Background(), specs[0].Target, Tick{})
	if err != nil || res != ResultOK || driven.Load() != 1 {
		t.Fatalf("Poll of the driven target: %q, %v, %d listings", res, err, driven.Load())
	}

	specs[0].Driven = false
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the target scheduled again", 10*time.Second, func() bool { return driven.Load() >= 3 })

	specs[0].Driven = true
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	if err := f.p.SetTargets(specs[1:]); err != nil {
		t.Fatal(err)
	}
	if n := len(f.p.Status()); n != 1 {
		t.Fatalf("%d targets after removing the driven one, want 1", n)
	}
}

// TestRemovalCancelsPollThroughPoll: a poll started through Poll (the work
// queue's, the activity planner's) is cancelled when its target is
// removed, as a scheduled one is, so SetTargets does not wait out a
// blocked listing; and a Poll of a removed target gives up instead of
// waiting for ever on the lock that removal keeps.
func TestRemovalCancelsPollThroughPoll(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 22, Participants: 2}, nil)
	specs := f.specs(nil)
	listing := make(chan struct{}, 1)
	for i := range specs {
		specs[i].Driven = true
	}
	specs[0].Lister = hookLister{f.client, func(ctx context.Context) {
		listing <- struct{}{}
		<-ctx.Done() // an API that never answers
	}}
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	runPoller(t, f.p)
	pollThenRemove(t, f.p, specs, listing)
}

// TestRemovalCancelsPollBeforeRun: a Poll that starts before Run (the
// daemon starts its work queue and planner alongside the scheduler, in
// no set order) still ends when its target is removed. Before, removal
// cancelled only the context Run gives each target, which such a Poll
// never saw, and SetTargets waited for ever.
func TestRemovalCancelsPollBeforeRun(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 23, Participants: 2}, nil)
	specs := f.specs(nil)
	listing := make(chan struct{}, 1)
	specs[0].Lister = hookLister{f.client, func(ctx context.Context) {
		listing <- struct{}{}
		<-ctx.Done() // an API that never answers
	}}
	if err := f.p.SetTargets(specs); err != nil {
		t.Fatal(err)
	}
	pollThenRemove(t, f.p, specs, listing)
}

// pollThenRemove polls specs[0] through Poll, waits until its listing has
// begun (listing), removes it, and checks that the removal cancelled the
// poll instead of waiting for it.
func pollThenRemove(t *testing.T, p *Poller, specs []TargetSpec, listing <-chan struct{}) {
	t.Helper()
	polled := make(chan string, 1)
	go func() {
		r, _ := p.Poll(context.Background(), specs[0].Target, Tick{})
		polled <- r
	}()
	<-listing
	removed := make(chan error, 1)
	go func() { removed <- p.SetTargets(specs[1:]) }()
	select {
	case err := <-removed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SetTargets waited for a poll it should have cancelled")
	}
	if r := <-polled; r != ResultCancelled {
		t.Errorf("the removed target's poll: %q, want cancelled", r)
	}
}
