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
	"github.com/robfig/cron/v3"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
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

// firstBy is when the first listing of service by an instance other than
// not started after since, or zero.
func (j *journal) firstBy(service, not string, since time.Time) time.Time {
	for _, p := range j.snapshot() {
		if p.service == service && p.inst != not && !p.at.Before(since) {
			return p.at
		}
	}
	return time.Time{}
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

// instance is one monitord instance as issue 12 composes it, at the
// component level: its own NATS connection for the state and the work
// queue, a kvstore.Store, a poller.Poller listing the simulator, a
// work.Worker running the poller's polls, a poller.Scheduler publishing
// ticks into a work.Queue, and a notify.Publisher (its own connection)
// draining the store.
type instance struct {
	name   string
	nc     *nats.Conn
	kv     *kvstore.Store
	cancel context.CancelFunc
	done   chan struct{}
	dead   atomic.Bool
	cp     *crashPoint
	// tickErrs counts the ticks its scheduler could not queue.
	tickErrs atomic.Int64
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
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{name: name, nc: nc, cancel: cancel, done: make(chan struct{}), cp: cp}
	octx, ocancel := context.WithTimeout(ctx, 20*time.Second)
	defer ocancel()
	if in.kv, err = kvstore.Open(octx, js, kvstore.Config{Bucket: bucket, Timeout: 2 * time.Second}); err != nil {
		t.Fatalf("%s: open state: %v", name, err)
	}
	st := &hookStore{in: in}
	log := zaptest.NewLogger(t).Named(name)
	pub, err := notify.New(w.notifyConfig(name), st, log)
	if err != nil {
		t.Fatal(err)
	}
	pc := w.pollerConfig(st)
	pc.Waker, pc.Log = pub, log
	p, err := poller.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	rt := w.sim.Transport()
	if cp != nil && cp.midPoll != nil {
		rt = &trapTransport{in: in, cp: cp, next: rt}
	}
	lister := w.clientOn(rt)
	if err := p.SetTargets(w.specs(lister, func(l poller.Lister) poller.Lister {
		return &recLister{inst: name, j: j, l: l}
	})); err != nil {
		t.Fatal(err)
	}
	q, err := work.NewQueue(js, w.wcfg)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := work.NewWorker(js, w.wcfg, p, w.services, log)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]proxy.Target{}
	for _, tg := range w.targets {
		byKey[tg.Key()] = tg
	}
	var pubs sync.WaitGroup
	sched := poller.NewScheduler(poller.RealClock{}, time.UTC, func(tick poller.Tick) {
		// Dispatch must not block the scheduler's loop. A tick that
		// cannot be queued (no quorum, a closed connection) is lost as
		// a skipped one: the next tick lists everything again.
		pubs.Go(func() {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			if _, err := q.Publish(pctx, byKey[tick.Key], tick); err != nil {
				in.tickErrs.Add(1)
			}
		})
	}, nil)
	now := time.Now()
	for _, tg := range w.targets {
		sched.Set(tg.Key(), poller.Spread(tg.Key(), cron.ConstantDelaySchedule{Delay: time.Second}, now, 0))
	}
	go func() {
		defer close(in.done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = sched.Run(ctx) })
		wg.Go(func() { _ = wk.Run(ctx) })
		wg.Go(func() {
			if err := pub.Run(ctx); err != nil {
				t.Errorf("%s: publisher: %v", name, err)
			}
		})
		wg.Wait()
		pubs.Wait()
	}()
	t.Cleanup(in.stop)
	return in
}

// stop stops the instance gracefully: the worker hands its Services
// over, the store writes what it held back, the connections close.
func (in *instance) stop() {
	in.cancel()
	<-in.done
	if !in.dead.Load() {
		_ = in.kv.Close()
	}
	in.nc.Close()
}

// kill makes the instance vanish as a dead host would: its connection
// closes first, so nothing is handed over, and its store refuses every
// call from then on. It does not wait for the instance's goroutines (a
// hook calls it from inside a poll); stop does.
func (in *instance) kill() {
	in.dead.Store(true)
	in.nc.Close()
	in.cancel()
}

// hookStore is the instance's kvstore.Store as its poller and publisher
// see it: refused once the instance is dead, and where a crashPoint is
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
