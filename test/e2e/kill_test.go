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
func testKill(t *testing.T) {
	kills := 4
	if *long {
		kills = 20
	}
	r := newRig(t, rigOptions{Sim: churningWorld(5), Schedule: "@every 1s"})
	rng := rand.New(rand.NewPCG(*seed, 0x6b111))

	d := r.start()
	firstStart := d.started
	d.WaitReady(60 * time.Second)
	baselined := time.Now()

	var opens []time.Duration
	var alive []time.Duration
	for i := range kills {
		// A random moment up to 3 s after exec: start-up (state open, NATS
		// connect, stream check), polling, committing and draining are all
		// in that span with a 1 s schedule.
		delay := 100*time.Millisecond + time.Duration(rng.Int64N(int64(3*time.Second)))
		select {
		case <-d.exited:
			t.Fatalf("kill %d: monitord exited by itself: %v\n%s", i, d.waitErr, d.LogTail(30))
		case <-time.After(delay):
		}
		d.Kill()
		alive = append(alive, delay)
		rep, err := checkState(r.cfg.StatePath)
		if err != nil {
			t.Fatalf("kill %d after %v: state file: %v", i+1, delay, err)
		}
		opens = append(opens, rep.Took)
		t.Logf("kill %d after %v: state opens: %d targets, %d events in the outbox", i+1, delay.Round(time.Millisecond), rep.Targets, rep.Outbox)
		d = r.start()
	}
	d.WaitReady(60 * time.Second)
	v := r.finish(d, firstStart, baselined, nil, nil)
	figure(t, "kill: %d kills -9 at random moments (%v–%v after exec); state file opened %d/%d times (slowest %v)",
		kills, slices.Min(alive).Round(time.Millisecond), slices.Max(alive).Round(time.Millisecond),
		len(opens), kills, slices.Max(opens).Round(time.Microsecond))
	figure(t, "kill: %s", v)
	if !v.OK() {
		t.Error(v)
	}
}
