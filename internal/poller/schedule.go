package poller

import (
	"hash/fnv"
	"time"

	"github.com/robfig/cron/v3"
)

// Interval is the period of a schedule: the @every delay, or for calendar
// specs the gap between the two activations that follow now. For irregular
// specs ("at 9:00 on weekdays") this is one of several gaps; it only bounds
// the spread, so any of them is good enough.
func Interval(s cron.Schedule, now time.Time) time.Duration {
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		return c.Delay
	}
	n1 := s.Next(now)
	if n1.IsZero() {
		return 0
	}
	n2 := s.Next(n1)
	if n2.IsZero() {
		return 0
	}
	return n2.Sub(n1)
}

// Offset is a target's stable phase within an interval: a hash of its key
// modulo the interval (capped by max when max > 0), in whole milliseconds.
// The same key gets the same offset in every process and after every
// restart, so polls of one target stay evenly spaced across restarts, and
// two instances of monitord agree on when a target is due.
func Offset(key string, interval, max time.Duration) time.Duration {
	if max > 0 && max < interval {
		interval = max
	}
	ms := uint64(interval / time.Millisecond)
	if ms == 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return time.Duration(h.Sum64()%ms) * time.Millisecond
}

// Spread returns s shifted by the target's offset.
//
// This is a cron.Schedule wrapper rather than a sleep inside the job: a sleep
// would hold the target's skip-if-running lock and a worker while doing
// nothing, look like a running poll to the overlap check, need its own
// cancellation on shutdown, and hide from the scheduler when the poll is
// really due — so lag ("polls behind schedule") could not be measured from
// the activation time. With the wrapper, cron fires the job exactly when the
// target is due.
//
// @every schedules are aligned to a grid anchored at the Unix epoch plus the
// offset. robfig's ConstantDelaySchedule counts from whenever the entry was
// added, so every target added at start-up would fire in the same instant;
// an offset added to it would cancel out (Next(t-o)+o = t+delay).
// Calendar specs are shifted in time: Next(t) = s.Next(t-o)+o.
func Spread(key string, s cron.Schedule, now time.Time, max time.Duration) cron.Schedule {
	iv := Interval(s, now)
	off := Offset(key, iv, max)
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		return gridSchedule{every: c.Delay, offset: off}
	}
	if off == 0 {
		return s
	}
	return shiftedSchedule{inner: s, offset: off}
}

// Aligned returns s without spreading; @every schedules are still put on the
// epoch grid so that the phase does not depend on when the target was added.
func Aligned(s cron.Schedule) cron.Schedule {
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		return gridSchedule{every: c.Delay}
	}
	return s
}

// gridSchedule fires at every instant epoch + offset + k*every.
type gridSchedule struct {
	every  time.Duration
	offset time.Duration
}

// Next returns the first grid instant strictly after t.
func (g gridSchedule) Next(t time.Time) time.Time {
	since := t.UnixNano() - int64(g.offset)
	k := since / int64(g.every)
	if since < 0 && since%int64(g.every) != 0 {
		k-- // floor division for times before the epoch
	}
	next := time.Unix(0, (k+1)*int64(g.every)+int64(g.offset))
	return next.In(t.Location())
}

// shiftedSchedule fires offset after every activation of inner.
type shiftedSchedule struct {
	inner  cron.Schedule
	offset time.Duration
}

// Next returns inner's activation after t-offset, shifted by offset.
func (s shiftedSchedule) Next(t time.Time) time.Time {
	n := s.inner.Next(t.Add(-s.offset))
	if n.IsZero() {
		return n
	}
	return n.Add(s.offset)
}
