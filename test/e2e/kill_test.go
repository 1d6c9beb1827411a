//go:build linux

package e2e

import (
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

var seed = flag.Uint64("e2e.seed", 1, "seed of the simulated world and of the random kill moments")

// churningWorld is a small world that keeps changing: a new interaction
// per participant every few seconds, statuses moving through queued →
// sending → sent → delivered within seconds, a third of them failing, and
// backlog interactions being deleted as the run goes on.
func churningWorld(sessions int) proxysim.Options {
	return proxysim.Options{
		Seed:             *seed,
		Services:         1,
		Sessions:         sessions,
		Participants:     2,
		Interactions:     20,
		BacklogGap:       time.Minute,
		InteractionEvery: 3 * time.Second,
		FailureRate:      0.3,
		DeleteRate:       0.3,
		RateLimit:        -1, // not what this scenario is about
	}
}

// testKill is scenario 3: kill -9 of `monitord run` at random moments
// while the world keeps changing. After each kill the state file must open
// and read whole; at the end the subscriber must hold every event the
// simulator's record requires, each once, and nothing it does not explain.
//
// Every other kill is aimed at the outbox drain, the moment where a crash
// can leave events that NATS already acknowledged in the outbox (to be
// published again, and dropped by JetStream's duplicate window): NATS is
// stopped until events wait in the outbox, started again, and monitord is
// killed a random 0–8 ms after it has reconnected, while it drains.
func testKill(t *testing.T) {
	kills := 4
	if *long {
		kills = 20
	}
	world := churningWorld(10)
	world.InteractionEvery = time.Second // events enough to fill the outbox quickly
	r := newRig(t, rigOptions{Sim: world, Schedule: "@every 1s"})
	rng := rand.New(rand.NewPCG(*seed, 0x6b111))

	d := r.start()
	firstStart := d.started
	d.WaitReady(60 * time.Second)
	baselined := time.Now()

	var opens, alive, drainKills []time.Duration
	pending, replayed := 0, 0
	for i := range kills {
		var delay time.Duration
		if i%2 == 0 {
			// A random moment up to 3 s after exec: start-up (state open,
			// NATS connect, stream check), polling, committing and
			// draining are all in that span with a 1 s schedule.
			delay = 100*time.Millisecond + time.Duration(rng.Int64N(int64(3*time.Second)))
			select {
			case <-d.exited:
				t.Fatalf("kill %d: monitord exited by itself: %v\n%s", i+1, d.waitErr, d.LogTail(30))
			case <-time.After(delay):
			}
		} else {
			d.WaitReady(60 * time.Second)
			r.nats.Stop()
			if err := waitFor(60*time.Second, 50*time.Millisecond, func() (bool, error) {
				s, err := d.Status()
				return err == nil && s.Outbox >= 200, nil
			}); err != nil {
				t.Fatalf("kill %d: the outbox never filled while NATS was down: %v", i+1, err)
			}
			if err := r.nats.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill a random 0–8 ms after monitord's connection reaches
			// the server (the subscriber's is the other one): it checks
			// the stream and drains the outbox in that span.
			if err := waitFor(30*time.Second, 200*time.Microsecond, func() (bool, error) {
				return r.nats.srv.NumClients() >= 2, nil
			}); err != nil {
				t.Fatalf("kill %d: monitord never reconnected: %v", i+1, err)
			}
			delay = time.Duration(rng.Int64N(int64(8 * time.Millisecond)))
			time.Sleep(delay) // the random moment within the drain
			drainKills = append(drainKills, delay)
		}
		d.Kill()
		if i%2 == 0 {
			alive = append(alive, delay)
		}
		rep, err := checkState(r.cfg.StatePath)
		if err != nil {
			t.Fatalf("kill %d: state file: %v", i+1, err)
		}
		opens = append(opens, rep.Took)
		// Events still in the outbox that the stream already holds were
		// acknowledged but not yet deleted when the process died: the
		// restart publishes them again and JetStream must drop them.
		r.rec.WaitCaughtUp(t, 30*time.Second)
		again := 0
		for _, id := range rep.OutboxIDs {
			if r.rec.Has(id) {
				again++
			}
		}
		pending += rep.Outbox
		replayed += again
		t.Logf("kill %d (%s): state opens: %d targets, %d events in the outbox, %d of them already in the stream",
			i+1, map[bool]string{true: "random moment", false: "during the drain"}[i%2 == 0], rep.Targets, rep.Outbox, again)
		d = r.start()
	}
	d.WaitReady(60 * time.Second)
	v := r.finish(d, firstStart, baselined, nil, nil)
	figure(t, "kill: %d kills -9 (%d at random moments %v–%v after exec, %d during the outbox drain, %v–%v after monitord reconnected); state file opened %d/%d times (slowest %v)",
		kills, len(alive), slices.Min(alive).Round(time.Millisecond), slices.Max(alive).Round(time.Millisecond),
		len(drainKills), slices.Min(drainKills).Round(time.Microsecond), slices.Max(drainKills).Round(time.Microsecond),
		len(opens), kills, slices.Max(opens).Round(time.Microsecond))
	figure(t, "kill: %d events were in the outbox at the kills, %d of them already acknowledged by JetStream (published again after the restart, deduplicated)",
		pending, replayed)
	figure(t, "kill: %s", v)
	if !v.OK() {
		t.Error(v)
	}
}
