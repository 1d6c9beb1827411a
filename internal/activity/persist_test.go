package activity_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/activity"
	"github.com/monitord/monitord/internal/proxy"
)

// TestSnapshotRestore: what a planner saved survives a restart. The
// restored index is the baseline, so a session that moved while monitord
// was down is new activity at once (without it, the first read after a
// restart would be a baseline and make nothing due); a hot target stays
// hot and a cold one keeps its due time instead of a sweep of everything
// at start; targets come back whether they exist at Restore or are added
// later by discovery (SetTargets).
func TestSnapshotRestore(t *testing.T) {
	hot, cold, moved := target(1, 1), target(2, 1), target(3, 1)
	p := newPlanner(t, fast(activity.Config{}), hot, cold, moved)
	index(t, p, next(t, p, t0), t0, sessionAt(1, t0), sessionAt(2, t0), sessionAt(3, t0))
	poll(t, p, next(t, p, t0), t0, listing("sending", t0))   // hot: due t0+10s
	poll(t, p, next(t, p, t0), t0, listing("delivered", t0)) // cold: due t0+30m
	poll(t, p, next(t, p, t0), t0, listing("delivered", t0)) // cold: due t0+30m
	snap := p.Snapshot(t0)
	b, err := json.Marshal(snap) // the daemon keeps it as JSON
	if err != nil {
		t.Fatal(err)
	}
	var back activity.Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}

	restart := t0.Add(time.Minute)
	for _, tc := range []struct {
		name  string
		start []proxy.Target // at New; the rest come by SetTargets
	}{{"known at restore", []proxy.Target{hot, cold, moved}}, {"added by discovery", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := activity.New(fast(activity.Config{}), tc.start, restart)
			if err != nil {
				t.Fatal(err)
			}
			q.Restore(back)
			if err := q.SetTargets([]proxy.Target{hot, cold, moved}, restart); err != nil {
				t.Fatal(err)
			}
			if c, _ := q.Class(hot.Key()); c != activity.ClassHot {
				t.Errorf("hot target restored %v", c)
			}
			// Session 3 moved while monitord was down.
			index(t, q, next(t, q, restart), restart, sessionAt(1, t0), sessionAt(2, t0), sessionAt(3, restart))
			a := next(t, q, restart)
			if a.Target != moved || a.Class != activity.ClassNew {
				t.Fatalf("first after restart: %s, want new 1@3", describe(a))
			}
			poll(t, q, a, restart, listing("delivered", restart))
			a = next(t, q, restart) // the hot target was due at t0+10s
			if a.Target != hot || a.Class != activity.ClassHot {
				t.Fatalf("then %s, want hot 1@1", describe(a))
			}
			poll(t, q, a, restart, listing("delivered", t0))
			if w := idle(t, q, restart); w > activity.DefaultIndexEvery {
				t.Errorf("wait %v: the index is next", w)
			}
			// The cold target waits for its saved due time, not swept at start.
			if c, _ := q.Class(cold.Key()); c != activity.ClassCold {
				t.Errorf("cold target restored %v", c)
			}
			at := q.Snapshot(restart).Targets[cold.Key()].Due
			if !at.Equal(t0.Add(activity.DefaultColdEvery)) {
				t.Errorf("cold target due %v after start, want its saved %v", at.Sub(t0), activity.DefaultColdEvery)
			}
		})
	}
}
