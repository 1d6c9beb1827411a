package poller

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/monitord/monitord/internal/proxy"
	"go.uber.org/zap"
)

// activate serves one due tick of the scheduler, from the scheduler's
// loop: it must not block. It takes the target's skip lock (an activation
// that finds the previous poll still queued or running is skipped and
// counted: the schedule cannot be met), applies the 404 back-off, and hands
// the poll to a goroutine that waits for a worker (giving up at shutdown or
// removal). The lock is held from here to the end of the poll, waiting
// for a worker included, and removal waits on it.
func (p *Poller) activate(tick Tick) {
	fired := time.Now()
	p.mu.Lock()
	e, ok := p.entries[tick.Key]
	runCtx, pollCtx, stopped := p.runCtx, p.pollCtx, p.stopped
	p.mu.Unlock()
	if !ok || stopped || e.gone.Err() != nil {
		return // removed after its tick was popped, or shutting down
	}
	if p.cfg.Dispatch != nil {
		// The skip lock and the 404 back-off belong to whoever polls:
		// the work queue refuses a tick whose previous task is queued or
		// running (one task per target).
		p.cfg.Dispatch(e.spec.Load().Target, tick)
		return
	}
	if !e.running.TryLock() {
		p.cfg.Observer.PollSkipped()
		p.cfg.Log.Debug("poll skipped: previous still queued or running", zap.String("target", e.key))
		return
	}
	n := e.runs.Add(1)
	e.mu.Lock()
	gone := e.polled && e.health.Failing && e.class == ClassNotFound
	e.mu.Unlock()
	if gone && n%uint64(p.cfg.NotFoundEvery) != 0 {
		e.running.Unlock()
		return // a 404 target is polled at a lower rate; see docs/daemon.md
	}
	p.polls.Add(1)
	go func() {
		defer p.polls.Done()
		defer e.running.Unlock()
		// The poll ends at removal, or when the shutdown grace is over.
		pctx, cancel := context.WithCancel(pollCtx)
		defer cancel()
		defer context.AfterFunc(e.gone, cancel)()
		p.work(runCtx, pctx, e, fired)
	}()
}

// Poll is the worker: one complete poll of target t for tick (list every
// page → diff → commit), through the same worker pool and per-Service
// budget as scheduled polls, never overlapping another poll of t. It
// returns the result (see the Result constants); an error only when t is
// not one of the current targets (SetTargets). ctx bounds the wait for a
// worker and the poll. A zero tick.Due means "now" (PollAll).
func (p *Poller) Poll(ctx context.Context, t proxy.Target, tick Tick) (string, error) {
	key := t.Key()
	p.mu.Lock()
	e, ok := p.entries[key]
	p.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("poll %s: not a current target", key)
	}
	// The poll runs until ctx ends or the target is removed, as a
	// scheduled poll does: removal cancels it and waits for it, so it can
	// never commit after the target's state is forgotten.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.gone, cancel)()
	if !lockEntry(pctx, &e.running) {
		// Removed (removal keeps the lock for good) or ctx ended.
		return ResultCancelled, nil
	}
	defer e.running.Unlock()
	fired := time.Now()
	if !tick.Due.IsZero() {
		fired = fired.Add(-p.cfg.SchedClock.Now().Sub(tick.Due)) // waited since the tick was due
	}
	return p.work(ctx, pctx, e, fired), nil
}

// lockEntry takes mu unless ctx ends first. A sync.Mutex cannot be waited
// on with a context, so it retries every 10 ms; it waits only while
// another poll of the same target runs, which the callers (one task per
// target, one planner action per target) make rare.
func lockEntry(ctx context.Context, mu *sync.Mutex) bool {
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for !mu.TryLock() {
		select {
		case <-ctx.Done():
			return false
		case <-tk.C:
		}
	}
	return true
}

// work waits for a worker, polls e on pctx and reports the result. The
// wait gives up when ctx is done (shutdown) or pctx is (removal). The
// caller holds e.running. A panic in the poll is recovered and counted
// here, inside the skip lock, so the lock is released normally and the
// target's next activation polls again.
func (p *Poller) work(ctx, pctx context.Context, e *entry, fired time.Time) (result string) {
	release, err := p.acquire(ctx, pctx.Done(), e.spec.Load().Target.ServiceSID)
	if err != nil {
		return ResultCancelled
	}
	// The poll may give its worker back early (before waiting for failure
	// reasons); the skip lock still keeps the target's next poll out.
	var once sync.Once
	free := func() { once.Do(release) }
	defer free()
	wait := time.Since(fired)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			result = ResultPanic
			p.cfg.Log.Error("poll panicked", zap.String("target", e.key),
				zap.String("panic", fmt.Sprint(r)), zap.ByteString("stack", debug.Stack()))
		}
		p.cfg.Observer.PollDone(result, wait, time.Since(start))
	}()
	return p.poll(pctx, e, free)
}
