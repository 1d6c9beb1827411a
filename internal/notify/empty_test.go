package notify

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// lateCommitOutbox commits late once, without a Wake, right after the
// drain read what it took for the end of the outbox: the commit that lands
// between a drain seeing the outbox empty and the drain ending. WaitEmpty
// (which peeks one record) does not trigger it.
type lateCommitOutbox struct {
	*memOutbox
	once sync.Once
	late []event.Message
}

func (o *lateCommitOutbox) Peek(after event.Position, max int) ([]event.Record, error) {
	recs, err := o.memOutbox.Peek(after, max)
	if max > 1 && len(recs) < max {
		o.once.Do(func() { o.Add(o.late...) })
	}
	return recs, err
}

// TestWaitEmpty: WaitEmpty returns once every event is delivered and not
// before, also when a commit lands just after the drain saw the end of the
// outbox: the drain's ending is news, not a verdict, and WaitEmpty looks
// at the outbox itself.
func TestWaitEmpty(t *testing.T) {
	s := startServer(t, nil)
	first, late := makeMsgs(t, 0, 300), makeMsgs(t, 300, 50)
	ob := &lateCommitOutbox{memOutbox: &memOutbox{}, late: late}
	ob.Add(first...)
	p := newPublisher(t, testConfig(s), ob)
	stop := runPublisher(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitEmpty(ctx); err != nil {
		t.Fatalf("WaitEmpty: %v", err)
	}
	if n := ob.Len(); n != 0 {
		t.Fatalf("WaitEmpty returned with %d events in the outbox", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := append(ids(first), ids(late)...)
	if diff := cmp.Diff(want, streamIDs(t, s.ClientURL(), DefaultStreamName)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
}

// TestWaitEmptyStateDB: the same against the real bbolt outbox, with
// commits between waits; an empty outbox returns at once, Run or not.
func TestWaitEmptyStateDB(t *testing.T) {
	s := startServer(t, nil)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := newPublisher(t, testConfig(s), db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitEmpty(ctx); err != nil {
		t.Fatalf("WaitEmpty on an empty outbox without Run: %v", err)
	}
	stop := runPublisher(t, p)
	var want []string
	var rev state.Revision
	for i := range 3 {
		msgs := makeMsgs(t, i*100, 100)
		if rev, err = db.Commit("participant/target", rev, state.Next{}, msgs); err != nil {
			t.Fatalf("commit: %v", err)
		}
		want = append(want, ids(msgs)...)
		if err := p.WaitEmpty(ctx); err != nil {
			t.Fatalf("WaitEmpty after commit %d: %v", i, err)
		}
		if n, _, _, err := db.OutboxStats(); err != nil || n != 0 {
			t.Fatalf("WaitEmpty returned with %d events in the outbox (%v)", n, err)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(want, streamIDs(t, s.ClientURL(), DefaultStreamName)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
}

// TestWaitEmptyNATSDown: while no server listens, WaitEmpty waits until
// its context ends (deadline or cancel) and the events stay;
// WaitEmptyConnected refuses at once; once a server appears, WaitEmpty
// returns when the events are delivered.
func TestWaitEmptyNATSDown(t *testing.T) {
	probe := startServer(t, nil)
	port := serverPort(probe)
	cfg := testConfig(probe)
	probe.Shutdown()
	probe.WaitForShutdown()

	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 100)
	ob.Add(msgs...)
	p := newPublisher(t, cfg, ob)
	bg := context.Background()
	if err := p.WaitEmptyConnected(bg); !errors.Is(err, ErrNotConnected) {
		t.Errorf("WaitEmptyConnected before Run: %v, want ErrNotConnected", err)
	}
	stop := runPublisher(t, p)

	short, cancelShort := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancelShort()
	if err := p.WaitEmpty(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitEmpty with NATS down: %v, want the deadline", err)
	}
	cctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- p.WaitEmpty(cctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WaitEmpty cancelled: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitEmpty ignored its cancelled context")
	}
	if err := p.WaitEmptyConnected(bg); !errors.Is(err, ErrNotConnected) {
		t.Errorf("WaitEmptyConnected with NATS down: %v, want ErrNotConnected", err)
	}
	if n := ob.Len(); n != len(msgs) {
		t.Fatalf("outbox holds %d while NATS is down, want %d", n, len(msgs))
	}

	// A waiter blocked through the outage returns once the server is back
	// and the events are delivered.
	wctx, wcancel := context.WithTimeout(bg, 20*time.Second)
	defer wcancel()
	go func() { done <- p.WaitEmpty(wctx) }()
	s := startServer(t, &server.Options{Port: port})
	if err := <-done; err != nil {
		t.Fatalf("WaitEmpty after the server came: %v", err)
	}
	if n := ob.Len(); n != 0 {
		t.Fatalf("WaitEmpty returned with %d events in the outbox", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(ids(msgs), streamIDs(t, s.ClientURL(), DefaultStreamName)); diff != "" {
		t.Fatalf("stream ids (-want +got):\n%s", diff)
	}
}
