package activity_test

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/activity"
	"github.com/monitord/monitord/internal/proxy"
)

// TestSetTargets: discovery adds and drops targets while the planner runs.
// A kept target keeps its class and due time; a removed one is never
// handed out again, not even from the new-activity FIFO nor after its
// poll in flight ends; a new target of a session the index knows is new
// activity, polled at once; one of a session it does not know is cold
// and due now.
func TestSetTargets(t *testing.T) {
	a1, b1, c1, d1 := target(1, 1), target(2, 1), target(3, 1), target(4, 1)
	p := newPlanner(t, fast(activity.Config{}), a1, b1)
	index(t, p, next(t, p, t0), t0, sessionAt(1, t0), sessionAt(2, t0), sessionAt(3, t0))
	for range 2 {
		a := next(t, p, t0)
		poll(t, p, a, t0, listing("delivered", t0)) // both cold, due in 30m
	}
	if c, ok := p.Class(a1.Key()); !ok || c != activity.ClassCold {
		t.Fatalf("a1: class %v %v, want cold", c, ok)
	}
	// b1's session moves: b1 waits in the new FIFO; then it is removed.
	now := t0.Add(time.Minute)
	a := next(t, p, now.Add(activity.DefaultIndexEvery))
	index(t, p, a, now, sessionAt(1, t0), sessionAt(2, now), sessionAt(3, t0))
	if err := p.SetTargets([]proxy.Target{a1, c1, d1}, now); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Class(b1.Key()); ok {
		t.Error("b1 still planned after its removal")
	}
	got := next(t, p, now)
	if got.Target != c1 || got.Class != activity.ClassNew {
		t.Fatalf("first after SetTargets: %s, want new 1@3 (its session is in the index)", describe(got))
	}
	got2 := next(t, p, now)
	if got2.Target != d1 || got2.Class != activity.ClassCold {
		t.Fatalf("then %s, want cold 1@4 (unknown session: cold, due now)", describe(got2))
	}
	// d1 is removed while in flight: its Done forgets it.
	if err := p.SetTargets([]proxy.Target{a1, c1}, now); err != nil {
		t.Fatal(err)
	}
	poll(t, p, got2, now, listing("queued", now))
	poll(t, p, got, now, listing("delivered", now))
	if w := idle(t, p, now); w <= 0 {
		t.Fatalf("wait %v", w)
	}
	classes := p.Classes(nil)
	if len(classes) != 2 || classes[a1.Key()] != activity.ClassCold || classes[c1.Key()] != activity.ClassCold {
		t.Errorf("classes %v, want a1 and c1 cold", classes)
	}
	if err := p.SetTargets([]proxy.Target{a1, a1}, now); err == nil {
		t.Error("a target listed twice was accepted")
	}
}
