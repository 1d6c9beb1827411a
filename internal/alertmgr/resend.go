package alertmgr

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// MaxActive bounds the alerts kept for re-sending. Beyond it the alerts
// closest to their endsAt are forgotten first (they were accepted once).
const MaxActive = 50_000

// active is the set of alerts posted and not yet past their endsAt.
// Alertmanager keeps alerts in memory only: one that restarts forgets
// every alert it had, and a page still waiting for its group_wait would
// never go out. Prometheus re-sends its firing alerts for that reason, and
// so does the bridge, every resend_interval. A re-sent alert has the same
// labels and endsAt, so Alertmanager merges it and pages no one twice.
type active struct {
	alerts map[string]Alert // by label set
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

func (s *active) add(alerts []Alert) {
	if s.alerts == nil {
		s.alerts = map[string]Alert{}
	}
	for _, a := range alerts {
		s.alerts[labelKey(a.Labels)] = a
	}
	if len(s.alerts) > MaxActive {
		all := s.list()
		for _, a := range all[:len(all)-MaxActive] {
			delete(s.alerts, labelKey(a.Labels))
		}
	}
}

// prune forgets alerts whose endsAt has passed: Alertmanager resolved them.
func (s *active) prune(now time.Time) {
	for k, a := range s.alerts {
		if !a.EndsAt.After(now) {
			delete(s.alerts, k)
		}
	}
}

// list returns the alerts, soonest endsAt first.
func (s *active) list() []Alert {
	out := make([]Alert, 0, len(s.alerts))
	for _, a := range s.alerts {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int { return a.EndsAt.Compare(b.EndsAt) })
	return out
}

// resend posts every active alert once, in batches. A failure is logged
// and counted; the next interval tries again. It runs in the bridge's
// loop: while Alertmanager is down, fetching new events waits for it (at
// most the post timeout per batch), which loses nothing.
func (b *Bridge) resend(ctx context.Context) {
	b.active.prune(b.cfg.Now())
	all := b.active.list()
	for len(all) > 0 && ctx.Err() == nil {
		n := min(len(all), b.cfg.BatchSize)
		if err := b.post.post(ctx, all[:n]); err != nil {
			if ctx.Err() == nil {
				b.cfg.Metrics.postErrors.Inc()
				b.log.Warn("re-send active alerts; trying again later", zap.Error(err))
			}
			return
		}
		b.cfg.Metrics.resent.Add(float64(n))
		all = all[n:]
	}
}

// restore rebuilds the alerts to re-send when the bridge starts: the
// events of its kinds that an earlier run posted (the durable consumer
// acknowledged them: at or below its ack floor) and whose alert has not
// ended (published within resolve_after). Without it the set lived in
// memory only, and a bridge restarted together with Alertmanager would
// never post those alerts again: a page still waiting for its group_wait
// would be lost. Events above the ack floor need nothing: the consumer
// delivers them again. endsAt is counted from the event's publication,
// not its first post: a few seconds early at most. It reads through an
// ordered consumer of its own, which the server removes once idle. A
// failure is logged and costs only the re-send of these alerts; it
// returns how many alerts it restored.
func (b *Bridge) restore(ctx context.Context, cons jetstream.Consumer) int {
	floor := cons.CachedInfo().AckFloor.Stream
	if floor == 0 {
		return 0
	}
	now := b.cfg.Now()
	start := now.Add(-b.cfg.ResolveAfter)
	oc, err := b.js.OrderedConsumer(ctx, b.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    b.subjects(),
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		b.log.Warn("restore active alerts: no consumer; only new alerts will be re-sent", zap.Error(err))
		return 0
	}
	for done := false; !done && ctx.Err() == nil; {
		var alerts []Alert
		batch, err := oc.Fetch(restoreBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.log.Warn("restore active alerts: read the stream; only new alerts will be re-sent", zap.Error(err))
			return 0
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil || md.Sequence.Stream > floor {
				done = true // not posted by an earlier run: delivered again
				continue
			}
			a, err := FromEvent(m.Data(), md.Timestamp, b.cfg.ResolveAfter)
			if err != nil {
				continue // terminated when it was delivered
			}
			alerts = append(alerts, a)
		}
		if n < restoreBatch {
			done = true // the end of the stream
		}
		b.active.add(alerts) // batch by batch: add keeps at most MaxActive
	}
	b.active.prune(now)
	restored := len(b.active.alerts)
	if restored > 0 {
		b.log.Info("restored active alerts to re-send", zap.Int("alerts", restored),
			zap.Time("published_since", start))
	}
	return restored
}

// restoreBatch is how many events restore reads per fetch.
const restoreBatch = 500
