package poller

import (
	"context"
	"errors"
	"testing"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
)

// racedStore is a second writer: right after the poller loads a target, it
// commits that target itself, so the poller's commit carries a stale
// revision.
type racedStore struct {
	*state.DB
	err error // the poller's commit error
}

func (s *racedStore) Load(key string) (state.TargetState, state.Revision, error) {
	ts, rev, err := s.DB.Load(key)
	if err == nil {
		h := ts.Health
		h.Outage += 100 // a durable change, so it writes
		_, err = s.DB.Commit(key, rev, state.Next{Health: h}, nil)
	}
	return ts, rev, err
}

func (s *racedStore) Commit(key string, rev state.Revision, next state.Next, msgs []event.Message) (state.Revision, error) {
	nrev, err := s.DB.Commit(key, rev, next, msgs)
	s.err = err
	return nrev, err
}

// TestCommitConflictCommitsNothing: a poll whose target another writer
// committed since it loaded commits nothing (no snapshot, no events: the
// other writer's state wins) and counts as a conflict, not a state error
// (/readyz stays ready: with several instances it is a double poll, not a
// broken store); the next poll starts from what the other wrote and
// derives the events again.
func TestCommitConflictCommitsNothing(t *testing.T) {
	f := newFixture(t, proxysim.Options{Seed: 3, Participants: 1}, nil)
	f.p.SetTargets(f.specs(nil))
	ctx := context.Background()
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 {
		t.Fatalf("first poll: %v", res)
	}
	f.outbox(t)
	st := f.sim.Targets()[0]
	key := f.specs(nil)[0].Target.Key()
	f.sim.AddInteraction(st, "sent")
	f.now.Add(60)
	before, beforeRev, _ := f.db.Load(key)

	raced := &racedStore{DB: f.db}
	f.p.cfg.Store = raced
	if res := f.p.PollAll(ctx); res[ResultConflict] != 1 {
		t.Fatalf("raced poll: %v, want conflict", res)
	}
	if err := f.p.StateErr(); err != nil {
		t.Fatalf("StateErr after a conflict = %v, want nil: another writer winning is not a state failure (ha)", err)
	}
	if !errors.Is(raced.err, state.ErrConflict) {
		t.Fatalf("commit error %v, want ErrConflict", raced.err)
	}
	after, afterRev, _ := f.db.Load(key)
	if afterRev != beforeRev+1 || !after.Snapshot.Equal(before.Snapshot) || after.Health.Outage != before.Health.Outage+100 {
		t.Fatalf("state after the conflict: rev %d→%d, the other writer's health lost or snapshot moved", beforeRev, afterRev)
	}
	if kinds := f.outbox(t); len(kinds) != 0 {
		t.Fatalf("a refused commit queued %v", kinds)
	}

	f.p.cfg.Store = f.db
	f.now.Add(60)
	if res := f.p.PollAll(ctx); res[ResultOK] != 1 {
		t.Fatalf("next poll: %v", res)
	}
	if kinds := f.outbox(t); len(kinds) != 1 || kinds[0] != event.Created {
		t.Fatalf("next poll queued %v, want the created event derived again", kinds)
	}
}
