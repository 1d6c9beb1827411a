// Package schedule is monitord's one reader of cron specs. Config
// validation, the poller and discovery all parse with Parse, so what
// `monitord check` accepts is exactly what runs, and a spec robfig/cron
// would quietly change (`@every 100ms` running every second) or that never
// fires is refused everywhere with the same message.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed cron spec: Next(t) is its first activation after t.
// Parse returns robfig/cron's own types behind it, so a caller can still
// tell an "@every" schedule (cron.ConstantDelaySchedule) from a calendar
// one, as the poller's spread does.
type Schedule = cron.Schedule

// parser accepts five or six fields (seconds optional) and descriptors such
// as "@every 30s" and "@hourly", plus robfig's "TZ=Zone " prefix.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads spec. Besides robfig/cron's own syntax errors it refuses an
// "@every" interval that is not whole seconds of at least 1s and a spec
// that never fires. Each error quotes spec, so a caller only adds the key:
// `poll.schedule: "* * *" is not a cron spec: …`.
func Parse(spec string) (Schedule, error) {
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron spec: %w", spec, err)
	}
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		// robfig silently rounds "@every 100ms" up to 1s and truncates
		// "@every 1.5s" to 1s; say so instead of polling at another rate.
		if iv, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && (iv < time.Second || iv%time.Second != 0) {
			return nil, fmt.Errorf("%q: interval must be whole seconds, at least 1s", spec)
		}
	}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("%q never fires", spec)
	}
	return s, nil
}
