package ha

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestHAThreeInstancesFailover runs three instances composed as the daemon
// composes them (Node, poller in dispatch mode, publisher on the shared
// KV outbox) on a 3-node JetStream cluster against the simulator with
// injected 5xx. It checks that each Service is listed by one instance at a
// time; then kills the owner of a Service (its connection closed first,
// nothing handed over) and checks that another instance takes it over. At
// the end, with the world frozen: the stored state of every target equals
// the simulator's listing, the outbox is empty, the events stream holds
// each event id once, as many events as the instances committed (an event
// committed twice would be dropped by the stream's dedupe and show here),
// and every failure the world made during the run is among them.
func TestHAThreeInstancesFailover(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	w := newWorld(t, proxysim.Options{Seed: 12, Services: 2, Sessions: 2, Participants: 2, Interactions: 3,
		InteractionEvery: 2 * time.Second, FailureRate: 0.3})
	w.sim.SetFaults(proxysim.Faults{ErrorRate: 0.05})
	start := w.now()
	wc := testWork(3)
	log := &pollLog{}
	var insts []*instance
	for _, name := range []string{"a", "b", "c"} {
		insts = append(insts, startInstance(t, name, cl, w, wc, log))
	}
	services := w.sim.Services()
	targets := w.targets()

	// Every Service owned, and listed by its owner only.
	owners := map[string]string{}
	natstest.WaitFor(t, "every Service listed a few times", 30*time.Second, func() bool {
		for _, svc := range services {
			if n := len(log.pollers(svc, start)); n == 0 {
				return false
			}
		}
		return len(log.snapshot()) >= 4*len(targets)
	})
	for _, svc := range services {
		ps := log.pollers(svc, start)
		if len(ps) != 1 {
			t.Fatalf("service %s listed by %v, want one instance", svc, ps)
		}
		owners[svc] = ps[0]
	}
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	natstest.WaitFor(t, "ownership records naming the listing instances", 10*time.Second, func() bool {
		recs, err := Owners(ctx, js, "monitord_state")
		if err != nil || len(recs) != len(services) {
			return false
		}
		for _, o := range recs {
			if owners[o.Service] != o.Instance {
				return false
			}
		}
		return true
	})
	byName := map[string]*instance{}
	for _, in := range insts {
		byName[in.name] = in
	}
	victim := byName[owners[services[0]]]
	if got := victim.node.Owned(); !slices.ContainsFunc(got, func(o Owner) bool { return o.Service == services[0] }) {
		t.Fatalf("%s: Owned() = %v, want %s among them", victim.name, got, services[0])
	}

	// The owner dies mid-poll (issue 12, scenario 1): a listing done, its
	// commit not, when its connection closes. Another instance takes its
	// Services over, that target's task included (after the ack wait).
	victim.hold.arm()
	select {
	case <-victim.hold.caught:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner started no poll to be killed in")
	}
	killed := time.Now()
	victim.kill()
	natstest.WaitFor(t, "another instance listing the dead owner's Service", 20*time.Second, func() bool {
		return len(log.pollers(services[0], killed)) > 0
	})
	for _, x := range log.snapshot() {
		if x.service == services[0] && x.start.After(killed) {
			// A figure for docs/ha.md, not an assertion: the bound is
			// pinned TTL + ack wait (4 s here).
			t.Logf("takeover: %s listed by %s %v after the kill", services[0], x.inst, x.start.Sub(killed).Round(time.Millisecond))
			break
		}
	}
	if ps := log.pollers(services[0], killed.Add(time.Second)); slices.Contains(ps, victim.name) {
		t.Fatalf("service %s listed by the dead instance %s after its death", services[0], victim.name)
	}
	natstest.WaitFor(t, "the target caught mid-poll polled by another instance", 20*time.Second, func() bool {
		for _, x := range log.snapshot() {
			if x.target == victim.hold.target && x.inst != victim.name && x.start.After(killed) {
				return true
			}
		}
		return false
	})
	taken := time.Now()
	natstest.WaitFor(t, "a few more polls of every target", 20*time.Second, func() bool {
		n := 0
		for _, x := range log.snapshot() {
			if x.start.After(taken) {
				n++
			}
		}
		return n >= 3*len(targets)
	})
	if o := log.overlap(); o != "" {
		t.Errorf("two instances listed one Service at once: %s", o)
	}

	// The world stops moving once it made a few failures: the state
	// catches up with it, and the outbox drains.
	natstest.WaitFor(t, "a few failures in the world", 60*time.Second, func() bool {
		return len(w.sim.Failures(start, w.now())) >= 4
	})
	w.freeze()
	w.sim.SetFaults(proxysim.Faults{})
	frozenAt := w.now()
	live := insts[:0:0]
	for _, in := range insts {
		if in != victim {
			live = append(live, in)
		}
	}
	store := live[0].node.Store()
	client := w.client(t)
	natstest.WaitFor(t, "stored state equal to the simulator's listing, outbox empty", 60*time.Second, func() bool {
		for _, tg := range targets {
			ts, _, err := store.Load(tg.Key())
			if err != nil {
				return false
			}
			got, err := client.AppendInteractions(ctx, tg, nil)
			if err != nil || ts.Snapshot.Len() != len(got) {
				return false
			}
			for _, it := range got {
				e, ok := ts.Snapshot.Find(it.SID)
				if !ok || e.OutboundStatus != it.OutboundResourceStatus || e.InboundStatus != it.InboundResourceStatus {
					return false
				}
			}
		}
		n, _, _, err := store.OutboxStats()
		return err == nil && n == 0
	})

	recs := streamRecords(t, js)
	var ids []string
	// Per-target order across three publishers (docs/ha.md, "Publishing"):
	// an interaction's created event is before its failed and
	// status_changed events in the stream, as its commits were.
	created := event.TypePrefix + "interaction." + string(event.Created)
	createdAt := map[string]int{}
	for i, r := range recs {
		ids = append(ids, r.ID)
		if r.Type == created {
			createdAt[r.Data.InteractionSID] = i
		}
	}
	ordered := 0
	for i, r := range recs {
		if r.Type == created || r.Data.InteractionSID == "" {
			continue
		}
		if c, ok := createdAt[r.Data.InteractionSID]; ok {
			ordered++
			if c > i {
				t.Errorf("%s of %s at stream position %d, before its created event at %d", r.Type, r.Data.InteractionSID, i, c)
			}
		}
	}
	if ordered == 0 {
		t.Error("no interaction with both a created and a later event: the order check checks nothing")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("event %s twice in the stream", id)
		}
		seen[id] = true
	}
	// Each event is committed by one instance (compare-and-set), so the
	// stream holds what was committed. A commit the dead instance sent as
	// its connection closed may have been stored without its answer: more
	// events than committed are allowed only then.
	var committed int64
	for _, in := range insts {
		committed += in.queued.n.Load()
	}
	ambiguous := victim.queued.stateErrors.Load()
	if n := int64(len(ids)); n < committed || (n > committed && ambiguous == 0) {
		t.Errorf("%d events in the stream, %d committed by the instances, %d commits of the dead instance unanswered: want committed ≤ stream, equal without those (none lost, none committed twice)",
			n, committed, ambiguous)
	}
	failures := w.sim.Failures(start, frozenAt)
	if len(failures) == 0 {
		t.Fatal("the world made no failure during the run: the test checks nothing")
	}
	for _, f := range failures {
		id := event.InteractionID(f.InteractionSID, event.Failed, event.Leg(f.Leg), f.To)
		if !seen[id] {
			t.Errorf("failure %s %s→%s at %s: no failed event in the stream", f.InteractionSID, f.Leg, f.To, f.Time.Format(time.TimeOnly))
		}
	}
	t.Logf("%d events, %d failures, %d events checked after their created, owners %v, %s killed", len(ids), len(failures), ordered, owners, victim.name)
}
