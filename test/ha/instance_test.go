package ha

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/ha"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
)

// errCrashed is what a crashed instance's store answers: its process is
// gone, nothing it does any more reaches NATS.
var errCrashed = errors.New("instance crashed")

// crashPoint arms a crash at one point of the commit order, shared by
// the instances of a scenario: the first instance to reach the point
// crashes there, the others go on.
type crashPoint struct {
	afterCommit  atomic.Bool // a commit with events has been written, nothing published
	afterPublish atomic.Bool // events are in the stream, not cleared from the store
	// midPoll, when set, arms a trap in the instances' API transport: the
	// first request for a second page after it is set hangs, its
	// instance dies (its connection closes first), and the request ends
	// with the instance.
	midPoll *atomic.Bool
	crashed chan string // the crashed instance's name
	ids     []string    // the events it left behind (after a commit)
}

func newCrashPoint() *crashPoint { return &crashPoint{crashed: make(chan string, 1)} }

// poll is one listing an instance started.
type poll struct {
	inst, service string
	at            time.Time
}

// journal records the listings of every instance of a scenario.
type journal struct {
	mu    sync.Mutex
	polls []poll
}

func (j *journal) add(p poll) {
	j.mu.Lock()
	j.polls = append(j.polls, p)
	j.mu.Unlock()
}

func (j *journal) snapshot() []poll {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]poll(nil), j.polls...)
}

// first is the first listing of service by an instance other than not
// started after since, or the zero poll.
func (j *journal) first(service, not string, since time.Time) poll {
	for _, p := range j.snapshot() {
		if p.service == service && p.inst != not && !p.at.Before(since) {
			return p
		}
	}
	return poll{}
}

// firstBy is when the first listing of service by an instance other than
// not started after since, or zero.
func (j *journal) firstBy(service, not string, since time.Time) time.Time {
	return j.first(service, not, since).at
}

// owner is the instance that listed service last, or "".
func (j *journal) owner(service string) string {
	ps := j.snapshot()
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].service == service {
			return ps[i].inst
		}
	}
	return ""
}

// recLister records each listing in the journal.
type recLister struct {
	inst string
	j    *journal
	l    poller.Lister
}

func (r *recLister) AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error) {
	r.j.add(poll{inst: r.inst, service: t.ServiceSID, at: time.Now()})
	return r.l.AppendInteractions(ctx, t, dst)
}

// instance is one monitord instance in ha mode, composed as the daemon
// composes it (cmd/monitord: daemon.go, ha_wiring.go): an ha.Node opened
// on the instance's own NATS connection, a poller.Poller whose ticks go to
// Node.Dispatch and whose target set goes through Node.Targets, a worker
// per Service inside the Node (OnOwned spends the Service's burst, as the
// daemon's does), and a notify.Publisher (its own connection) draining the
// same store. The poller and the publisher see the Node's store through a
// hookStore, where a scenario's crash points are.
type instance struct {
	name string
	nc   *nats.Conn
	node *ha.Node
	kv   *kvstore.Store // node.Store()
	dead atomic.Bool
	cp   *crashPoint
	// owned records when the Node's workers were pinned for a Service
	// anew (OnOwned): the takeovers of this instance.
	owned *journal

	cancelNode, cancelPoll, cancelPub context.CancelFunc
	nodeDone, pollDone, pubDone       chan struct{}
	done                              chan struct{} // closed once the three have returned
	stopOnce                          sync.Once
}

// startInstance starts an instance whose connection prefers node (its
// URL first; the client moves to another node only when that one is
// gone), polling the world's targets every second.
func startInstance(t *testing.T, w *world, name string, node int, j *journal, cp *crashPoint) *instance {
	t.Helper()
	urls := strings.Split(w.cl.URLs(), ",")
	urls = append(urls[node:], urls[:node]...)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(name), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	t.Cleanup(nc.Close) // for a failure below; stop closes it too
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, nc: nc, cp: cp, owned: &journal{}, done: make(chan struct{})}
	log := zaptest.NewLogger(t).Named(name)
	rt := w.sim.Transport()
	if cp != nil && cp.midPoll != nil {
		rt = &trapTransport{in: in, cp: cp, next: rt}
	}
	client := w.clientOn(rt) // the instance's own: its budget is its own

	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ocancel()
	// The daemon's order: the Node first, on the instance's own
	// connection, its store the poller's and the publisher's.
	in.node, err = ha.Open(octx, js, ha.Config{Instance: name, Work: w.wcfg, CreateAssets: true, Log: log,
		KV: kvstore.Config{Bucket: bucket, Replicas: 3, Timeout: 2 * time.Second},
		OnOwned: func(service string) {
			// The daemon's spendBurstOnOwned, and the takeover's time.
			client.SpendBurst(service)
			in.owned.add(poll{inst: name, service: service, at: time.Now()})
		}})
	if err != nil {
		t.Fatalf("%s: open ha node: %v", name, err)
	}
	in.kv = in.node.Store()
	st := &hookStore{in: in}
	pub, err := notify.New(w.notifyConfig(name), st, log)
	if err != nil {
		t.Fatal(err)
	}
	pc := w.pollerConfig(st)
	pc.Waker, pc.Log = pub, log
	pc.Spread = true
	pc.Dispatch = in.node.Dispatch // ticks become tasks; the Service's owner polls them
	p, err := poller.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.node.Targets(p).SetTargets(w.specs(client, func(l poller.Lister) poller.Lister {
		return &recLister{inst: name, j: j, l: l}
	})); err != nil {
		t.Fatal(err)
	}
	if err := in.node.EnsureServices(octx); err != nil {
		t.Fatalf("%s: ensure services: %v", name, err)
	}
	// Every cancel is in place before anything runs: a crash point may
	// kill the instance from inside its first poll.
	var pubCtx, pollCtx, nodeCtx context.Context
	pubCtx, in.cancelPub = context.WithCancel(context.Background())
	pollCtx, in.cancelPoll = context.WithCancel(context.Background())
	nodeCtx, in.cancelNode = context.WithCancel(context.Background())
	run := func(ctx context.Context, f func(context.Context) error, what string) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := f(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %s: %v", name, what, err)
			}
		}()
		return done
	}
	in.pubDone = run(pubCtx, pub.Run, "publisher")
	in.pollDone = run(pollCtx, p.Run, "poller")
	in.nodeDone = run(nodeCtx, in.node.Run, "ha node")
	go func() {
		<-in.nodeDone
		<-in.pollDone
		<-in.pubDone
		close(in.done)
	}()
	t.Cleanup(in.stop)
	return in
}

// stop stops the instance gracefully, in the daemon's order: the Node (its
// workers poll through the poller; each unpins the Service it owned and
// its ownership records go), the poller, the publisher; then the store
// writes what it held back and the connection closes. After a kill it only
// waits for the instance's goroutines.
func (in *instance) stop() {
	in.stopOnce.Do(func() {
		in.cancelNode()
		<-in.nodeDone
		in.cancelPoll()
		<-in.pollDone
		in.cancelPub()
		<-in.pubDone
		if !in.dead.Load() {
			_ = in.kv.Close()
		}
		in.nc.Close()
	})
}

// kill makes the instance vanish as a dead host would: its connection
// closes first, so nothing is handed over, and its store refuses every
// call from then on. It does not wait for the instance's goroutines (a
// hook calls it from inside a poll); stop does.
func (in *instance) kill() {
	in.dead.Store(true)
	in.nc.Close()
	in.cancelNode()
	in.cancelPoll()
	in.cancelPub()
}

// hookStore is the Node's store (a kvstore.Store) as the instance's
// poller and publisher see it; the Node itself commits, publishes and
// clears nothing, its workers commit through the poller: refused once the instance is dead, and where a crashPoint is
// armed, the place the instance dies.
type hookStore struct{ in *instance }

func (h *hookStore) Load(key string) (state.TargetState, state.Revision, error) {
	if h.in.dead.Load() {
		return state.TargetState{}, 0, errCrashed
	}
	return h.in.kv.Load(key)
}

func (h *hookStore) Commit(key string, rev state.Revision, next state.Next, msgs []event.Message) (state.Revision, error) {
	if h.in.dead.Load() {
		return 0, errCrashed
	}
	cp := h.in.cp
	if cp == nil || len(msgs) == 0 || !cp.afterCommit.CompareAndSwap(true, false) {
		return h.in.kv.Commit(key, rev, next, msgs)
	}
	// Dead before the write, so this instance's publisher cannot drain
	// the events between the commit and the crash.
	h.in.dead.Store(true)
	nrev, err := h.in.kv.Commit(key, rev, next, msgs)
	if err != nil {
		// Not committed (another instance won the target): crash at the
		// next commit instead.
		h.in.dead.Store(false)
		cp.afterCommit.Store(true)
		return nrev, err
	}
	for _, m := range msgs {
		cp.ids = append(cp.ids, m.ID)
	}
	h.in.kill()
	cp.crashed <- h.in.name
	return nrev, errCrashed
}

func (h *hookStore) Peek(after event.Position, max int) ([]event.Record, error) {
	if h.in.dead.Load() {
		return nil, errCrashed
	}
	return h.in.kv.Peek(after, max)
}

func (h *hookStore) Delete(ps []event.Position) error {
	if h.in.dead.Load() {
		return errCrashed
	}
	cp := h.in.cp
	if cp == nil || len(ps) == 0 || !cp.afterPublish.CompareAndSwap(true, false) {
		return h.in.kv.Delete(ps)
	}
	// The publisher holds the PubAcks of these events: they are in the
	// stream, and still pending in the store.
	h.in.kill()
	cp.crashed <- h.in.name
	return errCrashed
}

// String names the instance in failures.
func (in *instance) String() string { return fmt.Sprintf("instance %s", in.name) }

// trapTransport is an instance's way to the simulator when a crashPoint
// has a midPoll trap: the poll it catches is cut between its pages, as a
// host dying while the API is slow to answer page 2 would cut it.
type trapTransport struct {
	in   *instance
	cp   *crashPoint
	next http.RoundTripper
}

func (tr *trapTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !r.URL.Query().Has("PageToken") || !tr.cp.midPoll.CompareAndSwap(true, false) {
		return tr.next.RoundTrip(r)
	}
	tr.in.kill()
	tr.cp.crashed <- tr.in.name
	<-r.Context().Done() // the kill cancels the poll: page 2 never comes
	return nil, r.Context().Err()
}
