package alertmgr

import (
	"context"
	"slices"
	"strings"
	"time"

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
