package notify

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/state"
)

// TestDrainKeepsPerTargetOrder: targets commit to the real bbolt store
// while the publisher drains it, as the poller and the publisher run;
// every event reaches the stream once, and each target's events in the
// order they were committed (order across targets is not promised). A
// commit landing behind the drain's read position waits for the next
// drain, never overtakes its target's earlier events.
func TestDrainKeepsPerTargetOrder(t *testing.T) {
	s := startServer(t, nil)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := testConfig(s)
	cfg.MaxPending = 16 // many refills while commits land
	p := newPublisher(t, cfg, db)
	stop := runPublisher(t, p)

	const targets, commits, per = 8, 15, 4
	want := make([][]string, targets)
	var wg sync.WaitGroup
	for tn := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("participant/KS%032x/KC%032x/KP%032x", 0, tn, tn)
			var rev state.Revision
			for c := range commits {
				msgs := makeMsgs(t, (tn*commits+c)*per, per)
				nrev, err := db.Commit(key, rev, state.Next{Health: state.Health{Outage: uint64(c)}}, msgs)
				if err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				rev = nrev
				want[tn] = append(want[tn], ids(msgs)...)
				p.Wake()
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitEmpty(ctx); err != nil {
		t.Fatalf("WaitEmpty: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := streamIDs(t, s.ClientURL(), DefaultStreamName)
	if len(got) != targets*commits*per {
		t.Fatalf("%d events in the stream, want %d", len(got), targets*commits*per)
	}
	at := make(map[string]int, len(got))
	for i, id := range got {
		if _, dup := at[id]; dup {
			t.Fatalf("%s twice in the stream", id)
		}
		at[id] = i
	}
	for tn, w := range want {
		pos := make([]int, len(w))
		for i, id := range w {
			p, ok := at[id]
			if !ok {
				t.Fatalf("target %d: %s never published", tn, id)
			}
			pos[i] = p
		}
		if !slices.IsSorted(pos) {
			t.Fatalf("target %d: published out of commit order (stream positions %v)", tn, pos)
		}
	}
	if n, _, _, err := db.OutboxStats(); err != nil || n != 0 {
		t.Fatalf("outbox after the drain: %d events, %v", n, err)
	}
}
