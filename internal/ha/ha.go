// Package ha composes monitord's parts for several instances on NATS
// JetStream (issue 12, docs/ha.md): per-target state and pending events in
// a KeyValue bucket (internal/state/kvstore), the scheduler's ticks
// published as poll tasks into a work-queue stream (internal/work) instead
// of polled locally, and a work.Worker for every Service of the target set,
// so that the one instance the server pins for a Service polls it.
//
// The daemon and the tests build the same Node: Open it on a JetStream
// connection, give the poller Node.Dispatch as its Config.Dispatch and
// Node.Store as its store, pass the target set through Node.Targets, and
// run Node.Run next to the poller. Nothing here elects a leader.
package ha

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/work"
)

// Config configures a Node. Every instance of a deployment uses the same
// Work and KV settings; only Instance differs.
type Config struct {
	// Instance names this instance in the ownership records (o.<service>).
	Instance string
	// Work is the tasks stream and its consumers.
	Work work.Config
	// KV is the state bucket; the ownership records live in it too.
	KV kvstore.Config
	// CreateAssets creates the bucket, the stream and the consumers. Off,
	// Open and EnsureServices only check that they exist and fail naming
	// the first one missing (`monitord nats-assets` prints the commands).
	CreateAssets bool
	// Publishers is how many task publishes run at once (default 8): a
	// tick waits for the stream's acknowledgement, and the scheduler
	// must not.
	Publishers int
	// Queue bounds the ticks waiting for a publisher (default 4096); a
	// tick that finds it full is skipped and counted, as a tick that
	// finds its target's previous poll running.
	Queue int
	// OnOwned, when set, is called when this instance's worker is pinned
	// for a Service anew, before it runs that Service's first task: the
	// daemon spends the Service's burst there, so that a takeover cannot
	// put two owners' bursts into one of Twilio's 5 s windows.
	OnOwned func(service string)
	// Balance hands Services over to spread them evenly over the live
	// instances (docs/ha.md, "Balance"). Off, a Service stays with
	// whichever instance the server pinned until it stops or dies.
	Balance bool
	// Log may be nil.
	Log *zap.Logger
}

// Node is one instance's share of a deployment: its state store, its
// scheduler's task publishing, and its workers.
type Node struct {
	js    jetstream.JetStream
	cfg   Config
	log   *zap.Logger
	store *kvstore.Store
	kv    jetstream.KeyValue // the state bucket, for the ownership records
	queue *work.Queue

	ticks   chan task
	dropped atomic.Int64 // ticks skipped: the queue full
	failed  atomic.Int64 // ticks whose publish failed
	dropLog rate.Sometimes
	// ensureLog rate-limits the warning about consumers not ensured.
	ensureLog rate.Sometimes

	mu     sync.Mutex
	poller Poller   // set by Targets
	want   []string // Services served: of the target set and discovered, sorted
	tsvcs  []string // Services of the target set
	// discovered are the discover entries, by Service (Discover).
	discovered map[string]*discState
	workers    map[string]*serviceWork // by Service
	ensured    map[string]bool         // Services whose consumer was created or found
	runCtx     context.Context         // set while Run runs
	stopped    bool
	owned      map[string]Owner // Services this instance holds the pin of
	// confirmed is when the owner loop last read each Service's pinned
	// id: a belief not confirmed for a pinned TTL is dropped.
	confirmed map[string]time.Time
	removed   []string // Services removed while owned: their records go (owner loop)
	// liveWritten, liveOwned and liveServices are the last instance
	// record written (i.<instance>).
	liveWritten               time.Time
	liveOwned, liveServices   int
	lastHandover              time.Time      // the last hand-over to balance
	balanceRead               time.Time      // when balance last read the instance records
	handovers, instanceWrites atomic.Int64   // hand-overs to balance; instance records written
	runGroup                  sync.WaitGroup // the workers started under runCtx
}

type task struct {
	target proxy.Target
	tick   poller.Tick
}

type serviceWork struct {
	w      *work.Worker
	cancel context.CancelFunc
	done   chan struct{}
}

// Open opens the state bucket and the tasks stream on js, creating them
// when cfg.CreateAssets is set, and returns a Node with no Services. The
// connection stays the caller's.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Node, error) {
	if cfg.Instance == "" {
		return nil, errors.New("ha: instance name required")
	}
	if err := cfg.Work.Validate(); err != nil {
		return nil, fmt.Errorf("ha: %w", err)
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = 8
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.KV.Bucket == "" {
		cfg.KV.Bucket = kvstore.DefaultBucket
	}
	var (
		store *kvstore.Store
		kv    jetstream.KeyValue
	)
	err := retry(ctx, func(ctx context.Context) error {
		if !cfg.CreateAssets {
			if err := checkBucket(ctx, js, cfg.KV.Bucket); err != nil {
				return err
			}
			if err := checkStream(ctx, js, cfg.Work.Stream); err != nil {
				return err
			}
		} else if err := work.Ensure(ctx, js, cfg.Work, nil); err != nil {
			return err
		}
		var err error
		if store, err = kvstore.Open(ctx, js, cfg.KV); err != nil {
			return err
		}
		if kv, err = js.KeyValue(ctx, cfg.KV.Bucket); err != nil {
			return fmt.Errorf("open kv state bucket %s: %w", cfg.KV.Bucket, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	q, err := work.NewQueue(js, cfg.Work)
	if err != nil {
		return nil, err
	}
	return &Node{js: js, cfg: cfg, log: cfg.Log.Named("ha"), store: store, kv: kv, queue: q,
		ticks: make(chan task, cfg.Queue), dropLog: rate.Sometimes{Interval: time.Minute},
		ensureLog: rate.Sometimes{Interval: time.Minute},
		workers:   map[string]*serviceWork{}, discovered: map[string]*discState{}, ensured: map[string]bool{}, owned: map[string]Owner{},
		confirmed: map[string]time.Time{}}, nil
}

// attemptTimeout bounds one attempt at an asset request. The instances of
// a deployment start together and create the same assets at once; on a
// cluster that is still placing a new asset, an answer can go missing, and
// without a bound of its own one request would wait out the whole start-up
// deadline.
const attemptTimeout = 5 * time.Second

// retry runs f with attemptTimeout until it succeeds, fails otherwise than
// by that timeout or no responders (a missing asset, a refused request), or
// ctx ends.
func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil ||
			!(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Store is the state store every instance shares: the poller's Store, the
// publisher's Outbox, the target set's Keys and Forget.
func (n *Node) Store() *kvstore.Store { return n.store }

// Dispatch is the poller's Config.Dispatch: it queues the tick for
// publishing as a task and never blocks the scheduler. Every instance
// publishes every tick; the stream keeps one copy (Nats-Msg-Id is the
// tick's id) and refuses a tick whose target's task is still queued or
// running.
func (n *Node) Dispatch(t proxy.Target, tick poller.Tick) {
	select {
	case n.ticks <- task{t, tick}:
	default:
		n.dropped.Add(1)
		n.dropLog.Do(func() {
			n.log.Warn("poll task queue full: ticks skipped (NATS slow or unreachable)",
				zap.Int64("skipped_total", n.dropped.Load()))
		})
	}
}

// Setter is what the target set hands its targets to.
type Setter interface {
	SetTargets(specs []poller.TargetSpec) error
}

// Poller is the instance's poller (*poller.Poller): it takes the targets
// and polls the tasks this instance's workers receive.
type Poller interface {
	Setter
	work.Poller
}

// Targets returns the Setter the target set should use: it passes the
// targets on to p, then runs a worker for every Service among them (and
// stops the workers of Services no longer there), so the instance takes
// its share of every Service it knows. Call it once, before Run.
func (n *Node) Targets(p Poller) Setter {
	n.mu.Lock()
	n.poller = p
	n.mu.Unlock()
	return setter{n, p}
}

type setter struct {
	n    *Node
	next Setter
}

func (s setter) SetTargets(specs []poller.TargetSpec) error {
	if err := s.next.SetTargets(specs); err != nil {
		return err
	}
	var svcs []string
	for _, sp := range specs {
		svcs = append(svcs, sp.Target.ServiceSID)
	}
	slices.Sort(svcs)
	s.n.setServices(slices.Compact(svcs))
	return nil
}

// Services returns the Services this instance runs a worker for, sorted.
func (n *Node) Services() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.want)
}

// setServices records the Services to serve, and while Run runs, starts
// and stops workers to match. A consumer not created yet is created (or
// looked for) by EnsureServices, at start and then by Run's owner loop.
func (n *Node) setServices(svcs []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tsvcs = svcs
	n.wantLocked()
}

// wantLocked serves the Services of the target set and the discovered
// ones: a discovered Service's worker runs before it has any target,
// because its refresh tasks are delivered to it. n.mu is held.
func (n *Node) wantLocked() {
	want := slices.Clone(n.tsvcs)
	for svc := range n.discovered {
		want = append(want, svc)
	}
	slices.Sort(want)
	n.want = slices.Compact(want)
	if n.runCtx != nil && !n.stopped && n.poller != nil {
		n.syncWorkersLocked()
	}
}

// EnsureServices creates the consumer of every Service of the target set
// (CreateAssets), or checks that it exists, naming the first one missing.
func (n *Node) EnsureServices(ctx context.Context) error {
	n.mu.Lock()
	var todo []string
	for _, svc := range n.want {
		if !n.ensured[svc] {
			todo = append(todo, svc)
		}
	}
	n.mu.Unlock()
	var errs []error
	for _, svc := range todo {
		err := retry(ctx, func(ctx context.Context) error {
			if !n.cfg.CreateAssets {
				return checkConsumer(ctx, n.js, n.cfg.Work.Stream, svc)
			}
			if _, err := n.js.CreateOrUpdateConsumer(ctx, n.cfg.Work.Stream, work.ConsumerConfig(n.cfg.Work, svc)); err != nil {
				return fmt.Errorf("create consumer %s on stream %s: %w", work.ConsumerName(svc), n.cfg.Work.Stream, err)
			}
			return nil
		})
		if err != nil {
			// The other Services' consumers are ensured all the same: one
			// missing consumer must not hold back the rest.
			errs = append(errs, err)
			continue
		}
		n.mu.Lock()
		n.ensured[svc] = true
		n.mu.Unlock()
	}
	return errors.Join(errs...)
}

// syncWorkersLocked starts a worker for each wanted Service without one and
// stops those of Services no longer wanted. One worker per Service, so a
// change of the set leaves the other Services' pins alone.
func (n *Node) syncWorkersLocked() {
	for svc, sw := range n.workers {
		if !slices.Contains(n.want, svc) {
			sw.cancel()
			delete(n.workers, svc)
			if _, ok := n.owned[svc]; ok {
				delete(n.owned, svc)
				n.removed = append(n.removed, svc)
			}
		}
	}
	for _, svc := range n.want {
		if _, ok := n.workers[svc]; ok {
			continue
		}
		w, err := work.NewWorker(n.js, n.cfg.Work, workPoller{n, n.poller}, []string{svc}, n.log.With(zap.String("service", svc)))
		if err != nil {
			n.log.Error("ha: worker", zap.String("service", svc), zap.Error(err))
			continue
		}
		if n.cfg.OnOwned != nil {
			w.OnPinned(n.cfg.OnOwned)
		}
		wctx, cancel := context.WithCancel(n.runCtx)
		sw := &serviceWork{w: w, cancel: cancel, done: make(chan struct{})}
		n.workers[svc] = sw
		n.runGroup.Go(func() {
			defer close(sw.done)
			_ = w.Run(wctx)
		})
	}
}

// Run publishes the scheduler's ticks as tasks, runs a worker per Service
// and keeps this instance's ownership records, until ctx is done. Then it
// stops the workers (a poll under way finishes, or is handed back to the
// next owner when ctx's cancellation reaches it; each worker unpins the
// Service it owned) and removes its ownership and instance records. Stop
// it before the poller: its workers poll through the poller.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.runCtx != nil {
		n.mu.Unlock()
		return errors.New("ha: Run called twice")
	}
	if n.poller == nil {
		n.mu.Unlock()
		return errors.New("ha: Run before Targets: no poller")
	}
	n.runCtx = ctx
	n.syncWorkersLocked()
	n.mu.Unlock()

	var loops sync.WaitGroup
	for range n.cfg.Publishers {
		loops.Go(func() { n.publishTicks(ctx) })
	}
	loops.Go(func() { n.ownerLoop(ctx) })
	n.discoveryLoops(ctx, &loops)
	<-ctx.Done()
	n.mu.Lock()
	n.stopped = true
	for _, sw := range n.workers {
		sw.cancel()
	}
	n.mu.Unlock()
	n.runGroup.Wait()
	loops.Wait()
	n.dropOwnership()
	return nil
}

// publishTicks publishes queued ticks until ctx is done.
func (n *Node) publishTicks(ctx context.Context) {
	// A publish bounded well under the dedupe window: a copy published
	// after the window would queue the tick a second time.
	limit := min(5*time.Second, n.cfg.Work.Duplicates/4)
	for {
		select {
		case <-ctx.Done():
			return
		case tk := <-n.ticks:
			pctx, cancel := context.WithTimeout(ctx, limit)
			_, err := n.queue.Publish(pctx, tk.target, tk.tick)
			cancel()
			if err != nil && ctx.Err() == nil {
				// Another instance's copy may have queued it; if not,
				// the next tick does. Nothing is lost: the next poll
				// diffs Twilio's complete listing.
				n.failed.Add(1)
				n.dropLog.Do(func() {
					n.log.Warn("publish poll task", zap.String("tick", tk.tick.ID()), zap.Error(err),
						zap.Int64("failed_total", n.failed.Load()))
				})
			}
		}
	}
}

// TicksSkipped is how many ticks this instance could not queue (its
// publish queue full) or publish (NATS failing); another instance's copy
// of the tick may have been queued.
func (n *Node) TicksSkipped() int64 { return n.dropped.Load() + n.failed.Load() }

// Ready reports whether the state bucket answers, for /readyz.
func (n *Node) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := n.kv.Status(ctx); err != nil {
		return fmt.Errorf("kv bucket %s: %w", n.cfg.KV.Bucket, err)
	}
	return nil
}

// Owned returns the Services this instance owns now (holds the pin of),
// sorted, as last checked by the owner loop (every pull expiry).
func (n *Node) Owned() []Owner {
	n.mu.Lock()
	out := make([]Owner, 0, len(n.owned))
	for _, o := range n.owned {
		out = append(out, o)
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}
