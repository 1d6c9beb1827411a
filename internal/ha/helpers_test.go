package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/twilio"
	"github.com/monitord/monitord/internal/work"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testWork is a work queue with a failover bound (PinnedTTL + AckWait) of
// 4 s, so a takeover fits in a test.
func testWork(replicas int) work.Config {
	c := work.DefaultConfig()
	c.Prefix = "monitord_work"
	c.Replicas = replicas
	c.PinnedTTL = 2 * time.Second
	c.PullExpiry = time.Second
	c.AckWait = 2 * time.Second
	c.Concurrency = 4
	return c
}

// world is the simulator every instance of a test polls: a clock that runs
// with the wall clock until the test freezes it, so that at the end the
// stored state can be compared with a listing that no longer moves.
type world struct {
	sim    *proxysim.Sim
	url    string
	creds  proxysim.Credentials
	frozen atomic.Int64 // unix nanos; 0 while running
}

func newWorld(t *testing.T, o proxysim.Options) *world {
	t.Helper()
	w := &world{}
	o.Clock = w.now
	o.RateLimit = -1 // a frozen clock never slides the simulator's window
	w.sim = proxysim.New(o)
	srv := httptest.NewServer(w.sim)
	t.Cleanup(srv.Close)
	w.url, w.creds = srv.URL, w.sim.Credentials()
	return w
}

func (w *world) now() time.Time {
	if f := w.frozen.Load(); f != 0 {
		return time.Unix(0, f).UTC()
	}
	return time.Now().UTC()
}

func (w *world) freeze() { w.frozen.Store(time.Now().UnixNano()) }

func (w *world) client(t *testing.T) *twilio.Client {
	t.Helper()
	c, err := twilio.New(twilio.Config{BaseURL: w.url, AccountSID: w.creds.AccountSID, APIKeySID: w.creds.APIKeySID,
		APIKeySecret: w.creds.APIKeySecret, MaxAttempts: 2, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (w *world) targets() []proxy.Target {
	var out []proxy.Target
	for _, st := range w.sim.Targets() {
		out = append(out, proxy.Target{Source: proxy.SourceParticipant, ServiceSID: st.ServiceSID,
			SessionSID: st.SessionSID, ParticipantSID: st.ParticipantSID})
	}
	return out
}

// listing is one listing an instance made.
type listing struct {
	inst, service, target string
	start, end            time.Time
}

// pollLog records every listing of every instance.
type pollLog struct {
	mu   sync.Mutex
	list []listing
}

func (l *pollLog) add(x listing) { l.mu.Lock(); l.list = append(l.list, x); l.mu.Unlock() }

func (l *pollLog) snapshot() []listing {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.list)
	slices.SortFunc(out, func(a, b listing) int { return a.start.Compare(b.start) })
	return out
}

// pollers returns which instances listed service after since.
func (l *pollLog) pollers(service string, since time.Time) []string {
	var out []string
	for _, x := range l.snapshot() {
		if x.service == service && x.start.After(since) && !slices.Contains(out, x.inst) {
			out = append(out, x.inst)
		}
	}
	slices.Sort(out)
	return out
}

// overlap describes the first two listings of one Service by different
// instances at the same time, or "".
func (l *pollLog) overlap() string {
	ls := l.snapshot()
	for i, a := range ls {
		for _, b := range ls[i+1:] {
			if b.start.After(a.end) {
				break
			}
			if a.service == b.service && a.inst != b.inst {
				return a.service + " listed by " + a.inst + " and " + b.inst + " at once"
			}
		}
	}
	return ""
}

// recLister records each listing of its instance; armed, it holds the
// next one after the API answered, until its poll is cancelled: an
// instance caught mid-poll.
type recLister struct {
	inst string
	next poller.Lister
	log  *pollLog
	hold *hold
}

// hold catches one listing mid-poll.
type hold struct {
	mu     sync.Mutex
	armed  bool
	target string        // the target caught
	caught chan struct{} // closed when one is held
}

func (h *hold) arm() {
	h.mu.Lock()
	h.armed, h.caught = true, make(chan struct{})
	h.mu.Unlock()
}

func (r recLister) AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error) {
	start := time.Now()
	out, err := r.next.AppendInteractions(ctx, t, dst)
	r.log.add(listing{inst: r.inst, service: t.ServiceSID, target: t.Key(), start: start, end: time.Now()})
	r.hold.mu.Lock()
	catch := r.hold.armed
	if catch {
		r.hold.armed, r.hold.target = false, t.Key()
		close(r.hold.caught)
	}
	r.hold.mu.Unlock()
	if catch {
		<-ctx.Done() // the instance dies with this poll in its hands
		return dst, ctx.Err()
	}
	return out, err
}

// queued counts the events an instance committed, and its polls whose
// commit failed: a commit cut by a closed connection may have been stored
// all the same (its answer lost), so its events count as committed by
// nobody yet reach the stream.
type queued struct{ n, stateErrors atomic.Int64 }

func (q *queued) PollDone(result string, _, _ time.Duration) {
	if result == poller.ResultStateError {
		q.stateErrors.Add(1)
	}
}
func (q *queued) PollSkipped()                     {}
func (q *queued) EventsQueued(_ event.Kind, n int) { q.n.Add(int64(n)) }
func (q *queued) FailedQueued(string, int)         {}
func (q *queued) ReasonFetched(string)             {}

// instance is one monitord instance in HA mode, composed as the daemon
// composes it: a Node on its own connection, a poller whose ticks go to
// the Node, the publisher draining the shared outbox.
type instance struct {
	name    string
	hold    *hold // catches one listing mid-poll when armed
	nc      *nats.Conn
	node    *Node
	p       *poller.Poller
	pub     *notify.Publisher
	queued  *queued
	client  *twilio.Client // the instance's own, so its budget is its own
	stopped bool

	cancelNode, cancelPoll, cancelPub context.CancelFunc
	nodeDone, pollDone, pubDone       chan struct{}
}

func startInstance(t *testing.T, name string, cl *natstest.Cluster, w *world, wc work.Config, log *pollLog) *instance {
	t.Helper()
	return startInstanceWith(t, name, cl, w, wc, log, func(in *instance, client poller.Lister) {
		var specs []poller.TargetSpec
		for _, tg := range w.targets() {
			specs = append(specs, poller.TargetSpec{Target: tg, Lister: client})
		}
		if err := in.node.Targets(in.p).SetTargets(specs); err != nil {
			t.Fatal(err)
		}
	})
}

// startInstanceWith starts an instance whose targets wire gives its node
// and poller (the configured world's targets, or discovery), listing
// through client.
func startInstanceWith(t *testing.T, name string, cl *natstest.Cluster, w *world, wc work.Config, log *pollLog,
	wire func(in *instance, client poller.Lister)) *instance {
	t.Helper()
	zl := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name)
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
	node, err := Open(ctx, js, Config{Instance: name, Work: wc, CreateAssets: true, Log: zl,
		KV: kvstore.Config{Bucket: "monitord_state", Replicas: wc.Replicas}})
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	ncfg := notify.DefaultConfig()
	ncfg.URLs = strings.Split(cl.URLs(), ",")
	ncfg.Name = name
	ncfg.Stream.Replicas = wc.Replicas
	ncfg.RetryInterval = 200 * time.Millisecond
	pub, err := notify.New(ncfg, node.Store(), zl)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, nc: nc, node: node, pub: pub, queued: &queued{}, hold: &hold{}}
	in.p, err = poller.New(poller.Config{
		DefaultSchedule: "@every 1s", Spread: true, Rules: diff.DefaultRules(),
		Render: func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
		Store:  node.Store(), Waker: pub, Observer: in.queued, Clock: w.now, Dispatch: node.Dispatch,
		Log: zl.Named("poller"),
	})
	if err != nil {
		t.Fatal(err)
	}
	in.client = w.client(t)
	wire(in, recLister{inst: name, next: in.client, log: log, hold: in.hold})
	if err := node.EnsureServices(ctx); err != nil {
		t.Fatal(err)
	}
	run := func(f func(context.Context) error) (context.CancelFunc, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = f(ctx) }()
		return cancel, done
	}
	in.cancelPub, in.pubDone = run(pub.Run)
	in.cancelPoll, in.pollDone = run(in.p.Run)
	in.cancelNode, in.nodeDone = run(node.Run)
	t.Cleanup(in.stop)
	return in
}

// stop stops the instance in the daemon's order: the node (its workers
// poll through the poller), the poller, the publisher.
func (in *instance) stop() {
	if in.stopped {
		return
	}
	in.stopped = true
	in.cancelNode()
	<-in.nodeDone
	in.cancelPoll()
	<-in.pollDone
	in.cancelPub()
	<-in.pubDone
	in.nc.Close()
}

// kill closes the instance's NATS connection first, as a dead host's
// would close, and only then stops its parts: it hands nothing over.
func (in *instance) kill() {
	in.nc.Close()
	in.stop()
}

// streamEvents reads every event in the events stream: their ids in order.
func streamEvents(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var ids []string
	for _, e := range streamRecords(t, js) {
		ids = append(ids, e.ID)
	}
	return ids
}

// streamRecord is one event as the stream holds it.
type streamRecord struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		InteractionSID string `json:"interaction_sid"`
	} `json:"data"`
}

// streamRecords reads every event in the events stream, in stream order.
// A node of a loaded in-process cluster may briefly answer the API with no
// responders, or a fetch may time out: the read starts over until one
// completes. An event that is not what monitord publishes fails the test
// at once.
func streamRecords(t *testing.T, js jetstream.JetStream) []streamRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		recs    []streamRecord
		lastErr error
	)
	natstest.WaitFor(t, "the events stream read whole", 30*time.Second, func() bool {
		var bad error
		recs, bad, lastErr = readStream(ctx, js)
		if bad != nil {
			t.Fatal(bad)
		}
		if lastErr != nil {
			t.Logf("reading the events stream (trying again): %v", lastErr)
		}
		return lastErr == nil
	})
	return recs
}

// readStream reads the events stream once: bad is an event that is not
// what monitord publishes, err a read that did not complete.
func readStream(ctx context.Context, js jetstream.JetStream) (recs []streamRecord, bad, err error) {
	s, err := js.Stream(ctx, notify.DefaultStreamName)
	if err != nil {
		return nil, nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	n := int(info.State.Msgs)
	if n == 0 {
		return nil, nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{InactiveThreshold: 5 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	for len(recs) < n {
		b, err := c.Fetch(n-len(recs), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, nil, err
		}
		got := 0
		for m := range b.Messages() {
			got++
			var ce streamRecord
			if err := json.Unmarshal(m.Data(), &ce); err != nil {
				return nil, fmt.Errorf("event %s: %w", m.Subject(), err), nil
			}
			if h := m.Headers().Get(jetstream.MsgIDHeader); h != ce.ID {
				return nil, fmt.Errorf("event %s: Nats-Msg-Id %q, id %q", m.Subject(), h, ce.ID), nil
			}
			recs = append(recs, ce)
		}
		if err := b.Error(); err != nil {
			return nil, nil, err
		}
		if got == 0 {
			return nil, nil, fmt.Errorf("fetch returned nothing at %d of %d events", len(recs), n)
		}
	}
	return recs, nil, nil
}
