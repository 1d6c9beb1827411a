package poller

import (
	"container/heap"
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Clock is the scheduler's time: when targets are due, and the timer that
// wakes the scheduler. The real clock is the default; a test or a
// benchmark injects one that runs hours of schedule in seconds.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed, as time.AfterFunc does.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop keeps f from being called if it has not been yet.
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Tick is one activation of a target: the instant its spread schedule made
// it due. Due depends only on the target's key, its schedule and the spread
// settings (never on when the process started or when the target was
// added), so every instance names the same activation the same way.
type Tick struct {
	Key string
	Due time.Time
}

// ID names the activation: what a work queue shared by several instances
// would deduplicate on.
func (t Tick) ID() string {
	return t.Key + "@" + strconv.FormatInt(t.Due.UnixMilli(), 10)
}

// Coalesce is the shortest sleep of the scheduler's loop: ticks that fall
// due within it are dispatched together, up to that much late. Spread
// targets are due at whole milliseconds, so at 100,000 targets on
// `@every 1m` a loop that woke for each instant would wake 1,000 times a
// second, and each wake of an idle process costs far more than the
// dispatch (BenchmarkSchedulerWallClock); a few milliseconds of lateness on
// a schedule of seconds or minutes is not seen.
const Coalesce = 5 * time.Millisecond

// Scheduler decides which target is due at which tick. It keeps the next
// due instant of every target in a min-heap (container/heap), so a
// dispatch costs O(log n): robfig/cron's own run loop re-sorts every entry
// at every wake, which at 10,000 targets was a sixth of the daemon's CPU
// (issue 16). robfig/cron still parses the specs and computes Next.
//
// Dispatch is called from the scheduler's loop, one due tick after
// another, without the scheduler's lock held; it must not block (the
// poller takes the target's skip lock and hands the poll to a goroutine).
// An item that is late is not caught up: its next tick is the first one
// after now, as with cron, so a stalled process does not burst on resume.
type Scheduler struct {
	clock    Clock
	loc      *time.Location
	dispatch func(Tick)
	every    time.Duration // period of onTick
	onTick   func(time.Time)

	mu    sync.Mutex
	items map[string]*item
	heap  dueHeap
	stale int           // heap slots of removed or rescheduled items
	wake  chan struct{} // buffered 1: something changed or a timer fired

	due []Tick // reused by the loop: ticks popped, dispatched unlocked
}

// item is one scheduled target.
type item struct {
	key   string
	sched cron.Schedule // spread already applied
	gen   uint64        // bumped by Set and Remove: older heap slots are stale
}

// slot is one heap entry: the due instant is kept in the slot itself (not
// behind the item pointer) so that sifting through 100,000 slots touches
// one contiguous array and no item; Set and Remove leave the old slot in
// place, marked stale by the generation, instead of keeping an index.
//
// every is the period of an @every schedule (gridSchedule), 0 for a
// calendar one: the next tick of a grid is then computed from the slot
// alone, without calling through the item's schedule, which at 100,000
// targets is a cache miss or two per dispatch.
type slot struct {
	due   int64 // unix nanos
	every int64 // nanos; 0: ask it.sched
	gen   uint64
	it    *item
}

// dueHeap orders slots by due instant (container/heap).
type dueHeap []slot

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(slot)) }
func (h *dueHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = slot{}
	*h = old[:len(old)-1]
	return s
}

func (sl slot) live() bool { return sl.it.gen == sl.gen }

// NewScheduler returns a scheduler with no items. dispatch receives every
// due tick; onTick (may be nil) is called from the loop every second as
// proof that it schedules (systemd's watchdog and /healthz hang off it).
// Times are evaluated in loc (calendar specs depend on it).
func NewScheduler(clock Clock, loc *time.Location, dispatch func(Tick), onTick func(time.Time)) *Scheduler {
	if clock == nil {
		clock = RealClock{}
	}
	if loc == nil {
		loc = time.UTC
	}
	return &Scheduler{clock: clock, loc: loc, dispatch: dispatch, every: time.Second, onTick: onTick,
		items: make(map[string]*item), wake: make(chan struct{}, 1)}
}

// Set schedules key on s (a spread schedule: see Spread and Aligned), or
// reschedules it if it is already known. Its first tick is the first due
// instant after now.
func (s *Scheduler) Set(key string, sched cron.Schedule) {
	now := s.clock.Now().In(s.loc)
	next := sched.Next(now)
	s.mu.Lock()
	it, ok := s.items[key]
	if ok {
		it.gen++
		s.stale++
	} else {
		it = &item{key: key}
		s.items[key] = it
	}
	it.sched = sched
	if !next.IsZero() {
		sl := slot{due: next.UnixNano(), gen: it.gen, it: it}
		if g, ok := sched.(gridSchedule); ok {
			sl.every = int64(g.every)
		}
		heap.Push(&s.heap, sl)
	}
	s.compactLocked()
	s.mu.Unlock()
	s.poke()
}

// Remove unschedules key; a tick already popped may still be dispatched
// once (the poller checks the target's context).
func (s *Scheduler) Remove(key string) {
	s.mu.Lock()
	if it, ok := s.items[key]; ok {
		it.gen++
		s.stale++
		delete(s.items, key)
		s.compactLocked()
	}
	s.mu.Unlock()
}

// compactLocked drops the stale slots once they are half the heap, so
// that a discovery churning through targets cannot grow it without bound.
func (s *Scheduler) compactLocked() {
	if s.stale < 64 || s.stale < len(s.heap)/2 {
		return
	}
	live := s.heap[:0]
	for _, sl := range s.heap {
		if sl.live() {
			live = append(live, sl)
		}
	}
	clear(s.heap[len(live):])
	s.heap, s.stale = live, 0
	heap.Init(&s.heap)
}

// Len is the number of scheduled items.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run dispatches due ticks until ctx is done, then returns nil. It starts
// no goroutine of its own (the clock's timer only wakes it).
func (s *Scheduler) Run(ctx context.Context) error {
	nextBeat := s.clock.Now()
	for {
		now := s.clock.Now().In(s.loc)
		if !now.Before(nextBeat) {
			if s.onTick != nil {
				s.onTick(now)
			}
			nextBeat = now.Add(s.every)
		}
		wakeAt := s.fire(now)
		if wakeAt.IsZero() || nextBeat.Before(wakeAt) {
			wakeAt = nextBeat
		}
		d := wakeAt.Sub(now)
		if d < Coalesce {
			d = Coalesce
		}
		t := s.clock.AfterFunc(d, s.poke)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
		}
	}
}

// fire dispatches every item due at or before now, moves each to its next
// tick after now, and returns the earliest next due instant (zero when
// there is none).
func (s *Scheduler) fire(now time.Time) time.Time {
	nowNs := now.UnixNano()
	s.mu.Lock()
	s.due = s.due[:0]
	for len(s.heap) > 0 && s.heap[0].due <= nowNs {
		top := &s.heap[0]
		if !top.live() {
			heap.Pop(&s.heap)
			s.stale--
			continue
		}
		it := top.it
		s.due = append(s.due, Tick{Key: it.key, Due: time.Unix(0, top.due).In(s.loc)})
		if top.every > 0 {
			// The first grid instant after now: what gridSchedule.Next says.
			top.due += ((nowNs-top.due)/top.every + 1) * top.every
		} else {
			next := it.sched.Next(now)
			if next.IsZero() { // never fires again (schedule.Parse refuses such specs)
				heap.Pop(&s.heap)
				delete(s.items, it.key)
				continue
			}
			top.due = next.UnixNano()
		}
		heap.Fix(&s.heap, 0)
	}
	var next time.Time
	if len(s.heap) > 0 {
		next = time.Unix(0, s.heap[0].due)
	}
	s.mu.Unlock()
	for _, t := range s.due {
		s.dispatch(t)
	}
	return next
}
