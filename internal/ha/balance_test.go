package ha

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
)

// pollTally records the polls of every instance of a balance test: how
// often each (target, tick) was polled to the end, polls cut short, and
// two instances polling one Service at once.
type pollTally struct {
	mu        sync.Mutex
	done      map[string]int    // by tick id: polls that ran to the end
	active    map[string]string // by Service: the instance polling it now
	activeN   map[string]int    // by Service: its polls under way
	overlaps  []string
	cancelled int
}

func newPollTally() *pollTally {
	return &pollTally{done: map[string]int{}, active: map[string]string{}, activeN: map[string]int{}}
}

// tallyPoller is one instance's poller: each poll takes 200 ms, so polls
// are under way when a Service is handed over.
type tallyPoller struct {
	inst  string
	tally *pollTally
}

func (p tallyPoller) SetTargets([]poller.TargetSpec) error { return nil }

func (p tallyPoller) Poll(ctx context.Context, t proxy.Target, tick poller.Tick) (string, error) {
	tl := p.tally
	svc := t.ServiceSID
	tl.mu.Lock()
	if other := tl.active[svc]; tl.activeN[svc] > 0 && other != p.inst {
		tl.overlaps = append(tl.overlaps, fmt.Sprintf("%s polled by %s and %s at once", svc, other, p.inst))
	}
	tl.active[svc] = p.inst
	tl.activeN[svc]++
	tl.mu.Unlock()
	tm := time.NewTimer(200 * time.Millisecond)
	defer tm.Stop()
	res := poller.ResultOK
	select {
	case <-ctx.Done():
		res = poller.ResultCancelled
	case <-tm.C:
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.activeN[svc]--
	if res == poller.ResultCancelled {
		tl.cancelled++
	} else {
		tl.done[tick.ID()]++
	}
	return res, nil
}

// check fails t on a tick polled twice, an overlap or a poll cut short.
func (tl *pollTally) check(t *testing.T) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.done) == 0 {
		t.Fatal("no poll ran")
	}
	for id, n := range tl.done {
		if n != 1 {
			t.Errorf("tick %s polled %d times, want once", id, n)
		}
	}
	if len(tl.overlaps) > 0 {
		t.Errorf("two owners at once: %v", tl.overlaps)
	}
	if tl.cancelled != 0 {
		t.Errorf("%d polls cancelled, want none (a hand-over lets polls finish)", tl.cancelled)
	}
}

// balanceNode is one instance of a balance test: a Node on its own
// connection serving every Service, polling through a tallyPoller.
type balanceNode struct {
	name string
	nc   *nats.Conn
	node *Node
	stop func()
}

func startBalanceNode(t *testing.T, cl *natstest.Cluster, name string, svcs []string, balance bool, tally *pollTally) *balanceNode {
	t.Helper()
	nc, err := nats.Connect(cl.URLs(), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, js, Config{Instance: name, Work: testWork(1), KV: kvstore.Config{Bucket: "st", Replicas: 1},
		CreateAssets: true, Balance: balance, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Targets(tallyPoller{name, tally}).SetTargets(balanceSpecs(svcs)); err != nil {
		t.Fatal(err)
	}
	if err := n.EnsureServices(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancelRun := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(rctx) }()
	bn := &balanceNode{name: name, nc: nc, node: n}
	var once sync.Once
	bn.stop = func() { once.Do(func() { cancelRun(); <-done; nc.Close() }) }
	t.Cleanup(bn.stop)
	return bn
}

// kill closes the connection first, as a dead host's would close: the
// node hands nothing over and leaves its records behind.
func (b *balanceNode) kill() { b.nc.Close(); b.stop() }

func (b *balanceNode) owned() int { return len(b.node.Owned()) }

// publishTicks publishes a tick of every target of svcs every 250 ms
// until the returned stop is called: the tasks whose delivery pins the
// Services.
func publishTicks(t *testing.T, cl *natstest.Cluster, svcs []string) (stop func()) {
	t.Helper()
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	q, err := work.NewQueue(js, testWork(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for due := time.UnixMilli(1_700_000_000_000); ; due = due.Add(250 * time.Millisecond) {
			for _, sp := range balanceSpecs(svcs) {
				pctx, c := context.WithTimeout(ctx, 5*time.Second)
				// A tick refused (its target's task still queued) or lost
				// is what a real scheduler sees too: the next one comes.
				_, _ = q.Publish(pctx, sp.Target, poller.Tick{Key: sp.Target.Key(), Due: due})
				c()
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; nc.Close() }) }
	t.Cleanup(stop)
	return stop
}

func balanceServices(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("KS%032d", i+1))
	}
	return out
}

// balanceSpecs is 3 targets of each of svcs: a Service whose polls
// overlap, so that a new owner could start one while the old one's runs.
func balanceSpecs(svcs []string) []poller.TargetSpec {
	var all []string
	for _, svc := range svcs {
		all = append(all, svc, svc, svc)
	}
	return specsOf(all)
}

// spread says whether the nodes own every one of svcs, each Service by
// one node, each node between lo and hi of them.
func spread(svcs []string, lo, hi int, nodes ...*balanceNode) bool {
	seen := map[string]bool{}
	for _, b := range nodes {
		own := b.node.Owned()
		if len(own) < lo || len(own) > hi {
			return false
		}
		for _, o := range own {
			if seen[o.Service] {
				return false
			}
			seen[o.Service] = true
		}
	}
	return len(seen) == len(svcs)
}

// recordsAgree says whether the ownership records in the bucket name, for
// every Service, the node that owns it.
func recordsAgree(ctx context.Context, js jetstream.JetStream, svcs []string, nodes ...*balanceNode) bool {
	recs, err := Owners(ctx, js, "st")
	if err != nil || len(recs) != len(svcs) {
		return false
	}
	owner := map[string]string{}
	for _, b := range nodes {
		for _, o := range b.node.Owned() {
			owner[o.Service] = b.name
		}
	}
	for _, r := range recs {
		if owner[r.Service] != r.Instance {
			return false
		}
	}
	return true
}

func clusterJS(t *testing.T, cl *natstest.Cluster) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestHABalanceSpreadsServices: instance a starts alone and owns the 4
// Services; b starts and they end with 2 each; c starts and each owns 1 or
// 2 (none more than ceil(4/3) = 2), every Service with one owner, the
// bucket's records in agreement. Across the hand-overs no tick is polled
// twice, no two instances poll a Service at once, and no poll is cut
// short.
func TestHABalanceSpreadsServices(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	js := clusterJS(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	svcs := balanceServices(4)
	tally := newPollTally()
	a := startBalanceNode(t, cl, "a", svcs, true, tally)
	stopTicks := publishTicks(t, cl, svcs)
	natstest.WaitFor(t, "a owning the 4 Services", 30*time.Second, func() bool { return a.owned() == 4 })

	start := time.Now()
	b := startBalanceNode(t, cl, "b", svcs, true, tally)
	natstest.WaitFor(t, "a and b owning 2 each", 90*time.Second, func() bool { return spread(svcs, 2, 2, a, b) })
	t.Logf("a and b balanced %v after b started; hand-overs: a %d, b %d", time.Since(start).Round(time.Millisecond),
		a.node.Handovers(), b.node.Handovers())

	start = time.Now()
	c := startBalanceNode(t, cl, "c", svcs, true, tally)
	natstest.WaitFor(t, "a, b and c owning 1 or 2 each", 90*time.Second, func() bool { return spread(svcs, 1, 2, a, b, c) })
	t.Logf("a, b and c balanced %v after c started; hand-overs in all: %d", time.Since(start).Round(time.Millisecond),
		a.node.Handovers()+b.node.Handovers()+c.node.Handovers())
	natstest.WaitFor(t, "the ownership records agreeing", 30*time.Second, func() bool { return recordsAgree(ctx, js, svcs, a, b, c) })
	// The store lists its own keys only: the i. and o. records beside
	// them are no targets (no poll here commits state).
	if keys, err := a.node.Store().Keys(); err != nil || len(keys) != 0 {
		t.Errorf("store keys %v, %v; want none beside the instance and ownership records", keys, err)
	}
	if recs, err := readInstances(ctx, a.node.kv); err != nil || len(recs) != 3 {
		t.Errorf("instance records %+v, %v; want a, b and c", recs, err)
	}
	stopTicks()
	tally.check(t)
	if h := a.node.Handovers() + b.node.Handovers() + c.node.Handovers(); h > 6 {
		t.Errorf("%d hand-overs to spread 4 Services over 3 instances, want a few", h)
	}
}

// TestHABalanceOffServicesStay: with ha.balance off, the Services stay
// with the instance that took them first while another one is live and
// idle, for several owner rounds.
func TestHABalanceOffServicesStay(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	svcs := balanceServices(4)
	tally := newPollTally()
	a := startBalanceNode(t, cl, "a", svcs, false, tally)
	publishTicks(t, cl, svcs)
	natstest.WaitFor(t, "a owning the 4 Services", 30*time.Second, func() bool { return a.owned() == 4 })
	b := startBalanceNode(t, cl, "b", svcs, false, tally)
	// b's instance record written 4 times: b live for 3 pinned TTLs, a
	// has seen it in several rounds, and with balance on would have
	// handed a Service over by now.
	natstest.WaitFor(t, "b's instance record written 4 times", 60*time.Second, func() bool { return b.node.instanceWrites.Load() >= 4 })
	if got := a.owned(); got != 4 {
		t.Errorf("a owns %d Services with balance off, want 4", got)
	}
	if got := b.owned(); got != 0 {
		t.Errorf("b owns %d Services with balance off, want 0", got)
	}
	if h := a.node.Handovers(); h != 0 {
		t.Errorf("a handed %d Services over with balance off", h)
	}
	// A graceful stop removes the instance's record: it stops counting
	// at once rather than after 3 pinned TTLs.
	b.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if recs, err := readInstances(ctx, a.node.kv); err != nil || len(recs) != 1 || recs[0].Instance != "a" {
		t.Errorf("instance records after b stopped: %+v, %v; want a's alone", recs, err)
	}
}

// TestHABalanceFailoverNoFlapping: of three balanced instances one dies
// (its connection closed: it hands nothing over, its records stay); the
// two others take its Services over and end with 2 each, and the balance
// does not pass Services back and forth while the dead instance's record
// still counts nor after.
func TestHABalanceFailoverNoFlapping(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	svcs := balanceServices(4)
	tally := newPollTally()
	nodes := []*balanceNode{startBalanceNode(t, cl, "a", svcs, true, tally)}
	publishTicks(t, cl, svcs)
	natstest.WaitFor(t, "a owning the 4 Services", 30*time.Second, func() bool { return nodes[0].owned() == 4 })
	nodes = append(nodes, startBalanceNode(t, cl, "b", svcs, true, tally), startBalanceNode(t, cl, "c", svcs, true, tally))
	natstest.WaitFor(t, "a, b and c owning 1 or 2 each", 2*time.Minute, func() bool { return spread(svcs, 1, 2, nodes...) })

	// The one owning 2 dies: its 2 Services must move.
	dead := nodes[0]
	for _, b := range nodes {
		if b.owned() == 2 {
			dead = b
		}
	}
	var alive []*balanceNode
	for _, b := range nodes {
		if b != dead {
			alive = append(alive, b)
		}
	}
	handovers := func() int64 { return alive[0].node.Handovers() + alive[1].node.Handovers() }
	before := handovers()
	dead.kill()
	natstest.WaitFor(t, "the survivors owning 2 each", time.Minute, func() bool { return spread(svcs, 2, 2, alive...) })
	// Long enough for the dead instance's record to go stale (3 pinned
	// TTLs), and then some: each survivor writes its record every pinned
	// TTL.
	w0, w1 := alive[0].node.instanceWrites.Load(), alive[1].node.instanceWrites.Load()
	natstest.WaitFor(t, "6 more owner rounds of the survivors", time.Minute, func() bool {
		return alive[0].node.instanceWrites.Load() >= w0+6 && alive[1].node.instanceWrites.Load() >= w1+6
	})
	if !spread(svcs, 2, 2, alive...) {
		t.Errorf("survivors own %d and %d Services after settling, want 2 each", alive[0].owned(), alive[1].owned())
	}
	t.Logf("hand-overs after the failover: %d", handovers()-before)
	// The survivors, 1 each, take 2: 2+2 needs no hand-over, 3+1 one.
	// More is flapping: a dead instance's record taken for an idle
	// instance makes them pass Services back and forth (seen: 2 and 3).
	if h := handovers() - before; h > 1 {
		t.Errorf("%d hand-overs after the failover, want at most 1 (no flapping)", h)
	}
}
