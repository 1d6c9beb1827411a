package ha

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
)

// servicePoller records the Services of the tasks it is handed.
type servicePoller struct {
	mu    sync.Mutex
	polls map[string]int
}

func (p *servicePoller) SetTargets([]poller.TargetSpec) error { return nil }

func (p *servicePoller) Poll(_ context.Context, t proxy.Target, _ poller.Tick) (string, error) {
	p.mu.Lock()
	p.polls[t.ServiceSID]++
	p.mu.Unlock()
	return poller.ResultOK, nil
}

func (p *servicePoller) count(svc string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.polls[svc]
}

// TestClusterServicesFollowTargets: the Node serves the Services of the
// target set it is handed: a new Service gets its consumer and a worker
// (its tasks are polled, this instance owns it and says so in the bucket),
// and a Service gone from the set loses its worker and its ownership
// record.
func TestClusterServicesFollowTargets(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Instance: "a", Work: testWork(1), KV: kvstore.Config{Bucket: "st", Replicas: 1}, CreateAssets: true}
	n, err := Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &servicePoller{polls: map[string]int{}}
	set := n.Targets(p)
	svc1, svc2 := "KS"+strings.Repeat("1", 32), "KS"+strings.Repeat("2", 32)
	if err := set.SetTargets(specsOf([]string{svc1})); err != nil {
		t.Fatal(err)
	}
	if err := n.EnsureServices(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(rctx) }()
	defer func() { stop(); <-done }()

	q, err := work.NewQueue(js, cfg.Work)
	if err != nil {
		t.Fatal(err)
	}
	due := time.UnixMilli(1_700_000_000_000)
	publish := func(svc string) {
		t.Helper()
		tg := specsOf([]string{svc})[0].Target
		due = due.Add(time.Minute)
		if _, err := q.Publish(ctx, tg, poller.Tick{Key: tg.Key(), Due: due}); err != nil {
			t.Fatal(err)
		}
	}
	ownedBy := func(want map[string]string) func() bool {
		return func() bool {
			recs, err := Owners(ctx, js, "st")
			if err != nil || len(recs) != len(want) {
				return false
			}
			for _, o := range recs {
				if want[o.Service] != o.Instance {
					return false
				}
			}
			return true
		}
	}
	publish(svc1)
	natstest.WaitFor(t, "the task of "+svc1+" polled", 10*time.Second, func() bool { return p.count(svc1) == 1 })
	natstest.WaitFor(t, "a owning "+svc1+" in the bucket", 10*time.Second, ownedBy(map[string]string{svc1: "a"}))

	// The set changes: svc2 comes, svc1 goes.
	if err := set.SetTargets(specsOf([]string{svc2})); err != nil {
		t.Fatal(err)
	}
	if got := n.Services(); !slices.Equal(got, []string{svc2}) {
		t.Fatalf("Services() = %v, want [%s]", got, svc2)
	}
	// The owner loop creates the new consumer; a task published before it
	// exists is kept by the stream and delivered once it does.
	publish(svc2)
	natstest.WaitFor(t, "the task of "+svc2+" polled", 10*time.Second, func() bool { return p.count(svc2) == 1 })
	natstest.WaitFor(t, "a owning "+svc2+" only", 10*time.Second, ownedBy(map[string]string{svc2: "a"}))
	if got := n.Owned(); len(got) != 1 || got[0].Service != svc2 {
		t.Errorf("Owned() = %v, want %s alone", got, svc2)
	}
}

// TestClusterOwnershipNotClaimedWhileUnreachable: an instance that cannot
// reach NATS stops claiming its Services (Owned, hence /status and the
// heartbeat) once a pinned TTL has passed without confirming them: by then
// the server has moved, or will move, the pin.
func TestClusterOwnershipNotClaimedWhileUnreachable(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Instance: "a", Work: testWork(1), KV: kvstore.Config{Bucket: "st", Replicas: 1}, CreateAssets: true}
	n, err := Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &servicePoller{polls: map[string]int{}}
	svc := "KS" + strings.Repeat("4", 32)
	if err := n.Targets(p).SetTargets(specsOf([]string{svc})); err != nil {
		t.Fatal(err)
	}
	if err := n.EnsureServices(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(rctx) }()
	defer func() { stop(); <-done }()
	q, err := work.NewQueue(js, cfg.Work)
	if err != nil {
		t.Fatal(err)
	}
	tg := specsOf([]string{svc})[0].Target
	if _, err := q.Publish(ctx, tg, poller.Tick{Key: tg.Key(), Due: time.UnixMilli(1_700_000_000_000)}); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, "the Service owned", 10*time.Second, func() bool { return len(n.Owned()) == 1 })

	cl.Stop(0)
	natstest.WaitFor(t, "the Service no longer claimed", 5*cfg.Work.PinnedTTL, func() bool { return len(n.Owned()) == 0 })
}
