// Package alertmgr is the bridge from monitord's events to Prometheus
// Alertmanager: a durable JetStream pull consumer reads failed (and, by
// config, stuck and target_error) events, and each batch is posted to
// Alertmanager's v2 API. A message is acknowledged only after an
// Alertmanager accepted its alert, so an Alertmanager outage loses nothing:
// the batch is retried with capped, jittered backoff, and marked in
// progress at each attempt so that JetStream does not redeliver it
// meanwhile.
//
// Alertmanager then does what it is for: grouping (a carrier outage that
// fails 500 messages is one notification), inhibition, silences, and
// receivers for PagerDuty, Opsgenie, Slack or email.
package alertmgr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/event"
)

// Config configures a Bridge. Password and BearerToken are secrets: they
// go into the Authorization header and nowhere else.
type Config struct {
	// URLs are the Alertmanager base URLs; each batch is posted to all.
	URLs        []string
	Timeout     time.Duration
	User        string
	Password    string
	BearerToken string
	TLS         TLS

	// Stream is the JetStream stream of events, Prefix their first subject
	// token(s), Consumer the durable consumer's name.
	Stream   string
	Prefix   string
	Consumer string
	// Kinds are the event kinds made into alerts (failed, stuck,
	// target_error).
	Kinds []event.Kind

	// ResolveAfter: each alert's endsAt is its post time plus this.
	ResolveAfter time.Duration
	// BatchSize is the most events fetched and posted at once.
	BatchSize int
	// MinBackoff, MaxBackoff bound the delay between attempts of a batch.
	MinBackoff, MaxBackoff time.Duration
	// AckWait is the consumer's ack wait; see config.Alertmanager.
	AckWait time.Duration
	// ResendInterval is how often alerts still active (before their
	// endsAt) are posted again, for an Alertmanager that restarted and
	// forgot them; 0 disables.
	ResendInterval time.Duration
	// FetchWait is how long one pull waits for a batch to fill (default
	// 1s): the longest an event waits for company before it is posted.
	FetchWait time.Duration

	// Metrics receives counts; nil for none.
	Metrics *Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// TLS holds PEM file paths for HTTPS to Alertmanager.
type TLS struct {
	CAFile, CertFile, KeyFile string
}

// Bridge consumes events and posts alerts.
type Bridge struct {
	cfg  Config
	js   jetstream.JetStream
	post *poster
	log  *zap.Logger

	active active // touched by Run's goroutine only
}

// New checks cfg and prepares the HTTP client; js is a JetStream context
// on a connection the caller owns (and closes after Run returns).
func New(cfg Config, js jetstream.JetStream, log *zap.Logger) (*Bridge, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("alertmanager: no URLs")
	}
	if cfg.Stream == "" || cfg.Prefix == "" || cfg.Consumer == "" || len(cfg.Kinds) == 0 {
		return nil, errors.New("alertmanager: stream, prefix, consumer and kinds are required")
	}
	if cfg.ResolveAfter <= 0 || cfg.BatchSize < 1 || cfg.MinBackoff <= 0 || cfg.MaxBackoff < cfg.MinBackoff || cfg.AckWait <= 0 {
		return nil, errors.New("alertmanager: resolve_after, batch_size, backoffs and ack_wait must be positive")
	}
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	p, err := newPoster(cfg)
	if err != nil {
		return nil, err
	}
	return &Bridge{cfg: cfg, js: js, post: p, log: log}, nil
}

// subjects are the consumer's filter subjects: <prefix>.<kind>.> per kind.
func (b *Bridge) subjects() []string {
	out := make([]string, len(b.cfg.Kinds))
	for i, k := range b.cfg.Kinds {
		out[i] = b.cfg.Prefix + "." + string(k) + ".>"
	}
	slices.Sort(out)
	return out
}

// consumer creates the durable consumer, or updates an existing one to the
// configured kinds and ack wait. A new consumer starts resolve_after ago:
// older events would be resolved already, and on-call is not paged for
// history; an existing one keeps its place, so nothing published while
// the bridge was down is skipped.
func (b *Bridge) consumer(ctx context.Context) (jetstream.Consumer, error) {
	want := jetstream.ConsumerConfig{
		Durable:        b.cfg.Consumer,
		Description:    "monitord alertmanager: events posted to Alertmanager",
		FilterSubjects: b.subjects(),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		// Unlimited redeliveries: an event is acked once an
		// Alertmanager accepted it, or terminated when it can never be
		// an alert; it is never dropped because Alertmanager was down.
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 2*b.cfg.BatchSize),
	}
	c, err := b.js.Consumer(ctx, b.cfg.Stream, b.cfg.Consumer)
	switch {
	case err == nil:
		info := c.CachedInfo()
		want.DeliverPolicy = info.Config.DeliverPolicy
		want.OptStartTime = info.Config.OptStartTime
		want.OptStartSeq = info.Config.OptStartSeq
		if c, err = b.js.UpdateConsumer(ctx, b.cfg.Stream, want); err != nil {
			return nil, fmt.Errorf("update consumer %s: %w", b.cfg.Consumer, err)
		}
		return c, nil
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		start := b.cfg.Now().Add(-b.cfg.ResolveAfter)
		want.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		want.OptStartTime = &start
		if c, err = b.js.CreateConsumer(ctx, b.cfg.Stream, want); err != nil {
			return nil, fmt.Errorf("create consumer %s: %w", b.cfg.Consumer, err)
		}
		b.log.Info("created consumer", zap.String("consumer", b.cfg.Consumer), zap.Time("from", start),
			zap.Strings("subjects", want.FilterSubjects))
		return c, nil
	default:
		return nil, fmt.Errorf("consumer %s on stream %s: %w", b.cfg.Consumer, b.cfg.Stream, err)
	}
}

// Run consumes and posts until ctx is done, then returns nil. A batch being
// retried when ctx ends is left unacknowledged: JetStream redelivers it to
// the next run, and Alertmanager merges the repeat. Until the stream
// exists (the daemon creates it), Run waits and retries.
func (b *Bridge) Run(ctx context.Context) error {
	var cons jetstream.Consumer
	for attempt := 1; cons == nil; attempt++ {
		c, err := b.consumer(ctx)
		if err == nil {
			cons = c
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		d := backoff(attempt, b.cfg.MinBackoff, b.cfg.MaxBackoff)
		b.log.Warn("no consumer yet; retrying", zap.Error(err), zap.Duration("in", d))
		if !sleep(ctx, d) {
			return nil
		}
	}
	b.log.Info("posting events to Alertmanager", zap.Strings("urls", b.cfg.URLs),
		zap.Strings("subjects", b.subjects()), zap.Duration("resolve_after", b.cfg.ResolveAfter))
	lagChecked, resent := time.Time{}, time.Now()
	if b.cfg.ResendInterval > 0 && b.restore(ctx, cons) > 0 {
		resent = time.Time{} // post them at once: Alertmanager may have restarted too
	}
	for fails := 0; ctx.Err() == nil; {
		if b.cfg.ResendInterval > 0 && time.Since(resent) >= b.cfg.ResendInterval {
			resent = time.Now()
			b.resend(ctx)
		}
		batch, err := cons.Fetch(b.cfg.BatchSize, jetstream.FetchMaxWait(b.cfg.FetchWait))
		if err != nil {
			fails++
			d := backoff(fails, b.cfg.MinBackoff, b.cfg.MaxBackoff)
			b.log.Warn("fetch events; retrying", zap.Error(err), zap.Duration("in", d))
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && len(msgs) == 0 {
			fails++
			d := backoff(fails, b.cfg.MinBackoff, b.cfg.MaxBackoff)
			b.log.Warn("fetch events; retrying", zap.Error(err), zap.Duration("in", d))
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		fails = 0
		if len(msgs) > 0 {
			if !b.deliver(ctx, msgs) {
				return nil
			}
		}
		if now := time.Now(); now.Sub(lagChecked) > 5*time.Second || len(msgs) == 0 {
			lagChecked = now
			b.updateLag(ctx, cons)
		}
	}
	return nil
}

// deliver posts the alerts of msgs until an Alertmanager accepts them, then
// acknowledges every message. It returns false when ctx ended first.
func (b *Bridge) deliver(ctx context.Context, msgs []jetstream.Msg) bool {
	now := b.cfg.Now()
	alerts := make([]Alert, 0, len(msgs))
	keep := msgs[:0:0]
	for _, m := range msgs {
		a, err := FromEvent(m.Data(), now, b.cfg.ResolveAfter)
		if err != nil {
			// Not an event the bridge can read: redelivering it would
			// block nothing but could never succeed either.
			b.log.Error("event is not an alert; dropped", zap.String("subject", m.Subject()), zap.Error(err))
			b.cfg.Metrics.invalid.Inc()
			_ = m.Term()
			continue
		}
		alerts = append(alerts, a)
		keep = append(keep, m)
	}
	if len(alerts) == 0 {
		return true
	}
	for attempt := 1; ; attempt++ {
		// Tell JetStream the batch is being worked on: the ack wait
		// restarts, so a long outage does not cause redeliveries.
		if attempt > 1 {
			for _, m := range keep {
				_ = m.InProgress()
			}
		}
		err := b.post.post(ctx, alerts)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		b.cfg.Metrics.postErrors.Inc()
		d := backoff(attempt, b.cfg.MinBackoff, b.cfg.MaxBackoff)
		lvl := b.log.Warn
		if attempt > 3 {
			lvl = b.log.Error
		}
		lvl("no Alertmanager accepted the alerts; retrying", zap.Int("alerts", len(alerts)),
			zap.Int("attempt", attempt), zap.Duration("in", d), zap.Error(err))
		if !sleep(ctx, d) {
			return false
		}
	}
	for _, m := range keep {
		if err := m.Ack(); err != nil {
			// Redelivered later and posted again: Alertmanager merges it.
			b.log.Warn("ack", zap.String("subject", m.Subject()), zap.Error(err))
		}
	}
	b.active.add(alerts)
	b.cfg.Metrics.posted.Add(float64(len(alerts)))
	b.cfg.Metrics.lastPost.SetToCurrentTime()
	b.log.Debug("posted alerts", zap.Int("alerts", len(alerts)))
	return true
}

func (b *Bridge) updateLag(ctx context.Context, cons jetstream.Consumer) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		return
	}
	b.cfg.Metrics.pending.Set(float64(info.NumPending + uint64(info.NumAckPending)))
}

// sleep waits d or until ctx is done; false means ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
