package ha

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
)

// pubErrors counts a publisher's failed drains.
type pubErrors struct{ n atomic.Int64 }

func (p *pubErrors) Published(int)  {}
func (p *pubErrors) PublishError()  { p.n.Add(1) }
func (p *pubErrors) Connected(bool) {}

// TestClusterPublishersShareOutbox: three instances' publishers drain one
// KV outbox on a 3-node cluster at once, as every instance of an ha
// deployment does. Their copies of an event arrive within milliseconds, and
// the stream answers all but the first with "duplicate message id is in
// process" while it replicates the first: that is the normal case here, not
// a failed drain to log and back off from. Every event reaches the stream
// once and no publisher counts a failure.
func TestClusterPublishersShareOutbox(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := kvstore.Open(ctx, js, kvstore.Config{Bucket: "monitord_state", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	const targets, perTarget = 20, 10
	for i := range targets {
		key := fmt.Sprintf("participant/KS%032x/KC%032x/KP%032x", 1, i, i)
		var msgs []event.Message
		for j := range perTarget {
			id := fmt.Sprintf("%032x", i*perTarget+j)
			msgs = append(msgs, event.Message{ID: id, Subject: "monitord.created.x.y.z", Data: []byte(`{"id":"` + id + `"}`)})
		}
		if _, err := store.Commit(key, 0, state.Next{}, msgs); err != nil {
			t.Fatal(err)
		}
	}
	base := notify.DefaultConfig()
	base.URLs = strings.Split(cl.URLs(), ",")
	base.Stream.Replicas = 3
	// The stream exists, as it does in a running deployment: the test is
	// about draining, not about three publishers creating it at once.
	if _, err := js.CreateStream(ctx, notify.ProvisionedStream(base)); err != nil {
		t.Fatal(err)
	}
	var pubs []*notify.Publisher
	var errs []*pubErrors
	for i := range 3 {
		cfg := base
		cfg.RetryInterval = 200 * time.Millisecond
		pe := &pubErrors{}
		cfg.Observer = pe
		p, err := notify.New(cfg, store, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(fmt.Sprint("pub", i)))
		if err != nil {
			t.Fatal(err)
		}
		pubs, errs = append(pubs, p), append(errs, pe)
	}
	dones := make([]chan struct{}, len(pubs))
	rctx, stop := context.WithCancel(context.Background())
	for i, p := range pubs {
		dones[i] = make(chan struct{})
		go func() { defer close(dones[i]); _ = p.Run(rctx) }()
	}
	defer func() {
		stop()
		for _, d := range dones {
			<-d
		}
	}()
	for _, p := range pubs {
		p.Wake()
	}
	if err := pubs[0].WaitEmptyConnected(ctx); err != nil {
		t.Fatalf("outbox not drained: %v", err)
	}
	ids := streamEvents(t, js)
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("event %s twice", id)
		}
		seen[id] = true
	}
	if len(seen) != targets*perTarget {
		t.Errorf("%d events in the stream, want %d", len(seen), targets*perTarget)
	}
	for i, pe := range errs {
		if n := pe.n.Load(); n != 0 {
			t.Errorf("publisher %d counted %d failed drains; want none: a copy in process is not a failure", i, n)
		}
	}
}
