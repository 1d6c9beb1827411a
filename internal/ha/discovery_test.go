package ha

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/discover"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/schedule"
	"github.com/monitord/monitord/internal/targets"
)

// discoveryCounts counts each instance's discovery requests to the API.
type discoveryCounts struct {
	mu           sync.Mutex
	sessions     map[string]int // sessions lists, by instance
	participants map[string]int // participants lists, by instance
	at           map[string][]time.Time
}

// firstAfter is when inst first listed sessions after t (zero: never).
func (c *discoveryCounts) firstAfter(inst string, t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, at := range c.at[inst] {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

func (c *discoveryCounts) get(inst string) (sessions, participants int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[inst], c.participants[inst]
}

func (c *discoveryCounts) listers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.sessions))
}

// countLister is an instance's discovery client, counting its requests.
type countLister struct {
	inst   string
	next   discover.Lister
	counts *discoveryCounts
}

func (l countLister) ListSessions(ctx context.Context, svc string) ([]proxy.Session, error) {
	l.counts.mu.Lock()
	l.counts.sessions[l.inst]++
	l.counts.at[l.inst] = append(l.counts.at[l.inst], time.Now())
	l.counts.mu.Unlock()
	return l.next.ListSessions(ctx, svc)
}

func (l countLister) ListParticipants(ctx context.Context, svc, session string) ([]proxy.Participant, error) {
	l.counts.mu.Lock()
	l.counts.participants[l.inst]++
	l.counts.mu.Unlock()
	return l.next.ListParticipants(ctx, svc, session)
}

// TestHADiscoveryThreeInstancesFailover runs three instances on a 3-node
// cluster with one discover entry and sessions opening and closing:
// only the Service's owner lists its sessions; every instance's poller
// follows the set the owner decided; the state of a closed session's
// targets is forgotten; every event id is in the stream once. Then the
// owner is killed: another instance refreshes and polls, and its first
// refreshes list the participants of the sessions opened since, not of
// every live session again.
func TestHADiscoveryThreeInstancesFailover(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	w := newWorld(t, proxysim.Options{Seed: 21, Services: 1, Sessions: 3, Participants: 2, Interactions: 2,
		InteractionEvery: 2 * time.Second, FailureRate: 0.3})
	svc := w.sim.Services()[0]
	open := map[string]bool{} // sessions the test keeps open
	for _, tg := range w.sim.Targets() {
		open[tg.SessionSID] = true
	}
	expected := func() []string {
		var keys []string
		for _, tg := range w.targets() {
			if open[tg.SessionSID] {
				keys = append(keys, tg.Key())
			}
		}
		slices.Sort(keys)
		return keys
	}
	sched, err := schedule.Parse("@every 1s")
	if err != nil {
		t.Fatal(err)
	}
	wc := testWork(3)
	log := &pollLog{}
	counts := &discoveryCounts{sessions: map[string]int{}, participants: map[string]int{}, at: map[string][]time.Time{}}
	var insts []*instance
	for _, name := range []string{"a", "b", "c"} {
		insts = append(insts, startInstanceWith(t, name, cl, w, wc, log, func(in *instance, client poller.Lister) {
			set, err := targets.New(targets.Config{Poller: in.node.Targets(in.p), Store: in.node.Store()})
			if err != nil {
				t.Fatal(err)
			}
			tmpl := map[string]poller.TargetSpec{svc: {Lister: client, Schedule: "@every 1s", Origin: poller.OriginDiscovered}}
			if err := set.Configure(nil, tmpl); err != nil {
				t.Fatal(err)
			}
			tr, err := set.Tracker(svc, 0) // a closed session's targets go at the next refresh
			if err != nil {
				t.Fatal(err)
			}
			d, err := discover.New(discover.Config{
				Entries: []discover.Entry{{ServiceSID: svc, Sink: tr, Schedule: "@every 1s",
					// Exact counts below: no periodic re-listing in the test.
					ParticipantRefreshEvery: 1000}},
				Lister: countLister{inst: in.name, next: in.client, counts: counts},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := in.node.Discover(DiscoveredService{Service: svc, Schedule: sched, Discovery: d, Tracker: tr}); err != nil {
				t.Fatal(err)
			}
		}))
	}
	polled := func(in *instance) []string {
		var keys []string
		for _, st := range in.p.Status() {
			keys = append(keys, st.Key)
		}
		slices.Sort(keys)
		return keys
	}
	converged := func(what string, live []*instance) {
		t.Helper()
		natstest.WaitFor(t, what, 30*time.Second, func() bool {
			want := expected()
			for _, in := range live {
				if !slices.Equal(polled(in), want) {
					return false
				}
			}
			return true
		})
	}
	converged("every instance polling the discovered targets", insts)

	// Sessions open and close; the set follows on every instance.
	if _, err := w.sim.OpenSession(svc, 2); err != nil {
		t.Fatal(err)
	}
	var closed string
	for sid := range open {
		closed = sid
		break
	}
	if err := w.sim.CloseSession(svc, closed); err != nil {
		t.Fatal(err)
	}
	for _, tg := range w.sim.Targets() {
		if tg.SessionSID != closed {
			open[tg.SessionSID] = true
		}
	}
	delete(open, closed)
	converged("every instance following the opened and closed sessions", insts)

	ls := counts.listers()
	if len(ls) != 1 {
		t.Fatalf("sessions listed by %v, want the Service's owner only", ls)
	}
	owner := ls[0]
	var victim *instance
	for _, in := range insts {
		if in.name == owner {
			victim = in
		}
	}
	store := victim.node.Store()
	natstest.WaitFor(t, "the closed session's state forgotten by the owner", 20*time.Second, func() bool {
		keys, err := store.Keys()
		return err == nil && slices.Equal(keys, expected())
	})
	natstest.WaitFor(t, "every discovered target polled", 20*time.Second, func() bool {
		seen := map[string]bool{}
		for _, x := range log.snapshot() {
			seen[x.target] = true
		}
		for _, k := range expected() {
			if !seen[k] {
				return false
			}
		}
		return true
	})

	// The owner dies; a session opens while the Service has none.
	killed := time.Now()
	victim.kill()
	if _, err := w.sim.OpenSession(svc, 2); err != nil {
		t.Fatal(err)
	}
	for _, tg := range w.sim.Targets() {
		if tg.SessionSID != closed {
			open[tg.SessionSID] = true
		}
	}
	var live []*instance
	for _, in := range insts {
		if in != victim {
			live = append(live, in)
		}
	}
	before := map[string][2]int{}
	for _, in := range live {
		s, p := counts.get(in.name)
		before[in.name] = [2]int{s, p}
	}
	var next *instance
	natstest.WaitFor(t, "another instance refreshing a few times", 30*time.Second, func() bool {
		for _, in := range live {
			if s, _ := counts.get(in.name); s-before[in.name][0] >= 3 {
				next = in
				return true
			}
		}
		return false
	})
	converged("the live instances following the session opened after the kill", live)
	_, p := counts.get(next.name)
	if n := p - before[next.name][1]; n != 1 {
		t.Errorf("the new owner %s listed participants %d times in its first refreshes, want 1 (the session opened since; a cold start lists all %d)",
			next.name, n, len(open))
	}
	natstest.WaitFor(t, "the new owner polling the Service", 20*time.Second, func() bool {
		for _, x := range log.snapshot() {
			if x.inst == next.name && x.start.After(killed) {
				return true
			}
		}
		return false
	})
	for _, in := range live {
		if in == next {
			continue
		}
		if s, _ := counts.get(in.name); s != before[in.name][0] {
			t.Errorf("%s listed sessions %d times after the kill, beside the new owner %s", in.name, s-before[in.name][0], next.name)
		}
	}

	// Events: each once in the stream, after the outbox drained.
	w.freeze()
	natstest.WaitFor(t, "the outbox drained", 30*time.Second, func() bool {
		n, _, _, err := next.node.Store().OutboxStats()
		return err == nil && n == 0
	})
	_, js := cl.Connect()
	ids := streamEvents(t, js)
	if len(ids) == 0 {
		t.Fatal("no event in the stream: the test checks nothing")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("event %s twice in the stream", id)
		}
		seen[id] = true
	}
	// A figure for docs/ha.md, not an assertion: the bound is pinned TTL
	// + ack wait (4 s here).
	t.Logf("owner %s killed, %s refreshed %v after; %d events", owner, next.name,
		counts.firstAfter(next.name, killed).Sub(killed).Round(time.Millisecond), len(ids))
}
