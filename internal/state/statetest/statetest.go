// Package statetest holds the conformance suite of monitord's per-target
// store contract (package state): every implementation — the bbolt file,
// the in-memory store of `once --dry-run`, a JetStream KeyValue bucket
// later — runs Run against itself and must pass it unchanged. It tests the
// contract only, through the Store interface, so it knows nothing of how
// an implementation keeps its data.
package statetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// Store is the contract: what the poller commits through, what the
// publisher drains through, and Close.
type Store interface {
	Load(key string) (state.TargetState, state.Revision, error)
	Commit(key string, rev state.Revision, next state.Next, events []event.Message) (state.Revision, error)
	Forget(keys ...string) error
	Peek(after event.Position, max int) ([]event.Record, error)
	Delete(ps []event.Position) error
	Close() error
}

// Opener opens a store. Each call of NewStore's result opens the same
// store again; the suite closes a store (or abandons it, for a crash)
// before it opens it again, and closes the last one it opened.
type Opener func() Store

// Run runs the conformance suite. newStore is called once per subtest and
// returns the opener of a new, empty store for that subtest.
func Run(t *testing.T, newStore func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"RoundTrip", roundTrip},
		{"ConflictOnStaleRevision", conflict},
		{"UnchangedCommit", unchanged},
		{"PerTargetOrder", perTargetOrder},
		{"RemovedOnlyAfterAck", removedOnlyAfterAck},
		{"Forget", forget},
		{"CrashBetweenCommitAndAck", crashBeforeAck},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func key(n int) string { return fmt.Sprintf("participant/KS%032x/KC%032x/KP%032x", 0, n, n) }

func msg(id string) event.Message {
	return event.Message{ID: id, Subject: "monitord.created.x", Data: []byte(`{"id":"` + id + `"}`)}
}

func snapshot(sids ...string) diff.Snapshot {
	s := diff.Snapshot{Baselined: true}
	for _, sid := range sids {
		s.Entries = append(s.Entries, diff.Entry{SID: sid, OutboundStatus: "sent", DateUpdated: t0})
	}
	return s
}

func opened(t *testing.T, open Opener) Store {
	t.Helper()
	s := open()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func load(t *testing.T, s Store, k string) (state.TargetState, state.Revision) {
	t.Helper()
	ts, rev, err := s.Load(k)
	if err != nil {
		t.Fatalf("load %s: %v", k, err)
	}
	return ts, rev
}

func commit(t *testing.T, s Store, k string, rev state.Revision, next state.Next, ids ...string) state.Revision {
	t.Helper()
	var msgs []event.Message
	for _, id := range ids {
		msgs = append(msgs, msg(id))
	}
	nrev, err := s.Commit(k, rev, next, msgs)
	if err != nil {
		t.Fatalf("commit %s at %d: %v", k, rev, err)
	}
	return nrev
}

// pending is every pending event, read in pages of two to cross page ends.
func pending(t *testing.T, s Store) []event.Record {
	t.Helper()
	var all []event.Record
	var after event.Position
	for {
		recs, err := s.Peek(after, 2)
		if err != nil {
			t.Fatalf("peek: %v", err)
		}
		all = append(all, recs...)
		if len(recs) < 2 {
			return all
		}
		after = recs[len(recs)-1].Position
	}
}

func idsOf(recs []event.Record, target string) []string {
	var out []string
	for _, r := range recs {
		if target == "" || r.Target == target {
			out = append(out, r.ID)
		}
	}
	return out
}

func roundTrip(t *testing.T, open Opener) {
	s := opened(t, open)
	if ts, rev := load(t, s, key(1)); rev != 0 || ts.Snapshot.Baselined || ts.Snapshot.Len() != 0 {
		t.Fatalf("unknown target: rev %d, state %+v", rev, ts)
	}
	snap := snapshot("KI1", "KI2")
	h := state.Health{LastAttempt: t0, LastSuccess: t0.Add(-time.Minute), FailingSince: t0.Add(-time.Hour),
		ConsecutiveFailures: 3, Failing: true, Outage: 7, LastError: "list interactions: 503"}
	rev := commit(t, s, key(1), 0, state.Next{Snapshot: &snap, Health: h})
	ts, got := load(t, s, key(1))
	if got != rev || rev == 0 {
		t.Fatalf("revision after commit %d, Load says %d", rev, got)
	}
	if !ts.Snapshot.Equal(snap) || ts.Health != h {
		t.Fatalf("round trip:\n got %+v\nwant %+v %+v", ts, snap, h)
	}
	// A health-only commit (nil snapshot) keeps the snapshot and moves the revision.
	h2 := h
	h2.ConsecutiveFailures, h2.LastError = 4, "auth"
	rev2 := commit(t, s, key(1), rev, state.Next{Health: h2}, "e1")
	ts, got = load(t, s, key(1))
	if rev2 == rev || got != rev2 || !ts.Snapshot.Equal(snap) || ts.Health != h2 {
		t.Fatalf("health-only commit: rev %d → %d (Load %d), state %+v", rev, rev2, got, ts)
	}
	// Other targets are untouched.
	if _, rev := load(t, s, key(2)); rev != 0 {
		t.Fatalf("neighbour has revision %d", rev)
	}
}

func conflict(t *testing.T, open Opener) {
	s := opened(t, open)
	snap := snapshot("KI1")
	rev := commit(t, s, key(1), 0, state.Next{Snapshot: &snap, Health: state.Health{LastSuccess: t0}})
	// Two writers loaded rev; the first commits...
	snap2 := snapshot("KI1", "KI2")
	rev2 := commit(t, s, key(1), rev, state.Next{Snapshot: &snap2, Health: state.Health{LastSuccess: t0.Add(time.Minute)}}, "first")
	// ...the second, and a writer that believes the target new, are refused
	// whatever they carry, and write nothing.
	snap3 := snapshot("KI3")
	for _, c := range []struct {
		rev  state.Revision
		next state.Next
	}{
		{rev, state.Next{Snapshot: &snap3, Health: state.Health{LastSuccess: t0.Add(2 * time.Minute)}}},
		{rev, state.Next{Health: state.Health{Failing: true}}},
		{rev, state.Next{Health: state.Health{LastSuccess: t0.Add(time.Minute)}}},
		{0, state.Next{Snapshot: &snap3}},
	} {
		_, err := s.Commit(key(1), c.rev, c.next, []event.Message{msg("second")})
		if !errors.Is(err, state.ErrConflict) {
			t.Fatalf("commit at stale revision %d: err = %v, want ErrConflict", c.rev, err)
		}
	}
	ts, got := load(t, s, key(1))
	if got != rev2 || !ts.Snapshot.Equal(snap2) || !ts.Health.LastSuccess.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after refused commits: rev %d (want %d), state %+v", got, rev2, ts)
	}
	if ids := idsOf(pending(t, s), ""); !slices.Equal(ids, []string{"first"}) {
		t.Fatalf("pending after refused commits: %v", ids)
	}
	// A stale revision of a target never committed is refused too.
	if _, err := s.Commit(key(2), 5, state.Next{}, nil); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("commit of a new target at revision 5: %v", err)
	}
}

// An unchanged poll (no events, nil snapshot, the same health but its
// times) may write nothing (bbolt keeps the times in memory) or write the
// times; either way the revision it returns is the one Load then reports,
// the next commit goes through with it, and Load shows the later times.
func unchanged(t *testing.T, open Opener) {
	s := opened(t, open)
	snap := snapshot("KI1")
	rev := commit(t, s, key(1), 0, state.Next{Snapshot: &snap, Health: state.Health{LastAttempt: t0, LastSuccess: t0}})
	later := t0.Add(time.Minute)
	got := commit(t, s, key(1), rev, state.Next{Health: state.Health{LastAttempt: later, LastSuccess: later}})
	if got < rev {
		t.Fatalf("unchanged commit moved the revision back %d → %d", rev, got)
	}
	ts, lrev := load(t, s, key(1))
	if lrev != got || !ts.Health.LastSuccess.Equal(later) || !ts.Snapshot.Equal(snap) {
		t.Fatalf("after an unchanged commit (revision %d): Load says revision %d, state %+v", got, lrev, ts)
	}
	commit(t, s, key(1), got, state.Next{Health: state.Health{LastSuccess: later, Failing: true}}, "next")
}

func perTargetOrder(t *testing.T, open Opener) {
	s := opened(t, open)
	revs := map[string]state.Revision{}
	want := map[string][]string{}
	// Three targets committing in turn, several events per commit.
	for round := range 4 {
		for n := 1; n <= 3; n++ {
			k := key(n)
			a, b := fmt.Sprintf("t%d-r%d-a", n, round), fmt.Sprintf("t%d-r%d-b", n, round)
			revs[k] = commit(t, s, k, revs[k], state.Next{Health: state.Health{LastSuccess: t0.Add(time.Duration(round) * time.Minute)}}, a, b)
			want[k] = append(want[k], a, b)
		}
	}
	recs := pending(t, s)
	if len(recs) != 24 {
		t.Fatalf("%d pending events, want 24", len(recs))
	}
	for k, w := range want {
		if got := idsOf(recs, k); !slices.Equal(got, w) {
			t.Fatalf("%s: pending in order %v, want %v", k, got, w)
		}
	}
	for _, r := range recs {
		if r.Subject != msg(r.ID).Subject || string(r.Data) != string(msg(r.ID).Data) {
			t.Fatalf("event %s came back as %+v", r.ID, r.Message)
		}
	}
	// Peek after a position reads on from there, whatever the page size.
	for i := range recs {
		rest, err := s.Peek(recs[i].Position, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got, w := idsOf(rest, ""), idsOf(recs[i+1:], ""); !slices.Equal(got, w) {
			t.Fatalf("peek after %+v: %v, want %v", recs[i].Position, got, w)
		}
	}
}

func removedOnlyAfterAck(t *testing.T, open Opener) {
	s := opened(t, open)
	var rev state.Revision
	for i := range 5 {
		rev = commit(t, s, key(1), rev, state.Next{Health: state.Health{Outage: uint64(i)}}, fmt.Sprintf("e%d", i))
	}
	// Reading is not acknowledging: events stay until deleted.
	for range 2 {
		if got := idsOf(pending(t, s), ""); len(got) != 5 {
			t.Fatalf("pending after peeks: %v", got)
		}
	}
	recs := pending(t, s)
	ack := []event.Position{recs[0].Position, recs[1].Position}
	if err := s.Delete(ack); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ack); err != nil { // a repeated acknowledgement is harmless
		t.Fatal(err)
	}
	if got := idsOf(pending(t, s), ""); !slices.Equal(got, []string{"e2", "e3", "e4"}) {
		t.Fatalf("after acknowledging two: %v", got)
	}
	// Events committed after an acknowledgement still come after the rest.
	commit(t, s, key(1), rev, state.Next{Health: state.Health{Outage: 9}}, "e5")
	if got := idsOf(pending(t, s), ""); !slices.Equal(got, []string{"e2", "e3", "e4", "e5"}) {
		t.Fatalf("after another commit: %v", got)
	}
}

func forget(t *testing.T, open Opener) {
	s := opened(t, open)
	snap := snapshot("KI1")
	rev1 := commit(t, s, key(1), 0, state.Next{Snapshot: &snap}, "k1-a")
	commit(t, s, key(2), 0, state.Next{Snapshot: &snap}, "k2-a")
	if err := s.Forget(key(1), "never-existed"); err != nil {
		t.Fatal(err)
	}
	if ts, rev := load(t, s, key(1)); rev != 0 || ts.Snapshot.Baselined {
		t.Fatalf("forgotten target: rev %d, state %+v", rev, ts)
	}
	if ts, rev := load(t, s, key(2)); rev == 0 || !ts.Snapshot.Equal(snap) {
		t.Fatalf("neighbour after forget: rev %d, state %+v", rev, ts)
	}
	// The revision loaded before Forget is stale.
	if _, err := s.Commit(key(1), rev1, state.Next{Snapshot: &snap}, nil); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("commit at the revision before forget: %v", err)
	}
	// Its pending events are still delivered, and a target committed
	// again after Forget starts afresh with its events after them.
	commit(t, s, key(1), 0, state.Next{Snapshot: &snap}, "k1-b")
	if got := idsOf(pending(t, s), key(1)); !slices.Equal(got, []string{"k1-a", "k1-b"}) {
		t.Fatalf("pending of the forgotten and re-committed target: %v", got)
	}
}

func crashBeforeAck(t *testing.T, open Opener) {
	s := open()
	snap := snapshot("KI1", "KI2")
	rev := commit(t, s, key(1), 0, state.Next{Snapshot: &snap, Health: state.Health{LastSuccess: t0}}, "a", "b")
	commit(t, s, key(2), 0, state.Next{Health: state.Health{Failing: true}}, "c")
	recs := pending(t, s)
	if len(recs) != 3 {
		t.Fatalf("pending %v", idsOf(recs, ""))
	}
	// The publisher sent them; the process dies before the acknowledgement.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = opened(t, open)
	again := pending(t, s)
	if got, want := idsOf(again, ""), idsOf(recs, ""); !slices.Equal(got, want) {
		t.Fatalf("pending after reopening: %v, want %v", got, want)
	}
	for i := range again {
		if again[i].Position != recs[i].Position {
			t.Fatalf("event %s moved from %+v to %+v", again[i].ID, recs[i].Position, again[i].Position)
		}
	}
	ts, got := load(t, s, key(1))
	if got != rev || !ts.Snapshot.Equal(snap) {
		t.Fatalf("state after reopening: rev %d (want %d), %+v", got, rev, ts)
	}
}
