package activity

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// Class is why a target is due: the order in which the budget serves them.
type Class uint8

// Classes, in the order the budget serves them after the index.
const (
	ClassNew  Class = iota // its session's date_last_interaction moved
	ClassHot               // a leg still in flight: back-off from the last change
	ClassCold              // everything else: the safety interval
)

// String names the class as Stats, logs, metrics and /status show it.
func (c Class) String() string {
	switch c {
	case ClassNew:
		return "new"
	case ClassHot:
		return "hot"
	case ClassCold:
		return "cold"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Kind is what an Action asks for.
type Kind uint8

// Kinds of Action.
const (
	KindIndex Kind = iota + 1 // read the Service's sessions list, then call Indexed
	KindPoll                  // poll Action.Target
)

// Action is one thing to do now, from Next. Report its end with Done.
type Action struct {
	Kind   Kind
	Target proxy.Target // KindPoll
	Class  Class        // KindPoll: why the target is due
	Due    time.Time    // when it was due; the start minus Due is its lag
}

// ClassStats is what the planner kept, or could not keep, of one class.
type ClassStats struct {
	Polls int64 // actions started
	// Skipped counts whole intervals missed: an action that starts n
	// intervals after it was due skipped n polls. New activity has no
	// interval and never skips; it only lags.
	Skipped int64
	LagMax  time.Duration // the longest wait from due to start
	LagSum  time.Duration // over Polls, for the mean
}

// LagMean is the mean wait from due to start.
func (s ClassStats) LagMean() time.Duration {
	if s.Polls == 0 {
		return 0
	}
	return s.LagSum / time.Duration(s.Polls)
}

func (s *ClassStats) started(lag, interval time.Duration) {
	s.Polls++
	lag = max(lag, 0)
	s.LagSum += lag
	s.LagMax = max(s.LagMax, lag)
	if interval > 0 {
		s.Skipped += int64(lag / interval)
	}
}

// Stats is the planner's account of its budget, exported as metrics.
type Stats struct {
	Index, New, Hot, Cold ClassStats
	Moved                 int64 // sessions seen new or moved by the index
	HotTargets            int   // targets hot now
	ColdTargets           int   // targets cold now
}

// where a target waits.
const (
	qNone = iota // in flight (between Next and Done)
	qNew         // in the new-activity FIFO
	qHeap        // in the hot or the cold heap, by its class
)

type target struct {
	t        proxy.Target
	class    Class
	due      time.Time
	interval time.Duration // of the wait ending at due (0 for new activity)
	queue    int
	hidx     int    // index in its heap
	seq      uint64 // order given to New: equal due times are served in it

	observed   bool // a listing was ever seen
	seen       bool // a listing was seen since the last start
	fp         uint64
	step       uint // unchanged polls since the last change, for the back-off
	fails      uint // failed polls since the last listing seen
	pendingNew bool // its session moved while it was in flight
}

// Planner plans the polls of one Service. It is safe for concurrent use.
type Planner struct {
	cfg    Config
	budget *Budget

	mu        sync.Mutex
	byKey     map[string]*target
	bySession map[string][]*target
	index     map[string]time.Time // session SID → date_last_interaction
	indexed   bool
	indexing  bool
	nextIndex time.Time
	// indexStarted is when the index in flight started.
	indexStarted time.Time
	newQ         []*target
	hot, cold    targetHeap
	stats        Stats
	seq          uint64 // the last target's order (target.seq)
	// saved are the targets of a restored Snapshot not seen yet
	// (Restore): SetTargets gives them their saved class.
	saved map[string]Saved
}

// New returns a planner for targets, all of one Service, starting at now.
// Nothing is known of them yet: they start cold and due now, in the order
// given, so the first sweep runs as fast as the budget left by the index
// and new activity allows; the index is due now.
func New(cfg Config, targets []proxy.Target, now time.Time) (*Planner, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("activity config: %w", err)
	}
	budget := cfg.Budget
	if budget == nil {
		budget = NewBudget(cfg.Rate, cfg.Burst, now)
	}
	p := &Planner{
		cfg:       cfg,
		budget:    budget,
		byKey:     make(map[string]*target, len(targets)),
		bySession: map[string][]*target{},
		index:     map[string]time.Time{},
		nextIndex: now,
	}
	for i, t := range targets {
		if i > 0 && t.ServiceSID != targets[0].ServiceSID {
			return nil, fmt.Errorf("activity: target %s is not of Service %s", t.Key(), targets[0].ServiceSID)
		}
		if _, dup := p.byKey[t.Key()]; dup {
			return nil, fmt.Errorf("activity: target %s listed twice", t.Key())
		}
		r := &target{t: t, class: ClassCold, interval: cfg.ColdEvery, due: now, seq: uint64(i)}
		p.byKey[t.Key()] = r
		p.bySession[t.SessionSID] = append(p.bySession[t.SessionSID], r)
		p.push(r)
		p.seq = r.seq
	}
	return p, nil
}

// Budget is the Service's request budget: whatever makes the requests
// takes a token per request from it (Budget.Take).
func (p *Planner) Budget() *Budget { return p.budget }

// Next says what to do at now: an action, or (zero Action) how long to
// wait before asking again. It waits while the budget has no token, then
// serves the index when due, new activity, hot targets that are due, and
// cold targets that are due, in that order.
func (p *Planner) Next(now time.Time) (Action, time.Duration) {
	if w := p.budget.Wait(now); w > 0 {
		return Action{}, w
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.indexing && !now.Before(p.nextIndex) {
		p.indexing, p.indexStarted = true, now
		p.stats.Index.started(now.Sub(p.nextIndex), p.cfg.IndexEvery)
		return Action{Kind: KindIndex, Due: p.nextIndex}, 0
	}
	for len(p.newQ) > 0 {
		r := p.newQ[0]
		p.newQ[0] = nil
		p.newQ = p.newQ[1:]
		if r.queue != qNew {
			continue // served meanwhile by a poll nobody planned (a sweep)
		}
		return p.start(r, now, &p.stats.New), 0
	}
	if len(p.hot) > 0 && !p.hot[0].due.After(now) {
		return p.start(heap.Pop(&p.hot).(*target), now, &p.stats.Hot), 0
	}
	if len(p.cold) > 0 && !p.cold[0].due.After(now) {
		return p.start(heap.Pop(&p.cold).(*target), now, &p.stats.Cold), 0
	}
	next := now.Add(p.cfg.IndexEvery)
	if !p.indexing {
		next = p.nextIndex
	}
	for _, h := range []targetHeap{p.hot, p.cold} {
		if len(h) > 0 && h[0].due.Before(next) {
			next = h[0].due
		}
	}
	return Action{}, max(next.Sub(now), time.Nanosecond)
}

func (p *Planner) start(r *target, now time.Time, s *ClassStats) Action {
	r.queue, r.seen = qNone, false
	s.started(now.Sub(r.due), r.interval)
	return Action{Kind: KindPoll, Target: r.t, Class: r.class, Due: r.due}
}

// Done ends an action from Next at now; err is its failure, if any. A
// poll's listing has been seen by the Lister wrapper (Observe) by then,
// which decided the target's next class and due time; a failed poll keeps
// its class and is tried again after HotMin, doubling with each failure in
// a row up to HotMax (new, hot), or after HotMax (cold).
// A failed index is read again after HotMin.
func (p *Planner) Done(a Action, now time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.Kind == KindIndex {
		p.indexing = false
		switch {
		case err != nil:
			p.nextIndex = now.Add(p.cfg.HotMin)
		default:
			// The rhythm is kept from when it was due, or from when it
			// started if it started late: a late refresh is not followed
			// at once by another one catching up.
			p.nextIndex = a.Due.Add(p.cfg.IndexEvery)
			if late := p.indexStarted.Add(p.cfg.IndexEvery); late.After(p.nextIndex) {
				p.nextIndex = late
			}
		}
		return
	}
	r := p.byKey[a.Target.Key()]
	if r == nil || r.queue != qNone {
		return // removed, or already placed again
	}
	if err == nil && !r.seen {
		// Polled, but not through Lister: nothing was learnt. Wait the
		// same interval again rather than hand it out at once for ever.
		r.due = now.Add(max(r.interval, p.cfg.HotMin))
	}
	if err != nil {
		// Doubling from HotMin for new and hot targets: a target that
		// keeps failing (its session deleted, 404, until discovery drops
		// it an hour later) must not take a request every HotMin.
		retry := p.cfg.HotMin
		for k := uint(0); k < r.fails && retry < p.cfg.HotMax; k++ {
			retry *= 2
		}
		retry = min(retry, p.cfg.HotMax)
		if r.class == ClassCold {
			retry = p.cfg.HotMax
		}
		r.fails++
		r.due, r.interval = now.Add(retry), retry
	}
	if r.pendingNew {
		p.markNew(r, now)
		return
	}
	p.push(r)
}

// Indexed takes a complete sessions list of the Service, read at now. A
// session that is new, or whose date_last_interaction moved since the
// last list, makes its targets due now as new activity; the first list
// is the baseline and makes nothing due. It returns the new or moved
// sessions that have no target here: discovery's to list participants of.
func (p *Planner) Indexed(sessions []proxy.Session, now time.Time) (unknown []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := !p.indexed
	p.indexed = true
	seen := make(map[string]struct{}, len(sessions))
	for i := range sessions {
		s := &sessions[i]
		seen[s.SID] = struct{}{}
		prev, known := p.index[s.SID]
		p.index[s.SID] = s.DateLastInteraction
		if first || (known && prev.Equal(s.DateLastInteraction)) {
			continue
		}
		p.stats.Moved++
		rs := p.bySession[s.SID]
		if len(rs) == 0 {
			unknown = append(unknown, s.SID)
		}
		for _, r := range rs {
			switch {
			case r.queue == qNew || r.pendingNew:
			case r.queue == qNone:
				r.pendingNew = true // in flight: polled again when it ends
			default:
				p.remove(r)
				p.markNew(r, now)
			}
		}
	}
	for sid := range p.index {
		if _, ok := seen[sid]; !ok {
			delete(p.index, sid) // gone from the list: the index stays its size
		}
	}
	return unknown
}

func (p *Planner) markNew(r *target, now time.Time) {
	r.pendingNew = false
	r.queue, r.class, r.due, r.interval = qNew, ClassNew, now, 0
	p.newQ = append(p.newQ, r)
}

// Observe records a complete listing of t, seen at now: a listing that
// differs from the last one restarts the hot back-off; a listing with a
// leg in flight makes t hot (due after HotMin × 2^k, k the unchanged polls
// since the last change, up to HotMax), any other cold (due after
// ColdEvery). A poll the planner did not plan (a sweep) places t at once.
func (p *Planner) Observe(t proxy.Target, listing []proxy.Interaction, now time.Time) {
	fp := fingerprint(listing)
	hot := p.cfg.InFlight(listing, now)
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.byKey[t.Key()]
	if r == nil {
		return
	}
	// A poll the planner did not plan (a sweep) finds t waiting: take it
	// out before its class changes (the class names its heap) and place it
	// again below. From the new FIFO it is left behind: Next skips it.
	waiting := r.queue != qNone
	p.remove(r)
	if !r.observed || fp != r.fp {
		r.step = 0
	}
	r.observed, r.seen, r.fp, r.fails = true, true, fp, 0
	if hot {
		iv := p.cfg.HotMin
		for k := uint(0); k < r.step && iv < p.cfg.HotMax; k++ {
			iv *= 2 // by steps, not HotMin<<step: that overflows
		}
		iv = min(iv, p.cfg.HotMax)
		r.step++
		r.class, r.interval = ClassHot, iv
	} else {
		r.step = 0
		r.class, r.interval = ClassCold, p.cfg.ColdEvery
	}
	r.due = now.Add(r.interval)
	if waiting {
		p.push(r)
	}
}

// Stats returns the planner's account so far.
func (p *Planner) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	for _, r := range p.byKey {
		if r.class == ClassHot {
			s.HotTargets++
		} else if r.class == ClassCold {
			s.ColdTargets++
		}
	}
	return s
}

// ResetStats zeroes the account (not the plan), e.g. to measure a steady
// state after a warm-up sweep.
func (p *Planner) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = Stats{}
}

// Lister is what lists a target's interactions (*twilio.Client), the
// poller's own Lister: it appends the complete listing to dst.
type Lister interface {
	AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error)
}

// Lister returns l with every complete listing observed by the planner at
// clock(), the time it completed: the poller polls through it, so the
// planner learns each target's class without the poller knowing of it.
func (p *Planner) Lister(l Lister, clock func() time.Time) Lister {
	return observed{p: p, l: l, clock: clock}
}

type observed struct {
	p     *Planner
	l     Lister
	clock func() time.Time
}

// AppendInteractions lists through the wrapped Lister and shows the planner
// the listing's own items. Observe keeps only a fingerprint and the class,
// never the slice: the poller refills that array on its next poll.
func (o observed) AppendInteractions(ctx context.Context, t proxy.Target, dst []proxy.Interaction) ([]proxy.Interaction, error) {
	n := len(dst)
	listing, err := o.l.AppendInteractions(ctx, t, dst)
	if err == nil {
		o.p.Observe(t, listing[n:], o.clock())
	}
	return listing, err
}

// push puts r in its class's heap; new activity that ended up here (a
// failed poll) waits with the hot.
func (p *Planner) push(r *target) {
	r.queue = qHeap
	if r.class == ClassNew {
		r.class = ClassHot
	}
	if r.class == ClassHot {
		heap.Push(&p.hot, r)
	} else {
		heap.Push(&p.cold, r)
	}
}

func (p *Planner) remove(r *target) {
	if r.queue != qHeap {
		return
	}
	if r.class == ClassHot {
		heap.Remove(&p.hot, r.hidx)
	} else {
		heap.Remove(&p.cold, r.hidx)
	}
	r.queue = qNone
}

// targetHeap orders targets by due time (container/heap).
type targetHeap []*target

func (h targetHeap) Len() int { return len(h) }
func (h targetHeap) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h targetHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *targetHeap) Push(x any) {
	r := x.(*target)
	r.hidx = len(*h)
	*h = append(*h, r)
}
func (h *targetHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}
