package ha

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/twilio"
	"github.com/monitord/monitord/internal/work"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bucket is the state bucket of every scenario (each runs its own cluster).
const bucket = "monitord_state"

// workConfig is the work queue of the scenarios: the failover bound
// (PinnedTTL + AckWait) is 4 s. The task prefix is not the events' prefix:
// the events stream takes "<prefix>.>", which would overlap the task
// stream's "<prefix>.task.>" (JetStream refuses two streams on one subject).
func workConfig() work.Config {
	c := work.DefaultConfig()
	c.Prefix = "monitord_work"
	c.PinnedTTL = 2 * time.Second
	c.PullExpiry = time.Second
	c.AckWait = 2 * time.Second
	c.Concurrency = 4
	return c
}

// clock is the simulators' and pollers' time: the wall clock, which
// Twilio's sliding rate window needs, but one instant during the edits.
func (w *world) clock() time.Time {
	if ns := w.pinned.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Now()
}

// world is what the instances of a scenario share: the cluster, the
// simulator, and the test's own view of both (a store
// and a stream reader on a connection of their own, and a reference
// poller that says which events the listings should produce).
//
// The world changes only by the edits of step, one change per interaction
// per step, so whichever instance polls a target, and whenever, it derives
// the same events with the same ids as the reference does.
type world struct {
	t    *testing.T
	cl   *natstest.Cluster
	sim  *proxysim.Sim // what the instances list
	twin *proxysim.Sim // the same world for the reference: no faults, no limit, requests apart
	// pinned is the time of the edits under way (unix ns), 0 between
	// edits: the simulator and its twin stamp an edit with the same
	// instant, so they serve the same bytes.
	pinned atomic.Int64
	wcfg   work.Config

	targets  []proxy.Target
	services []string

	js  jetstream.JetStream // the test's own connection
	kv  *kvstore.Store      // the test's own view of the state
	ref *poller.Poller      // single-instance reference on memory state
	mem *state.Memory

	// rps and burst are every instance's budget per Service (zero: the
	// client's defaults).
	rps   float64
	burst int
	// pageSize is every client's page size (zero: the client's default);
	// a small one makes every listing several pages.
	pageSize int

	mu       sync.Mutex
	expected map[string]bool   // event ids the reference derived
	added    map[string]string // "<target key>#<step>": the interaction step added there
}

// worldOptions are the simulator's: 2 Services × 2 sessions × 2
// participants, a few interactions each, a little latency and a few 5xx
// that the clients' retries absorb.
func worldOptions() proxysim.Options {
	return proxysim.Options{Seed: 12, Services: 2, Sessions: 2, Participants: 2, Interactions: 4,
		Faults: proxysim.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond, ErrorRate: 0.02}}
}

// newWorld starts a 3-node cluster, the simulator, the streams and the
// bucket, and takes the reference's baseline.
func newWorld(t *testing.T, so proxysim.Options) *world {
	t.Helper()
	w := &world{t: t, wcfg: workConfig(), expected: map[string]bool{}, added: map[string]string{}}
	// The generated world is a day old: every backlog interaction has
	// reached its last status, so only the edits change it.
	so.Clock, so.Epoch = w.clock, time.Now().Add(-24*time.Hour).Truncate(time.Second)
	w.sim = proxysim.New(so)
	// Same seed, same clock, same edits: the same bytes (package proxysim).
	to := so
	to.Faults, to.RateLimit = proxysim.Faults{}, -1
	w.twin = proxysim.New(to)
	for _, st := range w.sim.Targets() {
		w.targets = append(w.targets, proxy.Target{Source: proxy.SourceParticipant,
			ServiceSID: st.ServiceSID, SessionSID: st.SessionSID, ParticipantSID: st.ParticipantSID})
	}
	w.services = w.sim.Services()
	w.cl = natstest.StartCluster(t, 3)

	w.connect(0, 1, 2)
	w.retry("create the work queue", func(ctx context.Context) error { return work.Ensure(ctx, w.js, w.wcfg, w.services) })
	w.retry("create the events stream", func(ctx context.Context) error {
		_, err := w.js.CreateOrUpdateStream(ctx, notify.ProvisionedStream(w.notifyConfig("ensure")))
		return err
	})
	w.retry("open the state bucket", func(ctx context.Context) error {
		var err error
		w.kv, err = kvstore.Open(ctx, w.js, kvstore.Config{Bucket: bucket, Replicas: 3})
		return err
	})

	var err error
	if w.mem, err = state.NewMemory(state.Options{}); err != nil {
		t.Fatal(err)
	}
	if w.ref, err = poller.New(w.pollerConfig(w.mem)); err != nil {
		t.Fatal(err)
	}
	if err := w.ref.SetTargets(w.specs(w.clientOf(w.twin), nil)); err != nil {
		t.Fatal(err)
	}
	w.reference()
	return w
}

// connect (re)opens the test's own connection on the given nodes only,
// in that order: a scenario that partitions a node keeps its view on the
// majority side (a client stays connected to a partitioned node).
func (w *world) connect(nodes ...int) {
	w.t.Helper()
	var urls []string
	for _, i := range nodes {
		urls = append(urls, w.cl.Nodes[i].URL())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(nc.Close)
	if w.js, err = jetstream.New(nc); err != nil {
		w.t.Fatal(err)
	}
	if w.kv != nil {
		w.retry("open the state bucket again", func(ctx context.Context) error {
			var err error
			w.kv, err = kvstore.Open(ctx, w.js, kvstore.Config{Bucket: bucket})
			return err
		})
	}
}

// retry runs f, each attempt bounded by 10 s, until it succeeds, and
// fails the test when it fails otherwise than transiently or is still
// failing after settle: a node of the loaded in-process cluster may answer
// the JetStream API with no responders or not in time, just after it
// started or while it elects a leader.
func (w *world) retry(what string, f func(context.Context) error) {
	w.t.Helper()
	deadline := time.Now().Add(settle)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if !transient(err) || time.Now().After(deadline) {
			w.t.Fatalf("%s: %v", what, err)
		}
		w.t.Logf("%s (trying again): %v", what, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// transient reports whether err is one the cluster's next answer may not
// repeat: nobody answered, not in time, or JetStream said it was
// temporarily unavailable (503, while it elects a leader).
func transient(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		(errors.As(err, &ae) && ae.Code == 503)
}

// notifyConfig is an instance's publisher: three replicas, short retries.
func (w *world) notifyConfig(name string) notify.Config {
	c := notify.DefaultConfig()
	c.URLs = strings.Split(w.cl.URLs(), ",")
	c.Name = name
	c.Stream.Replicas = 3
	c.ReconnectWait, c.MaxReconnectWait = 50*time.Millisecond, 500*time.Millisecond
	c.RetryInterval = 300 * time.Millisecond
	c.AckTimeout = 2 * time.Second
	return c
}

func (w *world) pollerConfig(st poller.Store) poller.Config {
	return poller.Config{
		DefaultSchedule: "@every 1s",
		Rules:           diff.DefaultRules(),
		Render:          func(e event.Event) (event.Message, error) { return event.Render(e, event.RenderOptions{}) },
		Store:           st,
		Clock:           w.clock,
		PollTimeout:     10 * time.Second,
	}
}

// client is a Twilio client of its own (its own per-Service budget, as
// an instance on its own host has) on the simulator, without a socket.
func (w *world) client() *twilio.Client { return w.clientOn(w.sim.Transport()) }

func (w *world) clientOf(sim *proxysim.Sim) *twilio.Client { return w.clientOn(sim.Transport()) }

// clientOn is a client whose requests go through rt.
func (w *world) clientOn(rt http.RoundTripper) *twilio.Client {
	w.t.Helper()
	cr := w.sim.Credentials() // the twin's are the same: same seed
	c, err := twilio.New(twilio.Config{BaseURL: "https://proxy.twilio.test", AccountSID: cr.AccountSID,
		APIKeySID: cr.APIKeySID, APIKeySecret: cr.APIKeySecret, PageSize: w.pageSize,
		HTTPClient:        &http.Client{Transport: rt},
		RequestsPerSecond: w.rps, Burst: w.burst,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, RequestTimeout: 5 * time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(c.Close)
	return c
}

// specs are the world's targets listed through l (wrapped by wrap unless nil).
func (w *world) specs(l poller.Lister, wrap func(poller.Lister) poller.Lister) []poller.TargetSpec {
	if wrap != nil {
		l = wrap(l)
	}
	out := make([]poller.TargetSpec, len(w.targets))
	for i, t := range w.targets {
		out[i] = poller.TargetSpec{Target: t, Lister: l, Origin: poller.OriginConfigured}
	}
	return out
}

// reference polls every target once with the reference poller and adds
// the events it derives to the expected ones.
func (w *world) reference() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res := w.ref.PollAll(ctx); res[poller.ResultOK] != len(w.targets) {
		w.t.Fatalf("reference poll: %v", res)
	}
	recs, err := w.mem.Peek(event.Position{}, 100000)
	if err != nil {
		w.t.Fatal(err)
	}
	ps := make([]event.Position, len(recs))
	w.mu.Lock()
	for i, r := range recs {
		w.expected[r.ID] = true
		ps[i] = r.Position
	}
	w.mu.Unlock()
	if err := w.mem.Delete(ps); err != nil {
		w.t.Fatal(err)
	}
}

// step changes the world (round n): a new interaction on half the
// targets, and on the others, the interaction the previous round added
// there fails, is delivered or is deleted. Every interaction changes once
// at most per step. Then the reference polls.
func (w *world) step(n int) {
	w.t.Helper()
	w.pinned.Store(time.Now().UnixNano())
	for i, t := range w.targets {
		st := proxysim.Target{ServiceSID: t.ServiceSID, SessionSID: t.SessionSID, ParticipantSID: t.ParticipantSID}
		prev, ok := w.added[fmt.Sprintf("%s#%d", t.Key(), n-1)]
		switch {
		case (i+n)%2 == 0:
			sid := w.edit(func(s *proxysim.Sim) (string, error) { return s.AddInteraction(st, "sent") })
			w.added[fmt.Sprintf("%s#%d", t.Key(), n)] = sid
		case ok && (i+n)%3 == 0:
			w.edit(func(s *proxysim.Sim) (string, error) { return "", s.SetStatus(prev, proxysim.LegOutbound, "failed") })
		case ok && (i+n)%3 == 1:
			w.edit(func(s *proxysim.Sim) (string, error) { return "", s.SetStatus(prev, proxysim.LegOutbound, "delivered") })
		case ok:
			w.edit(func(s *proxysim.Sim) (string, error) { return "", s.DeleteInteraction(prev) })
		}
	}
	w.pinned.Store(0)
	w.reference()
}

// edit makes one edit to the simulator and its twin, which must agree.
func (w *world) edit(f func(*proxysim.Sim) (string, error)) string {
	w.t.Helper()
	a, err := f(w.sim)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := f(w.twin)
	if err != nil {
		w.t.Fatal(err)
	}
	if a != b {
		w.t.Fatalf("the simulator and its twin disagree: %s and %s", a, b)
	}
	return a
}

// checkListings lists every target on the simulator the instances use
// (not the twin) and fails the test for one whose stored snapshot a diff
// of that listing would change.
func (w *world) checkListings() {
	w.t.Helper()
	c := w.client()
	rules := diff.DefaultRules()
	for _, t := range w.targets {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		listing, err := c.AppendInteractions(ctx, t, nil)
		cancel()
		if err != nil {
			w.t.Fatalf("list %s: %v", t.Key(), err)
		}
		var ts state.TargetState
		w.retry("load "+t.Key(), func(context.Context) error {
			var err error
			ts, _, err = w.kv.Load(t.Key()) // bounded by the store's own timeout
			return err
		})
		changes, next := diff.Diff(ts.Snapshot, listing, w.clock(), rules)
		if len(changes) > 0 || !next.Equal(ts.Snapshot) {
			w.t.Errorf("%s: stored state differs from the listing: %d changes", t.Key(), len(changes))
		}
	}
}

// settled waits until every target's stored snapshot equals the
// reference's (the listing's), nothing is pending in the bucket, and the
// events stream holds every expected id; then it checks that none is
// there twice.
func (w *world) settled(what string, d time.Duration) {
	w.t.Helper()
	w.await(what, d, w.unsettled)
	w.checkStream()
}

// polled waits until every target's stored snapshot equals the listing:
// polling goes on, whether or not the events have been published yet.
func (w *world) polled(what string, d time.Duration) {
	w.t.Helper()
	w.await(what, d, w.unpolled)
}

// await waits until cond says nothing is missing ("") and fails the test
// with what it said last once d has passed.
func (w *world) await(what string, d time.Duration, cond func() string) {
	w.t.Helper()
	var why string
	deadline := time.Now().Add(d)
	for {
		why = cond()
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not settled after %v: %s", what, d, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unsettled says what is not settled yet, or "".
func (w *world) unsettled() string {
	if why := w.unpolled(); why != "" {
		return why
	}
	recs, err := w.kv.Peek(event.Position{}, 10)
	if err != nil {
		return fmt.Sprintf("peek: %v", err)
	}
	if len(recs) > 0 {
		return fmt.Sprintf("%d+ events pending, first %s", len(recs), recs[0].ID)
	}
	ids, err := w.streamIDs()
	if err != nil {
		return fmt.Sprintf("read events stream: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.expected {
		if ids[id] == 0 {
			return fmt.Sprintf("event %s not in the stream", id)
		}
	}
	return ""
}

// unpolled names a target whose stored snapshot is not the listing's, or
// returns "".
func (w *world) unpolled() string {
	for _, t := range w.targets {
		want, _, err := w.mem.Load(t.Key())
		if err != nil {
			w.t.Fatal(err)
		}
		got, _, err := w.kv.Load(t.Key())
		if err != nil {
			return fmt.Sprintf("load %s: %v", t.Key(), err)
		}
		if !got.Snapshot.Equal(want.Snapshot) {
			return fmt.Sprintf("%s: stored snapshot of %d interactions, listing has %d (or differs)",
				t.Key(), got.Snapshot.Len(), want.Snapshot.Len())
		}
	}
	return ""
}

// checkStream fails the test for an id in the events stream more than
// once, or one that the reference never derived.
func (w *world) checkStream() {
	w.t.Helper()
	// A node of the loaded in-process cluster may briefly answer the API
	// with no responders: the read starts over until one completes.
	var ids map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if ids, err = w.streamIDs(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("read the events stream: %v", err)
		}
		w.t.Logf("reading the events stream (trying again): %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var bad []string
	for id, n := range ids {
		switch {
		case n > 1:
			bad = append(bad, fmt.Sprintf("%s ×%d", id, n))
		case !w.expected[id]:
			bad = append(bad, fmt.Sprintf("%s not expected", id))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		w.t.Errorf("events stream: %d ids wrong: %v", len(bad), bad)
	}
}

// streamIDs counts the Nats-Msg-Id of every message in the events stream.
func (w *world) streamIDs() (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, notify.DefaultStreamName)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	ids := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // a gap: the stream never deletes, but be exact
			}
			return nil, err
		}
		ids[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	return ids, nil
}

// isExpected reports whether the reference derived event id.
func (w *world) isExpected(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.expected[id]
}

// expectedCount is how many events the reference derived so far.
func (w *world) expectedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.expected)
}
