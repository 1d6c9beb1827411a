package kvstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
)

// TestClusterOneWriterNeverConflicts: on a 3-replica bucket, one writer
// that loads, commits an event and clears it, over and over, never meets
// a conflict. ErrConflict means another writer committed since the load;
// a load answered by a replica that has not applied the writer's own last
// write yet (a direct get, which any replica serves) reported one with no
// other writer at all, and the poll was lost as a state error.
func TestClusterOneWriterNeverConflicts(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: bucketName(), Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// A 200-interaction snapshot, as a poll writes: the bigger the write,
	// the longer a follower takes to apply it.
	snaps := [2]*diff.Snapshot{benchSnapshot(200, "delivered"), benchSnapshot(200, "failed")}
	for i := range 600 {
		_, rev, err := st.Load(tkey)
		if err != nil {
			t.Fatal(err)
		}
		h := state.Health{LastSuccess: t0, Outage: uint64(i)}
		if _, err := st.Commit(tkey, rev, state.Next{Snapshot: snaps[i%2], Health: h}, []event.Message{msg(fmt.Sprint(i))}); err != nil {
			t.Fatalf("commit %d of one writer: %v", i, err)
		}
		// The marker listing is a watcher, an R1 consumer the server
		// may place on a lagging follower: the event may show a moment
		// late (docs/ha.md), which costs a drain, not a conflict.
		var recs []event.Record
		natstest.WaitFor(t, fmt.Sprintf("commit %d's event pending", i), 5*time.Second, func() bool {
			recs, err = st.Peek(event.Position{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			return len(recs) == 1
		})
		if err := st.Delete([]event.Position{recs[0].Position}); err != nil {
			t.Fatal(err)
		}
	}
}
