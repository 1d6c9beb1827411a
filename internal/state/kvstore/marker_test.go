package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// The marker invariant under a race: pollers on two connections commit
// events to a few targets while a publisher on a third drains them. At
// every commit and at the end, a record with pending events has its
// marker, and every committed event is delivered exactly once.
func TestMarkerNeverMissingUnderConcurrentDrain(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	openOn := func() *Store {
		st, err := Open(t.Context(), connect(t, srv), Config{Bucket: "race", Replicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	pollers := []*Store{openOn(), openOn()}
	publisher := openOn()
	targets := []string{"a", "b", "c"}
	const rounds = 30

	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	errc := make(chan error, len(pollers)*len(targets))
	for pi, st := range pollers {
		for _, key := range targets {
			wg.Go(func() {
				for round := 0; round < rounds; {
					_, rev, err := st.Load(key)
					if err != nil {
						errc <- err
						return
					}
					id := fmt.Sprintf("%s-%d-%d", key, pi, round)
					_, err = st.Commit(key, rev, state.Next{Health: state.Health{Outage: uint64(round)}}, []event.Message{{ID: id, Subject: "x"}})
					if errors.Is(err, state.ErrConflict) {
						continue // the other poller won; load again
					}
					if err != nil {
						errc <- err
						return
					}
					mu.Lock()
					committed[id] = true
					mu.Unlock()
					round++
				}
			})
		}
	}
	delivered := map[string]int{}
	drain := func() int {
		recs, err := publisher.Peek(event.Position{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ps []event.Position
		for _, r := range recs {
			delivered[r.ID]++
			ps = append(ps, r.Position)
		}
		if err := publisher.Delete(ps); err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case err := <-errc:
			t.Fatal(err)
		default:
			drain()
		}
	}
	for drain() > 0 {
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	// Nothing is left in any record: none was hidden by a missing marker.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, key := range targets {
		r, _, err := publisher.get(ctx, keyName(key), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.events) > 0 {
			t.Errorf("target %s holds %d events the publisher never saw (marker missing)", key, len(r.events))
		}
	}
	if len(committed) != len(pollers)*len(targets)*rounds {
		t.Fatalf("%d commits, want %d", len(committed), len(pollers)*len(targets)*rounds)
	}
	for id := range committed {
		if delivered[id] != 1 {
			t.Errorf("event %s delivered %d times", id, delivered[id])
		}
	}
	if len(delivered) != len(committed) {
		t.Errorf("%d events delivered, %d committed", len(delivered), len(committed))
	}
}

// The interleaving the marker protocol is for, made to happen: the
// publisher empties a target's record; before it removes the marker, a
// poll commits new events (and marks the target again). The publisher's
// removal must fail, and the new events stay visible.
func TestMarkerSurvivesCommitBetweenDeleteAndUnmark(t *testing.T) {
	srv := startServer(t, t.TempDir(), -1)
	js := connect(t, srv)
	poller, err := Open(t.Context(), js, Config{Bucket: "window", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	publisher, err := Open(t.Context(), js, Config{Bucket: "window", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := poller.Commit("k", 0, state.Next{}, []event.Message{{ID: "a", Subject: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	publisher.afterDeleteWrite = func() {
		if _, err := poller.Commit("k", rev, state.Next{Health: state.Health{Outage: 1}}, []event.Message{{ID: "b", Subject: "x"}}); err != nil {
			t.Errorf("commit inside the window: %v", err)
		}
	}
	if err := publisher.Delete([]event.Position{{Target: "k", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	publisher.afterDeleteWrite = nil
	recs, err := publisher.Peek(event.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "b" {
		t.Fatalf("pending after the interleaving: %+v, want b (its marker was removed)", recs)
	}
}
