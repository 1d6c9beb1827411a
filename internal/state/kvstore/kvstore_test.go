package kvstore_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/state/statetest"
)

// TestStoreConformance holds the KV store to the contract, unchanged,
// against a real server: every open is a new connection and a new Store
// on the subtest's bucket, so "reopening" shares nothing in memory.
func TestStoreConformance(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	statetest.Run(t, func(t *testing.T) statetest.Opener {
		bucket := bucketName()
		return func() statetest.Store { return open(t, connect(t, srv), bucket) }
	})
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const tkey = "participant/KS00000000000000000000000000000001/KC00000000000000000000000000000002/KP00000000000000000000000000000003"

func msg(id string) event.Message {
	return event.Message{ID: id, Subject: "monitord.failed.x", Data: []byte(`{"id":"` + id + `"}`)}
}

func snap(sids ...string) *diff.Snapshot {
	s := diff.Snapshot{Baselined: true}
	for _, sid := range sids {
		s.Entries = append(s.Entries, diff.Entry{SID: sid, OutboundStatus: "sent", DateUpdated: t0})
	}
	return &s
}

func ids(recs []event.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// Two instances, two connections, one bucket: both load the same
// revision, both poll; one commit wins, the other is refused with
// ErrConflict and its events are nowhere.
func TestConflictBetweenTwoConnections(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	bucket := bucketName()
	a, b := open(t, connect(t, srv), bucket), open(t, connect(t, srv), bucket)
	rev, err := a.Commit(tkey, 0, state.Next{Snapshot: snap("KI1"), Health: state.Health{LastSuccess: t0}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, revA, err := a.Load(tkey)
	if err != nil {
		t.Fatal(err)
	}
	_, revB, err := b.Load(tkey)
	if err != nil {
		t.Fatal(err)
	}
	if revA != rev || revB != rev {
		t.Fatalf("revisions: committed %d, a loads %d, b loads %d", rev, revA, revB)
	}
	if _, err := a.Commit(tkey, revA, state.Next{Snapshot: snap("KI1", "KI2")}, []event.Message{msg("from-a")}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Commit(tkey, revB, state.Next{Snapshot: snap("KI1", "KI3")}, []event.Message{msg("from-b")})
	if !errors.Is(err, state.ErrConflict) {
		t.Fatalf("second commit at the same revision: %v, want ErrConflict", err)
	}
	// Both connections see the winner's state and only its events.
	for name, s := range map[string]*kvstore.Store{"a": a, "b": b} {
		ts, _, err := s.Load(tkey)
		if err != nil {
			t.Fatal(err)
		}
		if !ts.Snapshot.Equal(*snap("KI1", "KI2")) {
			t.Fatalf("%s loads %+v", name, ts.Snapshot)
		}
		recs, err := s.Peek(event.Position{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(recs); !slices.Equal(got, []string{"from-a"}) {
			t.Fatalf("%s: pending %v", name, got)
		}
	}
}

// The publisher's delete rewrites the key but moves no revision: a poll
// that loaded before it, on another connection, still commits.
func TestDeleteOnAnotherConnectionKeepsRevision(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	bucket := bucketName()
	poller, publisher := open(t, connect(t, srv), bucket), open(t, connect(t, srv), bucket)
	rev, err := poller.Commit(tkey, 0, state.Next{Snapshot: snap("KI1")}, []event.Message{msg("e1"), msg("e2")})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := publisher.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := publisher.Delete([]event.Position{recs[0].Position}); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := poller.Load(tkey); got != rev {
		t.Fatalf("revision after a delete: %d, want %d", got, rev)
	}
	if _, err := poller.Commit(tkey, rev, state.Next{Snapshot: snap("KI1", "KI2")}, []event.Message{msg("e3")}); err != nil {
		t.Fatalf("commit after a delete: %v", err)
	}
	recs, err = publisher.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); !slices.Equal(got, []string{"e2", "e3"}) {
		t.Fatalf("pending %v", got)
	}
}

// Events pending when the server stops are there when it comes back on
// its store directory, in order, with the state they were committed with.
func TestServerRestartKeepsPendingEvents(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	bucket := bucketName()
	st := open(t, connect(t, srv), bucket)
	rev, err := st.Commit(tkey, 0, state.Next{Snapshot: snap("KI1", "KI2"), Health: state.Health{LastSuccess: t0}},
		[]event.Message{msg("a"), msg("b"), msg("c")})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()

	srv = startServer(t, dir, -1)
	st = open(t, connect(t, srv), bucket)
	recs, err := st.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("pending after restart: %v", got)
	}
	ts, got, err := st.Load(tkey)
	if err != nil {
		t.Fatal(err)
	}
	if got != rev || !ts.Snapshot.Equal(*snap("KI1", "KI2")) || !ts.Health.LastSuccess.Equal(t0) {
		t.Fatalf("state after restart: revision %d (want %d), %+v", got, rev, ts)
	}
	n, _, oldest, err := st.OutboxStats()
	if err != nil || n != 3 || oldest.IsZero() {
		t.Fatalf("outbox stats after restart: %d events, oldest %v, err %v", n, oldest, err)
	}
	// The revision loaded before the restart still commits, after the
	// pending events.
	if _, err := st.Commit(tkey, rev, state.Next{Snapshot: snap("KI1")}, []event.Message{msg("d")}); err != nil {
		t.Fatalf("commit after restart: %v", err)
	}
	recs, err = st.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("pending after a commit after restart: %v", got)
	}
}

// The publisher's view: counts and age over the targets with pending
// events, empty again once everything is deleted, markers included.
func TestOutboxStatsAndKeys(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	js := connect(t, srv)
	bucket := bucketName()
	st := open(t, js, bucket)
	keys := []string{tkey, "session/KS1/KC2/_", "odd key.with dots+plus"}
	for i, k := range keys {
		if _, err := st.Commit(k, 0, state.Next{Snapshot: snap("KI1")}, []event.Message{msg(k + "-1"), msg(k + "-2")}); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	got, err := st.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values(keys)); !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
	n, size, oldest, err := st.OutboxStats()
	if err != nil || n != 6 || size == 0 || oldest.IsZero() {
		t.Fatalf("stats: %d events, %d bytes, oldest %v, err %v", n, size, oldest, err)
	}
	recs, err := st.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ps []event.Position
	for _, r := range recs {
		ps = append(ps, r.Position)
	}
	if err := st.Delete(ps); err != nil {
		t.Fatal(err)
	}
	if n, size, oldest, err := st.OutboxStats(); err != nil || n != 0 || size != 0 || !oldest.IsZero() {
		t.Fatalf("stats after delete: %d events, %d bytes, oldest %v, err %v", n, size, oldest, err)
	}
	// No marker is left behind: the publisher's listing is empty.
	kv, err := js.KeyValue(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	kl, err := kv.ListKeysFiltered(t.Context(), "p.>")
	if err != nil {
		t.Fatal(err)
	}
	var markers []string
	for k := range kl.Keys() {
		markers = append(markers, k)
	}
	if len(markers) != 0 {
		t.Fatalf("markers left after every event was deleted: %q", markers)
	}
	// Target keys outside KV's alphabet are stored under an encoded name.
	raw, err := kv.ListKeysFiltered(t.Context(), "t.>")
	if err != nil {
		t.Fatal(err)
	}
	for k := range raw.Keys() {
		if strings.ContainsAny(k, " +") {
			t.Fatalf("KV key %q holds a byte KV keys do not allow", k)
		}
	}
}

// A forgotten target's events stay until deleted; then its key goes.
func TestForgetThenDeleteRemovesTheKey(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	js := connect(t, srv)
	bucket := bucketName()
	st := open(t, js, bucket)
	if _, err := st.Commit(tkey, 0, state.Next{Snapshot: snap("KI1")}, []event.Message{msg("a")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Forget(tkey); err != nil {
		t.Fatal(err)
	}
	if keys, err := st.Keys(); err != nil || len(keys) != 0 {
		t.Fatalf("keys after forget: %q, %v", keys, err)
	}
	recs, err := st.Peek(event.Position{}, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("pending after forget: %v, %v", ids(recs), err)
	}
	if err := st.Delete([]event.Position{recs[0].Position}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(t.Context(), "t."+tkey); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("record of a forgotten target after its last event was deleted: %v", err)
	}
}

// A record over MaxRecord is refused with an error naming the target, the
// size and the limit, and writes nothing.
func TestOversizeCommitNamesSizeAndLimit(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	st, err := kvstore.Open(t.Context(), connect(t, srv), kvstore.Config{Bucket: bucketName(), Replicas: 1, MaxRecord: 4096})
	if err != nil {
		t.Fatal(err)
	}
	big := event.Message{ID: "big", Subject: "monitord.failed.x", Data: make([]byte, 5000)}
	_, err = st.Commit(tkey, 0, state.Next{Snapshot: snap("KI1")}, []event.Message{big})
	if err == nil || !strings.Contains(err.Error(), tkey) || !strings.Contains(err.Error(), "over the limit of 4096 bytes") {
		t.Fatalf("oversize commit: %v", err)
	}
	if _, rev, err := st.Load(tkey); err != nil || rev != 0 {
		t.Fatalf("after a refused commit: revision %d, %v", rev, err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	js := connect(t, srv)
	_, err := kvstore.Open(t.Context(), js, kvstore.Config{Replicas: 7})
	if err == nil || !strings.Contains(err.Error(), "replicas 7") {
		t.Fatalf("open with 7 replicas: %v", err)
	}
	// The default of 3 replicas needs a cluster: a single server says so,
	// and the error names the bucket.
	_, err = kvstore.Open(t.Context(), js, kvstore.Config{})
	if err == nil || !strings.Contains(err.Error(), kvstore.DefaultBucket) || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("open with 3 replicas on one server: %v", err)
	}
}
