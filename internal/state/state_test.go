package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func target(n int) proxy.Target {
	return proxy.Target{
		Source:         proxy.SourceParticipant,
		ServiceSID:     "KS" + strings.Repeat("0", 32),
		SessionSID:     fmt.Sprintf("KC%032x", n),
		ParticipantSID: fmt.Sprintf("KP%032x", n),
	}
}

func ix(n int, out string, updated time.Time) proxy.Interaction {
	return proxy.Interaction{
		SID: fmt.Sprintf("KI%032x", n), Type: "message",
		InboundResourceSID: fmt.Sprintf("SM%032x", 1000+n), InboundResourceStatus: "received",
		OutboundResourceSID: fmt.Sprintf("SM%032x", 2000+n), OutboundResourceStatus: out,
		DateCreated: updated, DateUpdated: updated,
	}
}

// render stands in for notify.Render: the id is what matters here.
func render(evs []event.Event) []event.Message {
	var msgs []event.Message
	for _, e := range evs {
		msgs = append(msgs, event.Message{
			ID:      e.ID,
			Subject: event.Subject(event.DefaultPrefix, e.Kind, e.Target),
			Data:    []byte(fmt.Sprintf(`{"kind":%q,"sid":%q,"status":%q}`, e.Kind, e.InteractionSID, e.Status)),
		})
	}
	return msgs
}

func open(t *testing.T, path string, o Options) *DB {
	t.Helper()
	db, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// txid is the id of the last committed write transaction: unchanged means
// nothing was written.
func txid(t *testing.T, db *DB) int {
	t.Helper()
	var id int
	if err := db.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// poll is one successful poll the way the poller does it: load, diff,
// render, commit.
func poll(t *testing.T, db *DB, tg proxy.Target, listing []proxy.Interaction, now time.Time) []event.Message {
	t.Helper()
	ts, rev, err := db.Load(tg.Key())
	if err != nil {
		t.Fatal(err)
	}
	changes, next := diff.Diff(ts.Snapshot, listing, now, diff.DefaultRules())
	evs := event.FromChanges(tg, now, changes)
	msgs := render(evs)
	h := Health{LastAttempt: now, LastSuccess: now}
	if _, err := db.Commit(tg.Key(), rev, Next{Snapshot: SnapshotIfChanged(ts.Snapshot, next), Health: h}, msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func ids(v any) []string {
	out := []string{}
	switch v := v.(type) {
	case []event.Message:
		for _, m := range v {
			out = append(out, m.ID)
		}
	case []event.Record:
		for _, r := range v {
			out = append(out, r.ID)
		}
	}
	return out
}

func TestCommitLoadRoundTrip(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tg := target(1)
	if _, rev, err := db.Load(tg.Key()); err != nil || rev != 0 {
		t.Fatalf("Load of unknown target: rev=%v err=%v", rev, err)
	}
	_, snap := diff.Diff(diff.Snapshot{}, []proxy.Interaction{ix(1, "sent", t0), ix(2, "queued", t0)}, t0, diff.DefaultRules())
	ts := TargetState{Snapshot: snap, Health: Health{
		LastAttempt: t0, LastSuccess: t0.Add(-time.Minute), FailingSince: t0.Add(-time.Hour),
		ConsecutiveFailures: 3, Failing: true, Outage: 7, LastError: "list interactions: 503",
	}}
	if _, err := db.Commit(tg.Key(), 0, Next{Snapshot: &ts.Snapshot, Health: ts.Health}, nil); err != nil {
		t.Fatal(err)
	}
	got, rev, err := db.Load(tg.Key())
	if err != nil || rev != 1 {
		t.Fatalf("rev=%v err=%v", rev, err)
	}
	if !got.Snapshot.Equal(ts.Snapshot) || got.Health != ts.Health {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ts)
	}
}

func TestUnchangedListingWritesNothing(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tg := target(1)
	listing := []proxy.Interaction{ix(1, "delivered", t0), ix(2, "sent", t0)}
	poll(t, db, tg, listing, t0)
	before := txid(t, db)
	for i := 1; i <= 3; i++ {
		if msgs := poll(t, db, tg, listing, t0.Add(time.Duration(i)*time.Minute)); len(msgs) != 0 {
			t.Fatalf("identical listing %d produced %v", i, ids(msgs))
		}
	}
	if after := txid(t, db); after != before {
		t.Fatalf("unchanged polls wrote %d transactions", after-before)
	}
	// The held-back poll times are still what Load reports...
	ts, _, _ := db.Load(tg.Key())
	if want := t0.Add(3 * time.Minute); !ts.Health.LastSuccess.Equal(want) {
		t.Fatalf("LastSuccess %v, want %v", ts.Health.LastSuccess, want)
	}
	// ...and a change writes once.
	poll(t, db, tg, []proxy.Interaction{ix(1, "delivered", t0), ix(2, "delivered", t0)}, t0.Add(4*time.Minute))
	if after := txid(t, db); after != before+1 {
		t.Fatalf("a changed poll wrote %d transactions", after-before)
	}
}

func TestPollTimesSurviveClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := target(1)
	poll(t, db, tg, nil, t0)
	poll(t, db, tg, nil, t0.Add(time.Minute))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, path, Options{})
	ts, _, _ := db.Load(tg.Key())
	if !ts.Health.LastAttempt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("LastAttempt after reopen %v", ts.Health.LastAttempt)
	}
}

func TestHealthOnlyCommitLeavesSnapshot(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tg := target(1)
	poll(t, db, tg, []proxy.Interaction{ix(1, "sent", t0)}, t0)
	before, rev, _ := db.Load(tg.Key())
	h := Health{LastAttempt: t0.Add(time.Minute), LastSuccess: t0, FailingSince: t0.Add(time.Minute), ConsecutiveFailures: 1, Failing: true, Outage: 1, LastError: "auth"}
	msg := event.Message{ID: event.TargetID(tg, event.TargetError, 1), Subject: "s", Data: []byte("{}")}
	if _, err := db.Commit(tg.Key(), rev, Next{Health: h}, []event.Message{msg}); err != nil {
		t.Fatal(err)
	}
	after, _, _ := db.Load(tg.Key())
	if !after.Snapshot.Equal(before.Snapshot) || after.Health != h {
		t.Fatalf("after a health-only commit: %+v", after)
	}
	recs, err := db.Peek(event.Position{}, 0)
	if err != nil || len(recs) != 1 || recs[0].ID != msg.ID {
		t.Fatalf("outbox: %v %v", ids(recs), err)
	}
	// A health-only target (never succeeded) is found and listed.
	if _, err := db.Commit(target(2).Key(), 0, Next{Health: h}, nil); err != nil {
		t.Fatal(err)
	}
	if ts, rev, err := db.Load(target(2).Key()); err != nil || rev == 0 || ts.Snapshot.Baselined {
		t.Fatalf("health-only target: %+v %v %v", ts, rev, err)
	}
}

func TestOutboxOrderPeekDelete(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	var want []event.Message
	for i := 0; i < 25; i++ {
		m := event.Message{ID: fmt.Sprintf("id-%02d", i), Subject: "monitord.failed.x", Data: bytes.Repeat([]byte{'x'}, i)}
		want = append(want, m)
		k := target(i % 3).Key()
		_, rev, _ := db.Load(k)
		if _, err := db.Commit(k, rev, Next{}, []event.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	n, size, oldest, err := db.OutboxStats()
	if err != nil || n != 25 || size <= 0 || oldest.IsZero() {
		t.Fatalf("stats %d %d %v %v", n, size, oldest, err)
	}
	first, _ := db.Peek(event.Position{}, 10)
	rest, _ := db.Peek(first[len(first)-1].Position, 100)
	all := append(first, rest...)
	// Per target, in commit order; targets one after another by key.
	var byTarget []event.Message
	for tn := range 3 {
		for i := tn; i < 25; i += 3 {
			byTarget = append(byTarget, want[i])
		}
	}
	if d := cmp.Diff(ids(byTarget), ids(all)); d != "" {
		t.Fatalf("peek order (-want +got):\n%s", d)
	}
	for i, r := range all {
		if i > 0 && r.Target == all[i-1].Target && r.Seq <= all[i-1].Seq {
			t.Fatalf("seq not increasing at %d", i)
		}
		if !bytes.Equal(r.Data, byTarget[i].Data) || r.Subject != byTarget[i].Subject {
			t.Fatalf("record %d differs", i)
		}
	}
	var ps []event.Position
	for _, r := range first {
		ps = append(ps, r.Position)
	}
	if err := db.Delete(ps); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(ps); err != nil { // repeated after a reconnect: harmless
		t.Fatal(err)
	}
	left, _ := db.Peek(event.Position{}, 0)
	if d := cmp.Diff(ids(byTarget[10:]), ids(left)); d != "" {
		t.Fatalf("after delete (-want +got):\n%s", d)
	}
	n, _, _, _ = db.OutboxStats()
	if n != 15 {
		t.Fatalf("depth %d after delete", n)
	}
	ps = ps[:0]
	for _, r := range left {
		ps = append(ps, r.Position)
	}
	_ = db.Delete(ps)
	n, size, oldest, _ = db.OutboxStats()
	if n != 0 || size != 0 || !oldest.IsZero() {
		t.Fatalf("empty outbox stats %d %d %v", n, size, oldest)
	}
}

func TestOutboxFullCommitsNothing(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{MaxOutboxEvents: 3})
	tg := target(1)
	poll(t, db, tg, nil, t0)
	msgs := poll(t, db, tg, []proxy.Interaction{ix(1, "sent", t0), ix(2, "sent", t0)}, t0) // 2 created
	if len(msgs) != 2 {
		t.Fatalf("%d events", len(msgs))
	}
	before, _, _ := db.Load(tg.Key())
	beforeTx := txid(t, db)
	// Two more events would make 4 > 3: nothing may be committed.
	ts, rev, _ := db.Load(tg.Key())
	changes, next := diff.Diff(ts.Snapshot, []proxy.Interaction{ix(1, "failed", t0), ix(2, "sent", t0)}, t0.Add(time.Minute), diff.DefaultRules())
	evs := event.FromChanges(tg, t0.Add(time.Minute), changes)
	_, err := db.Commit(tg.Key(), rev, Next{Snapshot: &next, Health: Health{LastSuccess: t0.Add(time.Minute)}}, render(evs))
	if !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("err = %v, want ErrOutboxFull", err)
	}
	after, _, _ := db.Load(tg.Key())
	if !after.Snapshot.Equal(before.Snapshot) || txid(t, db) != beforeTx {
		t.Fatal("a refused commit changed state")
	}
	// Once the publisher drains, the same poll goes through with the same events.
	recs, _ := db.Peek(event.Position{}, 0)
	if err := db.Delete([]event.Position{recs[0].Position, recs[1].Position}); err != nil {
		t.Fatal(err)
	}
	if got := poll(t, db, tg, []proxy.Interaction{ix(1, "failed", t0), ix(2, "sent", t0)}, t0.Add(2*time.Minute)); !cmp.Equal(ids(got), ids(render(evs))) {
		t.Fatalf("retried poll: %v, want %v", ids(got), ids(render(evs)))
	}
}

func TestOutboxFullBytes(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{MaxOutboxBytes: 1000})
	big := event.Message{ID: "a", Subject: "s", Data: bytes.Repeat([]byte{'x'}, 2000)}
	// Into an empty outbox even an oversized commit is accepted...
	rev, err := db.Commit("k", 0, Next{}, []event.Message{big})
	if err != nil {
		t.Fatal(err)
	}
	// ...but nothing more until it drains.
	if _, err := db.Commit("k", rev, Next{}, []event.Message{{ID: "b"}}); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("err = %v", err)
	}
}

func TestKeysForget(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	for i := 1; i <= 3; i++ {
		poll(t, db, target(i), []proxy.Interaction{ix(i, "sent", t0)}, t0)
	}
	if _, err := db.Commit(target(4).Key(), 0, Next{Health: Health{Failing: true}}, nil); err != nil {
		t.Fatal(err)
	}
	keys, err := db.Keys()
	want := []string{target(1).Key(), target(2).Key(), target(3).Key(), target(4).Key()}
	if err != nil || !cmp.Equal(keys, want) {
		t.Fatalf("Keys = %v %v", keys, err)
	}
	if err := db.Forget(target(2).Key(), target(4).Key(), "never-existed"); err != nil {
		t.Fatal(err)
	}
	keys, _ = db.Keys()
	if !cmp.Equal(keys, []string{target(1).Key(), target(3).Key()}) {
		t.Fatalf("Keys after Forget = %v", keys)
	}
	if _, rev, _ := db.Load(target(2).Key()); rev != 0 {
		t.Fatal("forgotten target still found")
	}
	// Untouched neighbours.
	if ts, _, _ := db.Load(target(3).Key()); ts.Snapshot.Len() != 1 {
		t.Fatal("neighbour lost its snapshot")
	}
}

func TestEmptyKeyRefused(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	for _, k := range []string{"", "a\x00b", "a\x01"} {
		if _, err := db.Commit(k, 0, Next{}, nil); err == nil {
			t.Fatalf("key %q accepted", k)
		}
	}
}

// Concurrent commits share transactions (bbolt's Batch); one refused for a
// full outbox must not take the others down with it, and the counters
// must stay exact.
func TestConcurrentCommits(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{MaxOutboxEvents: 150})
	const workers, each = 16, 20
	type result struct {
		w   int
		key string
		ok  []int
	}
	results := make(chan result, workers)
	for w := 0; w < workers; w++ {
		go func() {
			tg := target(w)
			res := result{w: w, key: tg.Key()}
			var rev Revision
			for i := 0; i < each; i++ {
				snap := diff.Snapshot{Baselined: true, Entries: []diff.Entry{{SID: fmt.Sprintf("KI%032x", i)}}}
				msg := event.Message{ID: fmt.Sprintf("%d-%d", w, i), Subject: "s", Data: []byte("d")}
				nrev, err := db.Commit(tg.Key(), rev, Next{Snapshot: &snap}, []event.Message{msg})
				switch {
				case err == nil:
					rev = nrev
					res.ok = append(res.ok, i)
				case !errors.Is(err, ErrOutboxFull):
					t.Errorf("commit: %v", err)
				}
			}
			results <- res
		}()
	}
	var okIDs []string
	for w := 0; w < workers; w++ {
		res := <-results
		ts, _, err := db.Load(res.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.ok) > 0 {
			// The stored snapshot is the last accepted commit's.
			last := res.ok[len(res.ok)-1]
			if _, ok := ts.Snapshot.Find(fmt.Sprintf("KI%032x", last)); !ok || ts.Snapshot.Len() != 1 {
				t.Fatalf("%s: snapshot %+v, last accepted %d", res.key, ts.Snapshot, last)
			}
		}
		for _, i := range res.ok {
			okIDs = append(okIDs, fmt.Sprintf("%d-%d", res.w, i))
		}
	}
	if len(okIDs) != 150 {
		t.Fatalf("%d commits accepted, want exactly the bound 150", len(okIDs))
	}
	recs, _ := db.Peek(event.Position{}, 0)
	got := ids(recs)
	slices.Sort(got)
	slices.Sort(okIDs)
	if d := cmp.Diff(okIDs, got); d != "" {
		t.Fatalf("outbox holds other than the accepted events (-accepted +outbox):\n%s", d)
	}
	if n, _, _, _ := db.OutboxStats(); n != 150 {
		t.Fatalf("counter %d", n)
	}
}

// The baseline is recorded once: after a restart the target is not
// baselined again (which would silence changes and re-page recent failures).
func TestBaselineAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := target(1)
	first := poll(t, db, tg, []proxy.Interaction{ix(1, "delivered", t0.Add(-time.Hour)), ix(2, "failed", t0.Add(-time.Minute)), ix(3, "failed", t0.Add(-time.Hour))}, t0)
	if d := cmp.Diff([]string{event.InteractionID(ix(2, "", t0).SID, event.Failed, event.Outbound, "failed")}, ids(first)); d != "" {
		t.Fatalf("baseline events (-want +got):\n%s", d)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, path, Options{})
	ts, rev, err := db.Load(tg.Key())
	if err != nil || rev == 0 || !ts.Snapshot.Baselined {
		t.Fatalf("after restart: rev=%v baselined=%v err=%v", rev, ts.Snapshot.Baselined, err)
	}
	// The same listing (and a fresh failure) after the restart: only the change.
	again := poll(t, db, tg, []proxy.Interaction{ix(1, "undelivered", t0), ix(2, "failed", t0.Add(-time.Minute)), ix(3, "failed", t0.Add(-time.Hour))}, t0.Add(time.Minute))
	want := []string{
		event.InteractionID(ix(1, "", t0).SID, event.StatusChanged, event.Outbound, "undelivered"),
		event.InteractionID(ix(1, "", t0).SID, event.Failed, event.Outbound, "undelivered"),
	}
	if d := cmp.Diff(want, ids(again)); d != "" {
		t.Fatalf("after restart (-want +got):\n%s", d)
	}
}

func TestDamagedValueNamesTarget(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tg := target(1)
	poll(t, db, tg, []proxy.Interaction{ix(1, "sent", t0)}, t0)
	err := db.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).Put([]byte(tg.Key()), []byte{9, 9, 9})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = db.Load(tg.Key())
	if err == nil || !strings.Contains(err.Error(), tg.Key()) || !errors.Is(err, diff.ErrEncoding) {
		t.Fatalf("err = %v", err)
	}
}

// SnapshotIfChanged is what lets an unchanged poll skip encoding: nil
// exactly when the diff's next snapshot holds what the loaded one held.
func TestSnapshotIfChanged(t *testing.T) {
	rules := diff.DefaultRules()
	listing := []proxy.Interaction{ix(1, "sent", t0), ix(2, "delivered", t0)}
	_, base := diff.Diff(diff.Snapshot{}, listing, t0, rules)
	enc, _ := base.MarshalBinary()
	var loaded diff.Snapshot
	if err := loaded.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	_, same := diff.Diff(loaded, listing, t0.Add(time.Minute), rules)
	_, moved := diff.Diff(loaded, []proxy.Interaction{ix(1, "delivered", t0), ix(2, "delivered", t0)}, t0.Add(time.Minute), rules)
	_, grown := diff.Diff(loaded, append(listing, ix(3, "sent", t0)), t0.Add(time.Minute), rules)
	_, firstEmpty := diff.Diff(diff.Snapshot{}, nil, t0, rules)
	copied := diff.Snapshot{Baselined: true, Entries: slices.Clone(loaded.Entries)}
	for _, c := range []struct {
		name       string
		prev, next diff.Snapshot
		changed    bool
	}{
		{"unchanged listing", loaded, same, false},
		{"equal entries in another array", loaded, copied, false},
		{"a status moved", loaded, moved, true},
		{"an interaction more", loaded, grown, true},
		{"first listing, empty: baselined now", diff.Snapshot{}, firstEmpty, true},
		{"never baselined, nothing listed", diff.Snapshot{}, diff.Snapshot{}, false},
	} {
		got := SnapshotIfChanged(c.prev, c.next)
		if (got != nil) != c.changed {
			t.Errorf("%s: changed = %v, want %v", c.name, got != nil, c.changed)
		}
		if got != nil && !got.Equal(c.next) {
			t.Errorf("%s: returned another snapshot", c.name)
		}
	}
}

// Concurrent commits of one target from the same revision, sharing bbolt
// batches: exactly one wins, the others fail with ErrConflict and leave
// no event behind (Batch re-runs a failed call alone, and it fails alone).
func TestConcurrentCommitsOneWins(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	key := target(1).Key()
	rev, err := db.Commit(key, 0, Next{Health: Health{LastSuccess: t0}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			snap := diff.Snapshot{Baselined: true, Entries: []diff.Entry{{SID: fmt.Sprintf("KI%032x", w)}}}
			_, err := db.Commit(key, rev, Next{Snapshot: &snap}, []event.Message{{ID: fmt.Sprintf("w%d", w), Subject: "s"}})
			errs <- err
		}()
	}
	wins := 0
	for range writers {
		switch err := <-errs; {
		case err == nil:
			wins++
		case !errors.Is(err, ErrConflict):
			t.Fatalf("err = %v, want ErrConflict", err)
		}
	}
	recs, _ := db.Peek(event.Position{}, 0)
	ts, got, _ := db.Load(key)
	if wins != 1 || got != rev+1 || len(recs) != 1 {
		t.Fatalf("%d commits won, revision %d, pending %v", wins, got, ids(recs))
	}
	if want := "KI" + fmt.Sprintf("%032x", mustAtoi(t, recs[0].ID[1:])); ts.Snapshot.Entries[0].SID != want {
		t.Fatalf("stored snapshot %s is not the winner's (%s)", ts.Snapshot.Entries[0].SID, want)
	}
	if n, _, _, _ := db.OutboxStats(); n != 1 {
		t.Fatalf("counter %d", n)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// bbolt's unchanged commit writes nothing, so it keeps the revision (the
// contract allows a store to write the times instead).
func TestUnchangedCommitKeepsRevision(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tg := target(1)
	listing := []proxy.Interaction{ix(1, "delivered", t0)}
	poll(t, db, tg, listing, t0)
	_, rev, _ := db.Load(tg.Key())
	poll(t, db, tg, listing, t0.Add(time.Minute))
	if _, again, _ := db.Load(tg.Key()); again != rev {
		t.Fatalf("revision %d → %d after an unchanged poll", rev, again)
	}
}
