package ha

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/work"
)

// stateStream is the stream behind the state bucket.
const stateStream = "KV_" + bucket

// others returns the nodes of w's cluster but i.
func others(w *world, i int) []int {
	var out []int
	for n := range w.cl.Nodes {
		if n != i {
			out = append(out, n)
		}
	}
	return out
}

// stateLeader is the node leading the state bucket, once one does (an
// election may be under way on a loaded machine).
func stateLeader(t *testing.T, w *world) int {
	t.Helper()
	leader := -1
	natstest.WaitFor(t, "a leader of the state bucket", settle, func() bool {
		leader = w.cl.StreamLeader(stateStream)
		return leader >= 0
	})
	return leader
}

// TestHAPartitionOneNode is issue 12's scenario 4, first part: the node
// leading the state bucket is cut off from the other two, and keeps the
// instance that prefers it. The majority elects new leaders, the other
// instances take its Services over, and every target is polled again
// with the node still cut off; healed, it catches up, and every event
// reaches the stream once.
func TestHAPartitionOneNode(t *testing.T) {
	w := newWorld(t, worldOptions())
	j := &journal{}
	ins := startThree(t, w, j, nil)
	w.settled("baseline", settle)

	cut := stateLeader(t, w)
	w.connect(others(w, cut)...)
	w.cl.Partition(cut)
	at := time.Now()
	w.step(1)
	// The instances on the majority side poll; a publisher connected to
	// the cut node holds its events until the heal, so only the state is
	// awaited here.
	w.polled("every target polled with node "+w.cl.Nodes[cut].Name+" cut off", settle)
	t.Logf("node %d (state leader) cut off: every target polled again after %v", cut, time.Since(at).Round(time.Millisecond))

	w.cl.Heal(cut)
	w.cl.WaitReady(30 * time.Second)
	w.step(2)
	w.settled("after the heal", settle)
	t.Logf("%d events expected in all", w.expectedCount())
	w.settledOwners("ownership at the end", ins)
	w.checkListings()
}

// TestHAStreamLeaderSteppedDown is scenario 4, second part: the leaders
// of the state bucket, the task stream, the events stream and the task
// consumers step down gracefully, one after another, while the world
// changes.
func TestHAStreamLeaderSteppedDown(t *testing.T) {
	w := newWorld(t, worldOptions())
	j := &journal{}
	ins := startThree(t, w, j, nil)
	w.settled("baseline", settle)

	for n, stream := range []string{stateStream, w.wcfg.Stream, notify.DefaultStreamName} {
		at := time.Now()
		old := w.cl.StreamLeader(stream)
		leader := w.cl.StepDownStream(stream)
		w.step(n + 1)
		w.settled("after "+stream+"'s leader stepped down", settle)
		t.Logf("%s: leader node %d → %d; settled after %v", stream, old, leader, time.Since(at).Round(time.Millisecond))
	}
	at := time.Now()
	for _, svc := range w.services {
		w.cl.StepDownConsumer(w.wcfg.Stream, work.ConsumerName(svc))
	}
	w.step(4)
	w.settled("after the consumers' leaders stepped down", settle)
	t.Logf("task consumers' leaders stepped down: settled after %v; %d events expected in all",
		time.Since(at).Round(time.Millisecond), w.expectedCount())
	w.settledOwners("ownership at the end", ins)
	w.checkListings()
}

// TestHAStreamLeaderKilled is scenario 4, third part: the node leading
// the state bucket vanishes without handing anything over (routes cut,
// then shut down). The others elect new leaders after Raft's timeout;
// the instance that preferred the node reconnects to another. Restarted
// on its store, the node catches up.
func TestHAStreamLeaderKilled(t *testing.T) {
	w := newWorld(t, worldOptions())
	j := &journal{}
	ins := startThree(t, w, j, nil)
	w.settled("baseline", settle)

	dead := stateLeader(t, w)
	at := time.Now()
	w.cl.Kill(dead)
	w.step(1)
	w.settled("with the state leader's node killed", settle)
	t.Logf("node %d (state leader) killed: settled after %v", dead, time.Since(at).Round(time.Millisecond))

	w.cl.Restart(dead)
	w.cl.WaitReady(30 * time.Second)
	w.step(2)
	w.settled("with the node back", settle)
	t.Logf("%d events expected in all", w.expectedCount())
	w.settledOwners("ownership at the end", ins)
	w.checkListings()
}

// TestHAAllServersRestarted is issue 12's scenario 5: every NATS server
// stops; while none runs, the world changes (polling cannot commit, ticks
// cannot be queued); the servers start again on their stores, the
// instances reconnect, and the catch-up poll emits the missed transitions,
// each once.
func TestHAAllServersRestarted(t *testing.T) {
	w := newWorld(t, worldOptions())
	j := &journal{}
	ins := startThree(t, w, j, nil)
	w.settled("baseline", settle)
	w.step(1)
	w.settled("before the restart", settle)

	var downFor time.Duration
	w.cl.RestartAll(func() {
		at := time.Now()
		w.step(2)
		// Until every instance has failed to queue a tick: NATS has been
		// down for a tick's publish timeout at least, and nothing polled.
		errs := map[string]int64{}
		for name, in := range ins {
			errs[name] = in.node.TicksSkipped()
		}
		natstest.WaitFor(t, "every instance failing to queue a tick", settle, func() bool {
			for name, in := range ins {
				if in.node.TicksSkipped() == errs[name] {
					return false
				}
			}
			return true
		})
		downFor = time.Since(at)
	})
	at := time.Now()
	w.settled("after every server restarted", settle)
	t.Logf("NATS down for %v; the missed transitions were in the stream %v after the cluster was ready; %d events expected in all",
		downFor.Round(time.Millisecond), time.Since(at).Round(time.Millisecond), w.expectedCount())
	w.step(3)
	w.settled("the next change", settle)
	w.settledOwners("ownership at the end", ins)
	w.checkListings()
}
