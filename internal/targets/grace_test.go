package targets

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
)

// graced is target n of one Service, for the grace rule's tables.
func graced(n byte) proxy.Target { return tgt(sid("KS", 'a'), n) }

func TestNextSet(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	grace := time.Hour
	live := sighting{live: true}
	endedAt := func(d time.Duration) sighting { return sighting{endedAt: t0.Add(d)} }
	var zero time.Time
	a, b, c := graced('1'), graced('2'), graced('3')

	tests := []struct {
		name        string
		prev        map[proxy.Target]time.Time
		seen        map[proxy.Target]sighting
		now         time.Time
		grace       time.Duration
		want        map[proxy.Target]time.Time
		wantDropped int
	}{
		{
			name: "first refresh: everything seen live is tracked live",
			seen: map[proxy.Target]sighting{a: live, b: live},
			now:  t0,
			want: map[proxy.Target]time.Time{a: zero, b: zero},
		},
		{
			name: "still live stays live",
			prev: map[proxy.Target]time.Time{a: zero},
			seen: map[proxy.Target]sighting{a: live},
			now:  t0,
			want: map[proxy.Target]time.Time{a: zero},
		},
		{
			name: "live target missed: grace starts now",
			prev: map[proxy.Target]time.Time{a: zero, b: zero},
			seen: map[proxy.Target]sighting{a: live},
			now:  t0,
			want: map[proxy.Target]time.Time{a: zero, b: t0},
		},
		{
			name: "in grace, still missing, grace not over: keeps its start",
			prev: map[proxy.Target]time.Time{b: t0},
			now:  t0.Add(59 * time.Minute),
			want: map[proxy.Target]time.Time{b: t0},
		},
		{
			name:        "grace over exactly: dropped",
			prev:        map[proxy.Target]time.Time{b: t0},
			now:         t0.Add(time.Hour),
			want:        map[proxy.Target]time.Time{},
			wantDropped: 1,
		},
		{
			name:        "grace long over: dropped",
			prev:        map[proxy.Target]time.Time{a: zero, b: t0},
			seen:        map[proxy.Target]sighting{a: live},
			now:         t0.Add(3 * time.Hour),
			want:        map[proxy.Target]time.Time{a: zero},
			wantDropped: 1,
		},
		{
			name: "in grace, seen live again: live, grace cleared",
			prev: map[proxy.Target]time.Time{b: t0},
			seen: map[proxy.Target]sighting{b: live},
			now:  t0.Add(30 * time.Minute),
			want: map[proxy.Target]time.Time{b: zero},
		},
		{
			name: "tracked target seen ended: grace from when monitord noticed, not date_ended",
			prev: map[proxy.Target]time.Time{a: zero},
			seen: map[proxy.Target]sighting{a: endedAt(-50 * time.Minute)},
			now:  t0,
			want: map[proxy.Target]time.Time{a: t0},
		},
		{
			name: "in grace and seen ended again: keeps its start",
			prev: map[proxy.Target]time.Time{a: t0},
			seen: map[proxy.Target]sighting{a: endedAt(-50 * time.Minute)},
			now:  t0.Add(10 * time.Minute),
			want: map[proxy.Target]time.Time{a: t0},
		},
		{
			name: "untracked, ended recently (restart): tracked from date_ended",
			seen: map[proxy.Target]sighting{c: endedAt(-20 * time.Minute)},
			now:  t0,
			want: map[proxy.Target]time.Time{c: t0.Add(-20 * time.Minute)},
		},
		{
			name: "untracked, ended longer ago than grace: ignored",
			seen: map[proxy.Target]sighting{c: endedAt(-time.Hour)},
			now:  t0,
			want: map[proxy.Target]time.Time{},
		},
		{
			name: "untracked, ended in the future (clock skew): from now",
			seen: map[proxy.Target]sighting{c: endedAt(5 * time.Minute)},
			now:  t0,
			want: map[proxy.Target]time.Time{c: t0},
		},
		{
			name:        "zero grace: dropped at the first miss",
			prev:        map[proxy.Target]time.Time{a: zero, b: zero},
			seen:        map[proxy.Target]sighting{a: live, c: endedAt(-time.Second)},
			now:         t0,
			grace:       -1, // replaced by 0 below
			want:        map[proxy.Target]time.Time{a: zero},
			wantDropped: 1,
		},
		{
			name: "nothing seen, nothing tracked",
			now:  t0,
			want: map[proxy.Target]time.Time{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := grace
			if tt.grace < 0 {
				g = 0
			}
			prevCopy := map[proxy.Target]time.Time{}
			for k, v := range tt.prev {
				prevCopy[k] = v
			}
			got, dropped := nextSet(tt.prev, tt.seen, tt.now, g)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("next set (-want +got):\n%s", diff)
			}
			if dropped != tt.wantDropped {
				t.Errorf("dropped = %d, want %d", dropped, tt.wantDropped)
			}
			if len(tt.prev) > 0 && !cmp.Equal(prevCopy, tt.prev) {
				t.Errorf("nextSet modified prev")
			}
		})
	}
}

// TestNextSetWalk follows one target through its life across refreshes.
func TestNextSetWalk(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := graced('1')
	step := 5 * time.Minute
	var set map[proxy.Target]time.Time
	for i := 0; i <= 20; i++ {
		now := t0.Add(time.Duration(i) * step)
		seen := map[proxy.Target]sighting{}
		if i < 4 { // live for the first four refreshes, then the session closes
			seen[a] = sighting{live: true}
		}
		set, _ = nextSet(set, seen, now, time.Hour)
		_, tracked := set[a]
		// Missed first at i=4 (t0+20m); grace ends at t0+80m, i=16.
		if want := i < 16; tracked != want {
			t.Fatalf("refresh %d (t0+%s): tracked=%v, want %v", i, now.Sub(t0), tracked, want)
		}
	}
}

// TestTrackerGracePollsAndForgets follows one discover entry's targets
// through a Tracker on a real poller and state file: a target that
// vanishes is still polled, with its state, for the whole grace period,
// then dropped and its state forgotten; a target first seen already ended
// is polled for the rest of its grace.
func TestTrackerGracePollsAndForgets(t *testing.T) {
	w := newWorld(t)
	b1, b2 := w.targets[2], w.targets[3]
	svcB := b1.ServiceSID
	p := w.poller(t)
	s := newSet(t, p, w.db, nil)
	tmpl := map[string]poller.TargetSpec{svcB: {Lister: w.client, Account: "default", Schedule: "@every 2s"}}
	if err := s.Configure(nil, tmpl); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Tracker(svcB, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	polled := func() []string {
		var keys []string
		for _, st := range p.Status() {
			keys = append(keys, st.Key)
		}
		slices.Sort(keys)
		return keys
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	tracked, dropped := tr.Saw(t0, []proxy.Target{b1, b2}, nil)
	if len(tracked) != 2 || dropped != 0 || !slices.Equal(polled(), keysOf(b1, b2)) {
		t.Fatalf("first refresh: tracked %v dropped %d polled %v", tracked, dropped, polled())
	}
	if res := p.PollAll(context.Background()); res[poller.ResultOK] != 2 {
		t.Fatalf("polls: %v", res)
	}

	// b2's session closes: in grace from now, still polled, state kept.
	tracked, dropped = tr.Saw(t0.Add(5*time.Minute), []proxy.Target{b1}, nil)
	if !tracked[b2].Equal(t0.Add(5*time.Minute)) || !tracked[b1].IsZero() || dropped != 0 {
		t.Fatalf("after close: tracked %v dropped %d", tracked, dropped)
	}
	if got := polled(); !slices.Equal(got, keysOf(b1, b2)) {
		t.Fatalf("polled in grace %v, want both", got)
	}
	if got := w.keys(t); !slices.Equal(got, keysOf(b1, b2)) {
		t.Fatalf("state in grace %v, want both", got)
	}

	// A minute short of the grace: still there.
	if _, dropped = tr.Saw(t0.Add(64*time.Minute), []proxy.Target{b1}, nil); dropped != 0 || len(polled()) != 2 {
		t.Fatalf("before grace ends: dropped %d polled %v", dropped, polled())
	}
	// Grace over: dropped, no longer polled, state forgotten.
	tracked, dropped = tr.Saw(t0.Add(65*time.Minute), []proxy.Target{b1}, nil)
	if len(tracked) != 1 || dropped != 1 {
		t.Fatalf("grace over: tracked %v dropped %d", tracked, dropped)
	}
	if got := polled(); !slices.Equal(got, keysOf(b1)) {
		t.Fatalf("polled after grace %v, want b1", got)
	}
	if got := w.keys(t); !slices.Equal(got, keysOf(b1)) {
		t.Fatalf("state after grace %v, want b1", got)
	}

	// First seen already ended 50 minutes ago (a restart): polled for the
	// ten minutes left, as InGrace told discovery to list it.
	now := t0.Add(2 * time.Hour)
	endedAt := now.Add(-50 * time.Minute)
	if !tr.InGrace(endedAt, now) || tr.InGrace(now.Add(-time.Hour), now) {
		t.Fatal("InGrace: want true 50 minutes after the end and false an hour after")
	}
	tracked, _ = tr.Saw(now, []proxy.Target{b1}, map[proxy.Target]time.Time{b2: endedAt})
	if !tracked[b2].Equal(endedAt) || !slices.Equal(polled(), keysOf(b1, b2)) {
		t.Fatalf("ended session: tracked %v polled %v", tracked, polled())
	}
	if _, dropped = tr.Saw(now.Add(10*time.Minute), []proxy.Target{b1}, nil); dropped != 1 || len(polled()) != 1 {
		t.Fatalf("ended session's grace over: dropped %d polled %v", dropped, polled())
	}
}

// TestTrackersOfOneServiceUnite: two entries of one Service, each with its
// own grace; the Service's polled set is the union of what they track.
func TestTrackersOfOneServiceUnite(t *testing.T) {
	w := newWorld(t)
	b1, b2 := w.targets[2], w.targets[3]
	svcB := b1.ServiceSID
	p := w.poller(t)
	s := newSet(t, p, w.db, nil)
	if err := s.Configure(nil, map[string]poller.TargetSpec{svcB: {Lister: w.client, Account: "default"}}); err != nil {
		t.Fatal(err)
	}
	short, err := s.Tracker(svcB, 0)
	if err != nil {
		t.Fatal(err)
	}
	long, err := s.Tracker(svcB, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	short.Saw(t0, []proxy.Target{b1}, nil)
	long.Saw(t0, []proxy.Target{b1, b2}, nil)
	if got := len(p.Status()); got != 2 {
		t.Fatalf("polled %d, want b1 and b2", got)
	}
	// b1 leaves the short entry (grace 0: dropped at once) but the long
	// entry still tracks it: still polled, its state kept.
	if _, dropped := short.Saw(t0.Add(time.Minute), nil, nil); dropped != 1 {
		t.Fatalf("short entry dropped %d, want 1", dropped)
	}
	if got := s.Specs(); len(got) != 2 || got[0].Target != b1 {
		t.Fatalf("specs %v, want b1 and b2", got)
	}
}

func TestTrackerRejectsNegativeGrace(t *testing.T) {
	s := newSet(t, setterOK{}, nil, nil)
	if _, err := s.Tracker(sid("KS", 'a'), -time.Second); err == nil || err.Error() != "grace: -1s is negative" {
		t.Fatalf("Tracker error %v, want grace: -1s is negative", err)
	}
}

// setterOK accepts every target list.
type setterOK struct{}

func (setterOK) SetTargets([]poller.TargetSpec) error { return nil }

// TestHAAdoptPollsAndNeverForgets: with ha, an instance that is not the
// Service's owner takes the owner's decision (Adopt). It polls what was
// adopted, and a set that drops a target (a lagging copy of the owner's
// decision) forgets no state: the owner decides that once, in Saw. An
// owner that adopted the set before its refresh keeps the grace timers
// the previous owner started.
func TestHAAdoptPollsAndNeverForgets(t *testing.T) {
	w := newWorld(t)
	b1, b2 := w.targets[2], w.targets[3]
	svcB := b1.ServiceSID
	p := w.poller(t)
	s := newSet(t, p, w.db, nil)
	tmpl := map[string]poller.TargetSpec{svcB: {Lister: w.client, Account: "default", Schedule: "@every 2s"}}
	if err := s.Configure(nil, tmpl); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Tracker(svcB, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	polled := func() []string {
		var keys []string
		for _, st := range p.Status() {
			keys = append(keys, st.Key)
		}
		slices.Sort(keys)
		return keys
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tr.Adopt(map[proxy.Target]time.Time{b1: {}, b2: t0})
	if got := polled(); !slices.Equal(got, keysOf(b1, b2)) {
		t.Fatalf("polled after adopting %v, want both", got)
	}
	if res := p.PollAll(context.Background()); res[poller.ResultOK] != 2 {
		t.Fatalf("polls: %v", res)
	}
	// A set without b2 (the owner dropped it, or a stale copy): no longer
	// polled here, but its state stays for the owner to decide.
	tr.Adopt(map[proxy.Target]time.Time{b1: {}})
	if got := polled(); !slices.Equal(got, keysOf(b1)) {
		t.Fatalf("polled after the smaller set %v, want b1", got)
	}
	if got := w.keys(t); !slices.Equal(got, keysOf(b1, b2)) {
		t.Fatalf("state after adopting the smaller set %v, want both kept", got)
	}
	// This instance becomes the owner: it adopts the last decision (b2 in
	// grace since t0) and refreshes. The grace ends an hour after t0, not
	// an hour after this refresh, and then the owner forgets b2's state.
	tr.Adopt(map[proxy.Target]time.Time{b1: {}, b2: t0})
	if tracked, dropped := tr.Saw(t0.Add(30*time.Minute), []proxy.Target{b1}, nil); dropped != 0 || !tracked[b2].Equal(t0) {
		t.Fatalf("owner's refresh in grace: tracked %v dropped %d, want b2 in grace since %s", tracked, dropped, t0)
	}
	if _, dropped := tr.Saw(t0.Add(time.Hour), []proxy.Target{b1}, nil); dropped != 1 {
		t.Fatalf("owner's refresh at the end of the grace: dropped %d, want 1", dropped)
	}
	if got := w.keys(t); !slices.Equal(got, keysOf(b1)) {
		t.Fatalf("state after the owner dropped b2 %v, want b1", got)
	}
	if got := tr.Tracked(); len(got) != 1 || !got[b1].IsZero() {
		t.Fatalf("Tracked() = %v, want b1 live", got)
	}
}

// countingSetter accepts every target list and counts them.
type countingSetter struct{ n int }

func (c *countingSetter) SetTargets([]poller.TargetSpec) error { c.n++; return nil }

// TestSameDiscoveredSetNotReapplied: a refresh that finds the same set
// hands the poller nothing (activity mode refreshes every 30 s); one that
// changes it does.
func TestSameDiscoveredSetNotReapplied(t *testing.T) {
	w := newWorld(t)
	b1, b2 := w.targets[2], w.targets[3]
	c := &countingSetter{}
	s := newSet(t, c, w.db, nil)
	tmpl := map[string]poller.TargetSpec{b1.ServiceSID: {Lister: w.client, Account: "default"}}
	if err := s.Configure(nil, tmpl); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Tracker(b1.ServiceSID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tr.Saw(now, []proxy.Target{b1, b2}, nil)
	before := c.n
	tr.Saw(now.Add(30*time.Second), []proxy.Target{b2, b1}, nil)
	if c.n != before {
		t.Errorf("the same set applied again: %d SetTargets, want %d", c.n, before)
	}
	tr.Saw(now.Add(time.Minute), []proxy.Target{b1}, nil) // b2 into its grace: still tracked
	tr.Saw(now.Add(2*time.Hour), []proxy.Target{b1}, nil) // grace over: dropped
	if c.n != before+1 {
		t.Errorf("%d SetTargets after a change, want %d", c.n, before+1)
	}
}
