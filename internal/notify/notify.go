// Package notify delivers monitord's events to NATS. It drains the durable
// outbox that polls commit into: in JetStream mode each event is published
// with Nats-Msg-Id = its deterministic id and removed from the outbox only
// after its PubAck, so a crash or an outage replays events and JetStream's
// duplicate window drops the copies. Publishes are asynchronous with a
// bounded window of acks in flight, so a burst drains fast, and they leave
// in outbox order on one connection, which keeps each target's events in
// the order they were committed (order across targets is not promised).
package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/event"
)

// Outbox holds the rendered events the Publisher drains: each target's
// pending events, in the order they were committed (state.DB and
// state.Memory implement it).
type Outbox interface {
	// Peek returns up to max records after position after (the zero
	// Position: from the first), each target's in order; order across
	// targets is not promised.
	Peek(after event.Position, max int) ([]event.Record, error)
	// Delete removes delivered records.
	Delete(ps []event.Position) error
}

// ErrNotConnected is returned by PublishNow while NATS is unreachable.
var ErrNotConnected = errors.New("nats not connected")

// Publisher drains an Outbox to NATS. Create it with New and run it with Run.
type Publisher struct {
	cfg  Config
	ob   Outbox
	log  *zap.Logger
	obs  Observer
	opts []nats.Option

	wake    chan struct{}
	stateCh chan struct{}
	closed  chan struct{} // the connection's last callback ran
	running atomic.Bool
	news    news // for WaitEmpty

	// link is the current connection (nil outside Run).
	link         atomic.Pointer[link]
	lastAsyncErr atomic.Pointer[string]

	// failing tracks a streak of failed drains, so it is logged once at its
	// start and once at its end.
	mu      sync.Mutex
	failing bool
}

type link struct {
	nc *nats.Conn
	js jetstream.JetStream // nil in core mode
}

// New checks cfg (defaults filled in for zero fields) and returns a
// Publisher; it does not connect. log may be nil.
func New(cfg Config, ob Outbox, log *zap.Logger) (*Publisher, error) {
	if ob == nil {
		return nil, errors.New("notify: nil outbox")
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Publisher{
		cfg:     cfg,
		ob:      ob,
		log:     log.Named("notify"),
		obs:     cfg.Observer,
		wake:    make(chan struct{}, 1),
		stateCh: make(chan struct{}, 1),
		closed:  make(chan struct{}, 1),
	}
	opts, err := p.natsOptions()
	if err != nil {
		return nil, err
	}
	p.opts = opts
	return p, nil
}

// Wake tells the Publisher a commit added events to the outbox. It never
// blocks.
func (p *Publisher) Wake() { p.kick(p.wake) }

// Connected reports whether the NATS connection is up (for /readyz).
func (p *Publisher) Connected() bool {
	l := p.link.Load()
	return l != nil && l.nc.IsConnected()
}

// PublishNow publishes m directly, not through the outbox: for heartbeats,
// which are worthless late. In JetStream mode it waits for the PubAck.
// It fails at once with ErrNotConnected while NATS is unreachable.
func (p *Publisher) PublishNow(ctx context.Context, m event.Message) error {
	l := p.link.Load()
	if l == nil || !l.nc.IsConnected() {
		return fmt.Errorf("publish %s: %w", m.Subject, ErrNotConnected)
	}
	msg := natsMsg(m)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	if l.js == nil {
		if err := l.nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		if err := l.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("publish %s: flush: %w", m.Subject, err)
		}
		return nil
	}
	if _, err := l.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s: %w", m.Subject, err)
	}
	return nil
}

// natsMsg wraps a rendered event with the headers subscribers and
// JetStream rely on.
func natsMsg(m event.Message) *nats.Msg {
	return &nats.Msg{
		Subject: m.Subject,
		Data:    m.Data,
		Header: nats.Header{
			jetstream.MsgIDHeader: []string{m.ID},
			"Content-Type":        []string{event.ContentType},
		},
	}
}

// Run connects, provisions or checks the stream, and drains the outbox on
// every Wake, reconnect and RetryInterval tick, until ctx is done (then it
// returns nil). It returns an error only for what waiting cannot fix, found
// at start: NATS refusing the credentials, JetStream off, the stream
// missing (with the command that creates it). Later the same problems are
// logged and retried.
// While NATS is down it waits without spinning; polling goes on and events
// wait in the outbox.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	defer p.running.Store(false)
	select {
	case <-p.closed: // left from an earlier Run
	default:
	}
	nc, err := p.connect()
	if err != nil {
		return err
	}
	l := &link{nc: nc}
	if p.cfg.Mode == ModeJetStream {
		l.js, err = jetstream.New(nc,
			// One slot more than the drain's own window, so the library
			// never stalls a publish: the drain does the bounding.
			jetstream.WithPublishAsyncMaxPending(p.cfg.MaxPending+1),
			jetstream.WithPublishAsyncTimeout(p.cfg.AckTimeout))
		if err != nil {
			nc.Close()
			return fmt.Errorf("jetstream: %w", err)
		}
	}
	p.link.Store(l)
	p.news.announce()
	defer func() {
		p.link.Store(nil)
		nc.Close()
		// The client runs callbacks on its own goroutine; wait for the
		// last one so nothing logs after Run returned.
		select {
		case <-p.closed:
		case <-time.After(5 * time.Second):
		}
		p.news.announce() // a WaitEmptyConnected sees that Run stopped
	}()

	provisioned := l.js == nil
	everProvisioned := provisioned
	timer := time.NewTimer(0)
	defer timer.Stop()
	var retryAt time.Time // while failing: no attempt before this
	for {
		if nc.IsConnected() && !time.Now().Before(retryAt) {
			err := p.attempt(ctx, l, &provisioned)
			p.news.announce()
			if ctx.Err() != nil {
				return nil
			}
			// A missing stream or JetStream off is fatal at start (a
			// config error to fix); once it worked, it is an operator
			// deleting the stream or a server in trouble: log and retry.
			var fatal *fatalError
			if errors.As(err, &fatal) && !everProvisioned {
				return err
			}
			everProvisioned = everProvisioned || provisioned
			delay := p.cfg.RetryInterval
			if copyInProcess(err) {
				// Several instances drain one outbox (docs/ha.md): the
				// stream is storing another publisher's copy of this very
				// event. Not a failure: look again once it is stored, and
				// the Nats-Msg-Id drops this copy then.
				delay = inProcessRetry
				retryAt = time.Now().Add(delay)
				p.log.Debug("event being stored by another publisher; draining again shortly", zap.Error(err))
			} else if err != nil {
				// Jitter keeps instances sharing a NATS from retrying in step.
				delay = delay/2 + rand.N(delay/2+1)
				retryAt = time.Now().Add(delay)
				p.failed(err)
			} else {
				retryAt = time.Time{}
				p.recovered()
			}
			resetTimer(timer, delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-p.stateCh:
			// A reconnect is news: try at once rather than at retryAt.
			retryAt = time.Time{}
		case <-timer.C:
			resetTimer(timer, p.cfg.RetryInterval)
		}
	}
}

// inProcessRetry is how soon a drain that met another publisher's copy in
// process tries again: about one replication round trip.
const inProcessRetry = 50 * time.Millisecond

// copyInProcess reports a clustered stream's refusal of an event whose
// Nats-Msg-Id another publish is proposing at that moment (409, error code
// 10158): with several instances draining one outbox, their copies of an
// event arrive within milliseconds of each other.
func copyInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10158
}

func (p *Publisher) attempt(ctx context.Context, l *link, provisioned *bool) error {
	if !*provisioned {
		if err := p.provision(ctx, l.js); err != nil {
			return err
		}
		*provisioned = true
	}
	if l.js == nil {
		return p.drainCore(ctx, l.nc)
	}
	err := p.drainJetStream(ctx, l.js)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		// No stream took the event: it may have been deleted. Check (or
		// create) it again before the next attempt.
		*provisioned = false
	}
	return err
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}

func (p *Publisher) failed(err error) {
	if p.obs != nil {
		p.obs.PublishError()
	}
	p.mu.Lock()
	first := !p.failing
	p.failing = true
	p.mu.Unlock()
	if first {
		p.log.Warn("delivering events failed; retrying, events wait in the outbox", zap.Error(err))
	} else {
		p.log.Debug("delivering events failed again", zap.Error(err))
	}
}

func (p *Publisher) recovered() {
	p.mu.Lock()
	was := p.failing
	p.failing = false
	p.mu.Unlock()
	if was {
		p.log.Info("delivering events again")
	}
}
