package poller

import (
	"context"
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

// HeartbeatConfig configures the heartbeat: every Interval an event of
// kind heartbeat on <prefix>.heartbeat.<Instance>, which downstream
// alerting uses as a dead man's switch.
type HeartbeatConfig struct {
	Interval  time.Duration // 0 disables
	Instance  string
	Publisher Publisher
	Outbox    OutboxStats // may be nil: depth 0
}

// heartbeats publishes a heartbeat every interval until ctx is done. A
// heartbeat that cannot be published is dropped: the next one says the
// same, newer. Failures are logged on change only.
func (p *Poller) heartbeats(ctx context.Context) {
	hb := p.cfg.Heartbeat
	t := time.NewTicker(hb.Interval)
	defer t.Stop()
	var seq uint64
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seq++
		err := p.beat(ctx, seq)
		switch {
		case err != nil && !failing:
			p.cfg.Log.Warn("heartbeat not published", zap.Error(err))
		case err == nil && failing:
			p.cfg.Log.Info("heartbeat published again")
		}
		failing = err != nil
	}
}

// Beat builds the heartbeat event for now; exported for `once` and tests.
func (p *Poller) Beat(now time.Time, seq uint64) event.Event {
	s := p.Summary()
	depth := 0
	if ob := p.cfg.Heartbeat.Outbox; ob != nil {
		if n, _, _, err := ob.OutboxStats(); err == nil {
			depth = n
		}
	}
	return event.Event{
		ID:   event.HeartbeatID(p.cfg.Heartbeat.Instance, now),
		Kind: event.Heartbeat,
		Time: now,
		Beat: &event.HeartbeatInfo{
			Instance:          p.cfg.Heartbeat.Instance,
			TargetsHealthy:    s.Healthy,
			TargetsFailing:    s.Failing,
			OutboxDepth:       depth,
			LastCompleteCycle: s.LastCycle,
			Seq:               seq,
		},
	}
}

func (p *Poller) beat(ctx context.Context, seq uint64) error {
	m, err := p.cfg.Render(p.Beat(p.cfg.Clock(), seq))
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Heartbeat.Interval)
	defer cancel()
	return p.cfg.Heartbeat.Publisher.PublishNow(pctx, m)
}
