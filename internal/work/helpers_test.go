package work

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig is a work queue with timings short enough for a test: the
// failover bound (PinnedTTL + AckWait) is 4s.
func testConfig() Config {
	c := DefaultConfig()
	c.PinnedTTL = 2 * time.Second
	c.PullExpiry = time.Second
	c.AckWait = 2 * time.Second
	c.Concurrency = 4
	return c
}

// sid builds a SID of prefix whose last digits are n.
func sid(prefix string, n int) string { return fmt.Sprintf("%s%032x", prefix, n) }

// makeTargets returns perService participant targets in each of services
// Services.
func makeTargets(services, perService int) []proxy.Target {
	var ts []proxy.Target
	for s := range services {
		for i := range perService {
			ts = append(ts, proxy.Target{Source: proxy.SourceParticipant, ServiceSID: sid("KS", s+1),
				SessionSID: sid("KC", s*1000+i), ParticipantSID: sid("KP", s*1000+i)})
		}
	}
	return ts
}

func servicesOf(ts []proxy.Target) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range ts {
		if !seen[t.ServiceSID] {
			seen[t.ServiceSID] = true
			out = append(out, t.ServiceSID)
		}
	}
	return out
}

// poll is one poll a test poller ran.
type poll struct {
	inst       string
	service    string
	tickID     string
	start, end time.Time
	result     string // poller.ResultOK, or ResultCancelled when its instance stopped
}

// journal records the polls of every instance of a test.
type journal struct {
	mu    sync.Mutex
	polls []poll
	cond  chan struct{} // closed and replaced at every record
}

func newJournal() *journal { return &journal{cond: make(chan struct{})} }

func (j *journal) add(p poll) {
	j.mu.Lock()
	j.polls = append(j.polls, p)
	close(j.cond)
	j.cond = make(chan struct{})
	j.mu.Unlock()
}

// snapshot returns the polls so far, by start time.
func (j *journal) snapshot() []poll {
	j.mu.Lock()
	out := append([]poll(nil), j.polls...)
	j.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a].start.Before(out[b].start) })
	return out
}

// waitUntil waits for the journal to satisfy cond, woken by every record
// rather than polled; it fails the test after d.
func (j *journal) waitUntil(t *testing.T, what string, d time.Duration, cond func([]poll) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		j.mu.Lock()
		ch := j.cond
		j.mu.Unlock()
		if cond(j.snapshot()) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// recPoller is an instance's poller: it records each poll and takes a
// little time over it, as a listing of a page or two would.
type recPoller struct {
	inst string
	j    *journal
	took time.Duration
}

func (p *recPoller) Poll(ctx context.Context, t proxy.Target, tick poller.Tick) (string, error) {
	start := time.Now()
	tm := time.NewTimer(p.took)
	defer tm.Stop()
	res := poller.ResultOK
	select {
	case <-ctx.Done():
		res = poller.ResultCancelled
	case <-tm.C:
	}
	p.j.add(poll{inst: p.inst, service: t.ServiceSID, tickID: tick.ID(), start: start, end: time.Now(), result: res})
	return res, nil
}

// instance is one monitord instance of a test: its own NATS connection,
// scheduler, queue and worker, as the daemon will wire them.
type instance struct {
	name   string
	nc     *nats.Conn
	w      *Worker
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	outcomes map[string][]Outcome // by tick id
	errs     []error
	pinned   map[string]time.Time // by Service: when OnPinned first said so
}

// pinnedAt is when the worker was first pinned for svc (zero: never).
func (in *instance) pinnedAt(svc string) time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.pinned[svc]
}

// startInstance starts an instance polling targets every interval.
func startInstance(t *testing.T, name, urls string, c Config, targets []proxy.Target, every time.Duration, j *journal) *instance {
	t.Helper()
	nc, err := nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(js, c)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(js, c, &recPoller{inst: name, j: j, took: 20 * time.Millisecond}, servicesOf(targets), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{name: name, nc: nc, w: w, cancel: cancel, done: make(chan struct{}), outcomes: map[string][]Outcome{},
		pinned: map[string]time.Time{}}
	w.OnPinned(func(svc string) {
		in.mu.Lock()
		defer in.mu.Unlock()
		if _, ok := in.pinned[svc]; !ok {
			in.pinned[svc] = time.Now()
		}
	})
	byKey := map[string]proxy.Target{}
	for _, tg := range targets {
		byKey[tg.Key()] = tg
	}
	var pubs sync.WaitGroup
	sched := poller.NewScheduler(poller.RealClock{}, time.UTC, func(tick poller.Tick) {
		// Dispatch must not block the scheduler's loop.
		pubs.Go(func() {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			o, err := q.Publish(pctx, byKey[tick.Key], tick)
			if err != nil && ctx.Err() != nil {
				return // the instance is stopping
			}
			if err != nil {
				// A stopped node or a closed connection: the tick is
				// lost, as a skipped one.
				in.mu.Lock()
				in.errs = append(in.errs, err)
				in.mu.Unlock()
				return
			}
			in.mu.Lock()
			in.outcomes[tick.ID()] = append(in.outcomes[tick.ID()], o)
			in.mu.Unlock()
		})
	}, nil)
	now := time.Now()
	for _, tg := range targets {
		sched.Set(tg.Key(), poller.Spread(tg.Key(), cron.ConstantDelaySchedule{Delay: every}, now, 0))
	}
	go func() {
		defer close(in.done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = sched.Run(ctx) })
		wg.Go(func() { _ = w.Run(ctx) })
		wg.Wait()
		pubs.Wait()
	}()
	t.Cleanup(in.stop)
	return in
}

// stop stops the instance gracefully and closes its connection.
func (in *instance) stop() {
	in.cancel()
	<-in.done
	in.nc.Close()
}

// kill closes the instance's connection first, as a dead host's would
// close, and only then stops its goroutines: it hands nothing over.
func (in *instance) kill() {
	in.nc.Close()
	in.cancel()
	<-in.done
}

// ensure creates the stream and consumers through a connection of its own.
func ensure(t *testing.T, cl *natstest.Cluster, c Config, targets []proxy.Target) {
	t.Helper()
	_, js := cl.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Ensure(ctx, js, c, servicesOf(targets)); err != nil {
		t.Fatalf("ensure: %v", err)
	}
}

// overlaps returns a description of the first two polls of one Service by
// different instances that ran at the same time, or "".
func overlaps(polls []poll) string {
	for i, a := range polls {
		for _, b := range polls[i+1:] {
			if b.start.After(a.end) {
				break // by start: no later poll can overlap a
			}
			if a.service == b.service && a.inst != b.inst {
				return fmt.Sprintf("%s polled by %s (%s) and %s (%s) at once",
					a.service, a.inst, a.tickID, b.inst, b.tickID)
			}
		}
	}
	return ""
}
