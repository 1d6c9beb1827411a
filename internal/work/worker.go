package work

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Poller is one complete poll of a target for a tick; *poller.Poller is
// one. An error means the target is not one this instance knows.
type Poller interface {
	Poll(ctx context.Context, t proxy.Target, tick poller.Tick) (string, error)
}

// Refresher runs a Service's discovery refresh task (KindDiscover). A
// Poller that is also a Refresher gets them; a worker whose Poller is not
// terminates them. A refresh that fails is logged and acknowledged all the
// same: the next tick's task refreshes again, on the schedule; only one
// cut short by shutdown is handed back.
type Refresher interface {
	Refresh(ctx context.Context, service string, due time.Time) error
}

// Worker pulls the tasks of a set of Services and polls them. It pulls
// each Service through the Service's consumer in priority group Group:
// the server delivers to one pinned worker at a time and moves the pin
// to another when the owner has sent no pull request for PinnedTTL, so
// every instance runs a Worker for every Service and the Services are
// spread over the live instances without an election of our own.
type Worker struct {
	js       jetstream.JetStream
	cfg      Config
	poll     Poller
	services []string
	log      *zap.Logger

	pinMu sync.Mutex
	pins  map[string]string // by Service: the pin id of the last task delivered, while consuming

	onPinned func(service string) // may be nil; see OnPinned

	handover map[string]chan time.Duration // by Service: HandOver's requests, the hold-off
}

// HandOver asks the worker to give up service gracefully, to balance the
// Services over the instances: it stops pulling the Service's tasks, lets
// the polls under way finish and acknowledge (a poll cancelled would leave
// its task to wait out the ack wait before anyone polls the target), then
// unpins the consumer when it still holds the pin, and pulls nothing of the
// Service for holdOff, so that a worker of another instance, pulling
// already, gets the pin. Then it pulls again, as a standby that takes the
// Service over if its new owner dies. It returns false, doing nothing, when
// the worker does not serve service or a hand-over of it is under way. A
// request that finds the worker holding no pin is dropped.
func (w *Worker) HandOver(service string, holdOff time.Duration) bool {
	ch, ok := w.handover[service]
	if !ok {
		return false
	}
	select {
	case ch <- holdOff:
		return true
	default:
		return false
	}
}

// OnPinned sets f to be called when this worker is pinned for a Service
// anew (the first task with a pin id it has not seen), before that task
// is handled: the instance has just become the Service's owner, maybe
// taking it over from another. Set it before Run.
func (w *Worker) OnPinned(f func(service string)) { w.onPinned = f }

// NewWorker returns a worker polling through p the tasks of services (SIDs)
// in c's stream.
func NewWorker(js jetstream.JetStream, c Config, p Poller, services []string, log *zap.Logger) (*Worker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("work worker: nil poller")
	}
	for _, svc := range services {
		if err := proxy.CheckSID("service_sid", "KS", svc); err != nil {
			return nil, fmt.Errorf("work worker: %w", err)
		}
	}
	if log == nil {
		log = zap.NewNop()
	}
	ho := make(map[string]chan time.Duration, len(services))
	for _, svc := range services {
		ho[svc] = make(chan time.Duration, 1)
	}
	return &Worker{js: js, cfg: c, poll: p, services: slices.Clone(services), log: log, pins: map[string]string{},
		handover: ho}, nil
}

// Pin returns the pin id the server stamped on the last task of service
// delivered to this worker while it consumes, "" before the first one or
// after the consumption ended. The server pins one client per consumer, so
// a Pin equal to the consumer's PinnedClientID (its info) means this worker
// owns the Service now; a Pin that differs is one it held before.
func (w *Worker) Pin(service string) string {
	w.pinMu.Lock()
	defer w.pinMu.Unlock()
	return w.pins[service]
}

func (w *Worker) setPin(service, pin string) {
	w.pinMu.Lock()
	defer w.pinMu.Unlock()
	if pin == "" {
		delete(w.pins, service)
		return
	}
	w.pins[service] = pin
}

// Run serves every Service of the worker until ctx is done, then waits for
// the polls it started and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, svc := range w.services {
		wg.Go(func() { w.serve(ctx, svc) })
	}
	wg.Wait()
	return nil
}

// serve pulls svc's tasks until ctx is done. A consumer that cannot be
// found (no quorum, not created yet) is looked up again with back-off.
func (w *Worker) serve(ctx context.Context, svc string) {
	log := w.log.With(zap.String("service", svc))
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		holdOff, err := w.consume(ctx, svc, log)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			// Handed over: stay away while another instance's pull takes
			// the pin, then pull again as a standby.
			t := time.NewTimer(holdOff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = 100 * time.Millisecond
			continue
		}
		log.Warn("work consumer unavailable; retrying", zap.Error(err), zap.Duration("in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// consume runs one Consume of svc's consumer until ctx is done (nil), a
// hand-over is asked while it holds the pin (nil and the hold-off), or the
// consumption ends otherwise (an error).
func (w *Worker) consume(ctx context.Context, svc string, log *zap.Logger) (time.Duration, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cons, err := w.js.Consumer(lctx, w.cfg.Stream, ConsumerName(svc))
	cancel()
	if err != nil {
		return 0, fmt.Errorf("look up consumer %s: %w", ConsumerName(svc), err)
	}
	var (
		polls    sync.WaitGroup
		mu       sync.Mutex
		pin      string // the pin id of the last task delivered to us
		stopping bool   // set before polls.Wait: no poll starts after it
	)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopping {
			// Stop does not wait for a callback under way: a task
			// delivered now goes straight back for the next owner.
			_ = m.Nak()
			return
		}
		if id := m.Headers().Get("Nats-Pin-Id"); id != "" && id != pin {
			pin = id
			w.setPin(svc, id)
			if w.onPinned != nil {
				w.onPinned(svc)
			}
		}
		w.handle(ctx, svc, m, &polls, log)
	},
		jetstream.PullPriorityGroup(Group),
		jetstream.PullMaxMessages(w.cfg.Concurrency),
		jetstream.PullExpiry(w.cfg.PullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			log.Debug("work consume", zap.Error(err))
		}))
	if err != nil {
		return 0, fmt.Errorf("consume %s: %w", ConsumerName(svc), err)
	}
	var (
		gone    error
		holdOff time.Duration
	)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-cc.Closed():
			// The consumer was deleted, or the connection closed for good:
			// serve looks it up again rather than wait here on nothing.
			gone = fmt.Errorf("consume %s: stopped by the server or the connection", ConsumerName(svc))
			break wait
		case d := <-w.handover[svc]:
			mu.Lock()
			owner := pin != ""
			mu.Unlock()
			if owner {
				holdOff = d
				break wait
			}
			// Never pinned here: nothing to give; a request from before
			// this consumption is stale.
		}
	}
	cc.Stop()
	mu.Lock()
	stopping = true
	held := pin
	mu.Unlock()
	w.setPin(svc, "")
	// A hand-over leaves ctx alone: the polls under way finish and ack
	// before the pin moves, so two owners never poll at once.
	polls.Wait()
	if gone != nil {
		return 0, gone
	}
	w.release(svc, held, log)
	return holdOff, nil
}

// release hands the pin of svc over at once when this worker holds it, so
// a graceful stop fails over without waiting PinnedTTL. The pin is checked
// first because an unpin moves whoever holds it: a worker that never
// owned the Service must not take it from the owner.
func (w *Worker) release(svc, pin string, log *zap.Logger) {
	if pin == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, w.cfg.Stream)
	if err != nil {
		log.Debug("work unpin: look up stream", zap.Error(err))
		return
	}
	cons, err := s.Consumer(ctx, ConsumerName(svc))
	if err != nil {
		log.Debug("work unpin: look up consumer", zap.Error(err))
		return
	}
	// Looking the consumer up fetched its info: no second request.
	for _, g := range cons.CachedInfo().PriorityGroups {
		if g.Group == Group && g.PinnedClientID == pin {
			if err := s.UnpinConsumer(ctx, ConsumerName(svc), Group); err != nil {
				log.Debug("work unpin", zap.Error(err))
			}
			return
		}
	}
}

// handle starts the poll of one delivered task. The number of tasks in
// flight is bounded by the consumer's max_ack_pending, so it needs no
// limit of its own.
func (w *Worker) handle(ctx context.Context, svc string, m jetstream.Msg, polls *sync.WaitGroup, log *zap.Logger) {
	t, tick, discover, err := decodeTask(m.Data())
	if err == nil && t.ServiceSID != svc {
		err = fmt.Errorf("task of service %s on the subject of service %s", t.ServiceSID, svc)
	}
	if err != nil {
		// A task this worker cannot read never will be: terminate it
		// rather than redeliver it forever. The next tick queues a new one.
		log.Error("work: bad task dropped", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.TermWithReason(err.Error())
		return
	}
	if discover {
		w.handleDiscover(ctx, svc, m, tick.Due, polls, log)
		return
	}
	w.runTask(polls, m, log, func() (answer, string) {
		res, err := w.poll.Poll(ctx, t, tick)
		switch {
		case err != nil:
			log.Warn("work: task for a target this instance does not poll", zap.String("target", t.Key()), zap.Error(err))
			return answerTerm, "not a current target"
		case res == poller.ResultCancelled || ctx.Err() != nil:
			// Shutting down mid-poll: the next owner polls it now rather
			// than after the ack wait.
			return answerNak, ""
		}
		return answerAck, ""
	})
}

// answer is what the worker tells the server about a task it ran.
type answer int

const (
	answerAck  answer = iota // done
	answerNak                // shutting down: the next owner takes it now
	answerTerm               // never doable here: not redelivered
)

// runTask runs f in polls, telling the server the task is in progress
// while it runs, then answers m as f says (with term's reason). An ack
// that fails brings the task back after the ack wait: done again, a
// wasted poll or refresh, never a lost one.
func (w *Worker) runTask(polls *sync.WaitGroup, m jetstream.Msg, log *zap.Logger, f func() (answer, string)) {
	polls.Go(func() {
		stop := make(chan struct{})
		var beats sync.WaitGroup
		beats.Go(func() { w.inProgress(m, stop) })
		a, reason := f()
		close(stop)
		beats.Wait()
		switch a {
		case answerTerm:
			_ = m.TermWithReason(reason)
		case answerNak:
			_ = m.Nak()
		default:
			actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := m.DoubleAck(actx); err != nil {
				log.Debug("work: ack", zap.String("subject", m.Subject()), zap.Error(err))
			}
			cancel()
		}
	})
}

// inProgress tells the server that a poll is still running every third of
// the ack wait, so a long poll (many pages, a rate-limited Service) is not
// delivered to another worker while it runs.
func (w *Worker) inProgress(m jetstream.Msg, stop <-chan struct{}) {
	tk := time.NewTicker(w.cfg.AckWait / 3)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			_ = m.InProgress()
		}
	}
}

// handleDiscover runs one discovery refresh task of svc, as handle runs a
// poll: in progress while it runs, handed back at shutdown, acknowledged
// when done. A failed refresh is acknowledged too: the next tick of the
// entry's schedule refreshes again, as a failed refresh of one instance
// waits for its next tick.
func (w *Worker) handleDiscover(ctx context.Context, svc string, m jetstream.Msg, due time.Time, polls *sync.WaitGroup, log *zap.Logger) {
	r, ok := w.poll.(Refresher)
	if !ok {
		log.Error("work: discover task for a worker without discovery dropped", zap.String("subject", m.Subject()))
		_ = m.TermWithReason("no discovery here")
		return
	}
	w.runTask(polls, m, log, func() (answer, string) {
		err := r.Refresh(ctx, svc, due)
		if ctx.Err() != nil {
			return answerNak, ""
		}
		if err != nil {
			log.Warn("work: discovery refresh", zap.Error(err))
		}
		return answerAck, ""
	})
}
