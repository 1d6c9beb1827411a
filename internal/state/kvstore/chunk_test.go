package kvstore

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

func bigSnapshot(n int, out string) *diff.Snapshot {
	s := diff.Snapshot{Baselined: true}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range n {
		s.Entries = append(s.Entries, diff.Entry{SID: fmt.Sprintf("KI%032x", i), OutboundStatus: "delivered",
			OutboundResourceSID: fmt.Sprintf("SM%032x", i), DateCreated: at, DateUpdated: at})
	}
	s.Entries[0].OutboundStatus = out
	return &s
}

// keysUnder lists the bucket's live keys under prefix, and the number of
// messages its stream holds under it (delete markers included).
func keysUnder(t *testing.T, st *Store, prefix string) (keys []string, msgs uint64) {
	t.Helper()
	kl, err := st.kv.ListKeysFiltered(t.Context(), prefix+">")
	if err != nil {
		t.Fatal(err)
	}
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	info, err := st.stream.Info(t.Context(), jetstream.WithSubjectFilter(st.subjectPrefix+prefix+">"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range info.State.Subjects {
		msgs += n
	}
	slices.Sort(keys)
	return keys, msgs
}

// A target larger than one value (a server with an 8 KiB max payload, a
// 600-interaction snapshot of about 33 KB) is stored in chunks: it loads
// back whole, a commit over it replaces its chunks and purges the old ones
// without a trace, and a commit that loses the compare-and-set leaves none
// of its own.
func TestChunkedTarget(t *testing.T) {
	srv := startServerOpts(t, &server.Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: 8 << 10})
	a, err := Open(t.Context(), connect(t, srv), Config{Bucket: "chunks", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(t.Context(), connect(t, srv), Config{Bucket: "chunks", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	const key = "participant/KS1/KC2/KP3"
	s1, s2, s3 := bigSnapshot(600, "delivered"), bigSnapshot(600, "failed"), bigSnapshot(600, "undelivered")
	if enc, _ := s1.MarshalBinary(); len(enc) < 3*a.MaxValue() {
		t.Fatalf("snapshot of %d bytes does not span 3 values of %d", len(enc), a.MaxValue())
	}
	rev, err := a.Commit(key, 0, state.Next{Snapshot: s1}, []event.Message{{ID: "e1", Subject: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := keysUnder(t, a, chunkPrefix)
	if len(chunks) < 3 {
		t.Fatalf("chunk keys %q, want at least 3", chunks)
	}
	ts, got, err := b.Load(key)
	if err != nil || got != rev || !ts.Snapshot.Equal(*s1) {
		t.Fatalf("load of a chunked target on another connection: revision %d (want %d), %d entries, %v", got, rev, ts.Snapshot.Len(), err)
	}
	// Both load rev; a wins, b loses and leaves nothing behind.
	rev2, err := a.Commit(key, rev, state.Next{Snapshot: s2}, []event.Message{{ID: "e2", Subject: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(key, rev, state.Next{Snapshot: s3}, []event.Message{{ID: "lost", Subject: "x"}}); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("commit at a stale revision: %v", err)
	}
	// A writer that passed the revision check but loses the
	// compare-and-set after writing its chunks (the race Commit's own
	// check cannot show) purges them.
	lost := (&record{live: true, snapshot: func() []byte { v, _ := s3.MarshalBinary(); return v }()}).appendTo(nil)
	if _, ok, err := b.write(t.Context(), key, lost, stored{rev: uint64(rev), found: true}); ok || err != nil {
		t.Fatalf("write at a stale KV revision: ok %v, %v", ok, err)
	}
	after, msgs := keysUnder(t, a, chunkPrefix)
	if len(after) != len(chunks) || uint64(len(after)) != msgs || slices.Equal(after, chunks) {
		t.Fatalf("chunks after a replacing and a lost commit: %d keys, %d messages (%q); before %q", len(after), msgs, after, chunks)
	}
	ts, got, err = b.Load(key)
	if err != nil || got != rev2 || !ts.Snapshot.Equal(*s2) {
		t.Fatalf("load after the replacement: revision %d (want %d), %v", got, rev2, err)
	}
	recs, err := b.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var ps []event.Position
	for _, r := range recs {
		ids = append(ids, r.ID)
		ps = append(ps, r.Position)
	}
	if !slices.Equal(ids, []string{"e1", "e2"}) {
		t.Fatalf("pending %v", ids)
	}
	// Forget, then drain: the key and every chunk go.
	if err := a.Forget(key); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ps); err != nil {
		t.Fatal(err)
	}
	if left, msgs := keysUnder(t, a, chunkPrefix); len(left) != 0 || msgs != 0 {
		t.Fatalf("chunks left after forget and drain: %q (%d messages)", left, msgs)
	}
	if _, err := a.kv.Get(t.Context(), recordPrefix+key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("record after forget and drain: %v", err)
	}
}
