package ha

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/ha"
)

// settle is how long a scenario waits for the instances to catch up with
// a change of the world: a failover (PinnedTTL + AckWait, 4 s), an
// election, and a tick, with room for a busy machine.
const settle = 40 * time.Second

// startThree starts instances a, b and c, each preferring another node.
func startThree(t *testing.T, w *world, j *journal, cp *crashPoint) map[string]*instance {
	t.Helper()
	ins := map[string]*instance{}
	for i, name := range []string{"a", "b", "c"} {
		ins[name] = startInstance(t, w, name, i, j, cp)
	}
	return ins
}

// settledOwners waits until every Service has an ownership record (the
// Node's o.<service>) naming a live instance whose Node says it owns the
// Service: after a kill, the takeover has reached the records that
// `monitord status --cluster` and the heartbeat show.
func (w *world) settledOwners(what string, ins map[string]*instance) {
	w.t.Helper()
	w.await(what, settle, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A transient error of the loaded cluster (no responders, a
		// timeout) is one more round.
		recs, err := ha.Owners(ctx, w.js, bucket)
		if err != nil {
			return fmt.Sprintf("read the ownership records: %v", err)
		}
		for _, svc := range w.services {
			i := slices.IndexFunc(recs, func(o ha.Owner) bool { return o.Service == svc })
			if i < 0 {
				return svc + ": no ownership record"
			}
			in := ins[recs[i].Instance]
			if in == nil || in.dead.Load() {
				return fmt.Sprintf("%s: recorded owner %q is not a live instance", svc, recs[i].Instance)
			}
			if !slices.ContainsFunc(in.node.Owned(), func(o ha.Owner) bool { return o.Service == svc }) {
				return fmt.Sprintf("%s: recorded owner %s does not hold its pin", svc, recs[i].Instance)
			}
		}
		return ""
	})
}

// awaitCrash waits for the crash point to be reached.
func awaitCrash(t *testing.T, cp *crashPoint) string {
	t.Helper()
	select {
	case name := <-cp.crashed:
		return name
	case <-time.After(settle):
		t.Fatalf("no instance reached the crash point within %v", settle)
		return ""
	}
}

// TestHACrashBetweenCommitAndPublish is issue 12's scenario 2, first
// half: an instance commits a poll's state and events and dies before it
// publishes any of them. The events wait in the bucket; another instance's
// publisher sends them, each once, and the dead instance's Services move
// to the live ones.
func TestHACrashBetweenCommitAndPublish(t *testing.T) {
	w := newWorld(t, worldOptions())
	j, cp := &journal{}, newCrashPoint()
	ins := startThree(t, w, j, cp)
	w.settled("baseline", settle)

	cp.afterCommit.Store(true)
	w.step(1)
	name := awaitCrash(t, cp)
	if len(cp.ids) == 0 {
		t.Fatal("the crashed commit carried no events")
	}
	w.settled("after "+name+" crashed between commit and publish", settle)
	<-ins[name].done
	for _, id := range cp.ids {
		if !w.isExpected(id) {
			t.Errorf("the crashed commit's event %s is not one the listing produces", id)
		}
	}
	w.step(2)
	w.settled("the next change", settle)
	t.Logf("%s crashed after committing %d events; %d events expected in all", name, len(cp.ids), w.expectedCount())
	w.settledOwners("ownership after "+name+" crashed", ins)
	w.checkListings()
}

// TestHACrashBetweenPublishAndClear is scenario 2, second half: an
// instance's publisher has the PubAcks of events and dies before it
// clears them from the bucket. Another publisher sends them again with
// the same Nats-Msg-Id; the stream drops the copies.
func TestHACrashBetweenPublishAndClear(t *testing.T) {
	w := newWorld(t, worldOptions())
	j, cp := &journal{}, newCrashPoint()
	ins := startThree(t, w, j, cp)
	w.settled("baseline", settle)

	cp.afterPublish.Store(true)
	w.step(1)
	name := awaitCrash(t, cp)
	w.settled("after "+name+" crashed between publish and clear", settle)
	<-ins[name].done
	w.step(2)
	w.settled("the next change", settle)
	t.Logf("%s crashed after publishing; %d events expected in all", name, w.expectedCount())
	w.settledOwners("ownership after "+name+" crashed", ins)
	w.checkListings()
}

// TestHAFailoverKilledMidPoll is issue 12's scenario 1: an instance dies
// in the middle of a poll, its first page listed and the API not yet
// answering the second; its connection closes, nothing is committed.
// Another instance polls the target after the task comes back (the ack
// wait) and every event reaches the stream once.
func TestHAFailoverKilledMidPoll(t *testing.T) {
	w := newWorld(t, worldOptions())
	w.pageSize = 2 // 4 to 6 interactions per target: every listing is 2 or 3 pages
	j, cp := &journal{}, newCrashPoint()
	cp.midPoll = new(atomic.Bool)
	ins := startThree(t, w, j, cp)
	w.settled("baseline", settle)

	w.step(1)
	at := time.Now()
	cp.midPoll.Store(true)
	name := awaitCrash(t, cp)
	<-ins[name].done
	w.settled("after "+name+" died waiting for page 2", settle)
	t.Logf("%s killed mid-poll; settled %v later", name, time.Since(at).Round(time.Millisecond))
	w.step(2)
	w.settled("the next change", settle)
	w.settledOwners("ownership after "+name+" died", ins)
	w.checkListings()
}
