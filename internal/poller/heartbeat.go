package poller

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/event"
)

// Publisher publishes a message directly, not through the outbox: a
// heartbeat is only worth anything now (notify.Publisher implements it).
type Publisher interface {
	PublishNow(ctx context.Context, m event.Message) error
}

// OutboxStats reports the outbox depth (*state.DB implements it).
type OutboxStats interface {
	OutboxStats() (events int, bytes int64, oldest time.Time, err error)
}

// Summarizer counts targets by health (*Poller implements it).
type Summarizer interface{ Summary() Summary }

// HeartbeatConfig configures the heartbeat: every Interval an event of
// kind heartbeat on <prefix>.heartbeat.<Instance>, which downstream
// alerting uses as a dead man's switch.
type HeartbeatConfig struct {
	Interval  time.Duration // required, > 0
	Instance  string
	Publisher Publisher   // required
	Render    RenderFunc  // required
	Outbox    OutboxStats // may be nil: depth 0
	// Owned, with several instances (ha.enabled), lists the Services this
	// instance polls now, for the heartbeat's owned_services; nil for a
	// single instance (the field is left out).
	Owned func() []string
	Log   *zap.Logger // may be nil
	// Clock stamps the events; default time.Now.
	Clock func() time.Time
	// Ticks is what waits out the interval; default RealClock.
	Ticks Clock
}

// Heartbeat is the dead man's switch, a part of its own: it reads the
// targets' health from a Summarizer and publishes directly (not through the
// outbox), so it keeps beating while polls are slow and says when they are
// not completing.
type Heartbeat struct {
	cfg     HeartbeatConfig
	targets Summarizer
}

// NewHeartbeat checks cfg and returns a heartbeat over targets.
func NewHeartbeat(cfg HeartbeatConfig, targets Summarizer) (*Heartbeat, error) {
	switch {
	case cfg.Interval <= 0:
		return nil, errors.New("heartbeat: Interval must be positive")
	case cfg.Publisher == nil:
		return nil, errors.New("heartbeat: Publisher is required")
	case cfg.Render == nil:
		return nil, errors.New("heartbeat: Render is required")
	case targets == nil:
		return nil, errors.New("heartbeat: no targets to summarize")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Ticks == nil {
		cfg.Ticks = RealClock{}
	}
	return &Heartbeat{cfg: cfg, targets: targets}, nil
}

// Run publishes a heartbeat every interval until ctx is done, then returns
// nil. A heartbeat that cannot be published is dropped: the next one says
// the same, newer. Failures are logged on change only.
func (h *Heartbeat) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	var seq uint64
	var failing bool
	// Beats stay on the grid of Run's start, as with a time.Ticker: a slow
	// publish delays one beat, not every later one.
	next := h.cfg.Ticks.Now()
	for {
		now := h.cfg.Ticks.Now()
		if next = next.Add(h.cfg.Interval); !next.After(now) {
			next = next.Add((now.Sub(next)/h.cfg.Interval + 1) * h.cfg.Interval)
		}
		t := h.cfg.Ticks.AfterFunc(next.Sub(now), func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		}
		seq++
		err := h.beat(ctx, seq)
		switch {
		case err != nil && !failing:
			h.cfg.Log.Warn("heartbeat not published", zap.Error(err))
		case err == nil && failing:
			h.cfg.Log.Info("heartbeat published again")
		}
		failing = err != nil
	}
}

// Beat builds the heartbeat event for now; exported for `once` and tests.
func (h *Heartbeat) Beat(now time.Time, seq uint64) event.Event {
	s := h.targets.Summary()
	depth := 0
	if ob := h.cfg.Outbox; ob != nil {
		if n, _, _, err := ob.OutboxStats(); err == nil {
			depth = n
		}
	}
	return event.Event{
		ID:   event.HeartbeatID(h.cfg.Instance, now),
		Kind: event.Heartbeat,
		Time: now,
		Beat: &event.HeartbeatInfo{
			Instance:          h.cfg.Instance,
			TargetsHealthy:    s.Healthy,
			TargetsFailing:    s.Failing,
			OutboxDepth:       depth,
			LastCompleteCycle: s.LastCycle,
			Seq:               seq,
			OwnedServices:     h.owned(),
		},
	}
}

func (h *Heartbeat) beat(ctx context.Context, seq uint64) error {
	m, err := h.cfg.Render(h.Beat(h.cfg.Clock(), seq))
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, h.cfg.Interval)
	defer cancel()
	return h.cfg.Publisher.PublishNow(pctx, m)
}

// owned is the heartbeat's owned_services: never nil in ha mode, so that
// an instance owning nothing says so with [].
func (h *Heartbeat) owned() []string {
	if h.cfg.Owned == nil {
		return nil
	}
	if o := h.cfg.Owned(); o != nil {
		return o
	}
	return []string{}
}
