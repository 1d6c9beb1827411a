package kvstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
)

// The KV store against the bbolt file, side by side in one run: one
// 200-interaction target, the poller's load and commit and the
// publisher's peek and delete. docs/performance.md ("JetStream KV store")
// has the figures and the command.

type benchStore interface {
	Load(key string) (state.TargetState, state.Revision, error)
	Commit(key string, rev state.Revision, next state.Next, events []event.Message) (state.Revision, error)
	Peek(after event.Position, max int) ([]event.Record, error)
	Delete(ps []event.Position) error
}

func benchSnapshot(n int, out string) *diff.Snapshot {
	s := diff.Snapshot{Baselined: true}
	for i := range n {
		s.Entries = append(s.Entries, diff.Entry{
			SID: fmt.Sprintf("KI%032x", i), Type: "message",
			InboundResourceSID: fmt.Sprintf("SM%032x", 2*i), InboundStatus: "received",
			OutboundResourceSID: fmt.Sprintf("SM%032x", 2*i+1), OutboundStatus: "delivered",
			DateCreated: t0, DateUpdated: t0,
		})
	}
	s.Entries[0].OutboundStatus = out
	return &s
}

func benchStores(b *testing.B) map[string]benchStore {
	db, err := state.Open(filepath.Join(b.TempDir(), "bench.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	srv := startServer(b, b.TempDir(), -1)
	syncSrv := kvstore.StartSyncServer(b, b.TempDir())
	// kv-r3: what ha.enabled runs on, a 3-node cluster and 3 replicas
	// (each write waits for a quorum), all nodes in this process.
	cl := natstest.StartCluster(b, 3)
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r3, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: bucketName(), Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	return map[string]benchStore{
		"bbolt":   db,
		"kv":      open(b, connect(b, srv), bucketName()),
		"kv-sync": open(b, connect(b, syncSrv), bucketName()),
		"kv-r3":   r3,
	}
}

func BenchmarkStore200(b *testing.B) {
	stores := benchStores(b)
	snaps := [2]*diff.Snapshot{benchSnapshot(200, "delivered"), benchSnapshot(200, "failed")}
	names := []string{"bbolt", "kv", "kv-sync", "kv-r3"}
	for _, name := range names {
		if _, err := stores[name].Commit(tkey, 0, state.Next{Snapshot: snaps[0], Health: state.Health{LastSuccess: t0}}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range names {
		st := stores[name]
		// Load: what every poll does first.
		b.Run("Load/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ts, _, err := st.Load(tkey); err != nil || ts.Snapshot.Len() != 200 {
					b.Fatalf("load: %d entries, %v", ts.Snapshot.Len(), err)
				}
			}
		})
	}
	// Not on kv-r3: a read right after a write may be answered by a
	// replica that has not applied it yet (a direct get, the marker
	// listing's consumer), so the loop's own checks fail: a conflict
	// against an older revision, or a peek that misses the event just
	// committed. docs/ha.md ("Reads from a lagging replica") has the
	// finding; the figures wait for its fix.
	for _, name := range names[:3] {
		st := stores[name]
		// LoadCommit: a poll whose listing changed: load, then commit the
		// next snapshot (one status toggled) and one event; the publisher
		// then peeks and deletes it, so the record does not grow.
		b.Run("LoadCommit/"+name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				_, rev, err := st.Load(tkey)
				if err != nil {
					b.Fatal(err)
				}
				m := event.Message{ID: fmt.Sprint(i), Subject: "monitord.failed.x", Data: make([]byte, 600)}
				if _, err := st.Commit(tkey, rev, state.Next{Snapshot: snaps[i%2], Health: state.Health{LastSuccess: t0.Add(time.Duration(i))}}, []event.Message{m}); err != nil {
					b.Fatal(err)
				}
				recs, err := st.Peek(event.Position{}, 0)
				if err != nil || len(recs) != 1 {
					b.Fatalf("peek: %d records, %v", len(recs), err)
				}
				if err := st.Delete([]event.Position{recs[0].Position}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, name := range names {
		st := stores[name]
		// Unchanged: the common poll, nothing changed but the poll times.
		b.Run("Unchanged/"+name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				ts, rev, err := st.Load(tkey)
				if err != nil {
					b.Fatal(err)
				}
				ts.Health.LastAttempt = t0.Add(time.Duration(i))
				if _, err := st.Commit(tkey, rev, state.Next{Health: ts.Health}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
