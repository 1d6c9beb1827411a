package poller

import (
	"context"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
)

// splitStore reads from one state file and writes to another: with the
// second closed, every commit fails after a good load, as on a full disk.
type splitStore struct {
	read  *state.DB
	write *state.DB
}

func (s splitStore) Load(key string) (state.TargetState, state.Revision, error) {
	return s.read.Load(key)
}
func (s splitStore) Commit(key string, rev state.Revision, next state.Next, msgs []event.Message) (state.Revision, error) {
	return s.write.Commit(key, rev, next, msgs)
}

// TestFailedCommitsLogRateLimited: a commit failing on every poll logs the
// first failure at error level and then one line with the count every
// LogEvery failures (25 polls used to be 25 error lines), while StateErr
// (/readyz) and the state_error result count every one; the first good
// commit after says so once.
func TestFailedCommitsLogRateLimited(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	f := newFixture(t, proxysim.Options{Seed: 7, Participants: 1}, func(c *Config) {
		c.Log = zap.New(core)
		c.LogEvery = 10
	})
	f.p.SetTargets(f.specs(nil))
	ctx := context.Background()
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 {
		t.Fatalf("first poll: %v", res)
	}
	broken, err := state.Open(filepath.Join(t.TempDir(), "broken.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	broken.Close()
	f.p.cfg.Store = splitStore{read: f.db, write: broken}
	st := f.sim.Targets()[0]
	for i := range 25 {
		f.sim.AddInteraction(st, "sent") // a change, so each poll commits
		f.now.Add(60)
		if res := f.p.PollAll(ctx); res[ResultStateError] != 1 {
			t.Fatalf("poll %d: %v, want state_error", i, res)
		}
		if f.p.StateErr() == nil {
			t.Fatalf("poll %d: StateErr nil after a failed commit", i)
		}
	}
	errs := logs.FilterLevelExact(zap.ErrorLevel).All()
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Message)
	}
	if len(errs) != 3 || msgs[0] != "commit state" || msgs[1] != "commit state: still failing" || errs[2].ContextMap()["failures"] != int64(20) {
		t.Fatalf("error lines %q, want the first and one each at 10 and 20 failures", msgs)
	}
	if n := f.obs.count(ResultStateError); n != 25 {
		t.Errorf("state_error results %d, want 25", n)
	}
	f.p.cfg.Store = f.db
	f.now.Add(60)
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 || f.p.StateErr() != nil {
		t.Fatalf("after the disk has room: %v, StateErr %v", res, f.p.StateErr())
	}
	if rec := logs.FilterMessage("state commits succeed again").All(); len(rec) != 1 || rec[0].ContextMap()["failures"] != int64(25) {
		t.Errorf("recovery lines %+v, want one with 25 failures", rec)
	}
}
