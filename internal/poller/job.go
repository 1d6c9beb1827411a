package poller

import (
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
)

// newJob builds the cron job of a target.
//
// Chain order matters: cron.NewChain(a, b).Then(j) is a(b(j)), so the skip
// wrapper is outside and the recover wrapper inside it. A panic in the poll
// is caught before it unwinds through the skip wrapper, whose lock is then
// released normally. The other way round (robfig's own Recover outside its
// SkipIfStillRunning) a panic unwinds past the code that returns the skip
// token, and every later activation of the target is skipped for good.
func (p *Poller) newJob(e *entry) cron.Job {
	return cron.NewChain(
		skipIfRunning(&e.running, func() {
			p.cfg.Observer.PollSkipped()
			p.cfg.Log.Debug("poll skipped: previous still queued or running", zap.String("target", e.key))
		}),
		recoverPoll(p, e),
	).Then(cron.FuncJob(func() { p.scheduled(e) }))
}

// skipIfRunning is robfig's SkipIfStillRunning with a hook for counting
// skips, and the lock reachable from outside (removal waits on it).
func skipIfRunning(mu *sync.Mutex, skipped func()) cron.JobWrapper {
	return func(j cron.Job) cron.Job {
		return cron.FuncJob(func() {
			if !mu.TryLock() {
				skipped()
				return
			}
			defer mu.Unlock()
			j.Run()
		})
	}
}

// recoverPoll logs a panic with its target and counts it; the target's
// next activation polls again.
func recoverPoll(p *Poller, e *entry) cron.JobWrapper {
	return func(j cron.Job) cron.Job {
		return cron.FuncJob(func() {
			defer func() {
				if r := recover(); r != nil {
					p.cfg.Observer.PollDone(ResultPanic, 0, 0)
					p.cfg.Log.Error("poll panicked", zap.String("target", e.key),
						zap.String("panic", fmt.Sprint(r)), zap.ByteString("stack", debug.Stack()))
				}
			}()
			j.Run()
		})
	}
}

// scheduled serves one activation of e: it waits for a worker (giving up
// at shutdown or removal) and polls.
func (p *Poller) scheduled(e *entry) {
	fired := time.Now() // cron fires the job at the activation time
	p.mu.Lock()
	runCtx, stopped := p.runCtx, p.stopped
	p.mu.Unlock()
	if stopped || e.ctx.Err() != nil {
		return
	}
	n := e.runs.Add(1)
	e.mu.Lock()
	gone := e.polled && e.health.Failing && e.class == ClassNotFound
	e.mu.Unlock()
	if gone && n%uint64(p.cfg.NotFoundEvery) != 0 {
		return // a 404 target is polled at a lower rate; see docs/daemon.md
	}

	spec := e.spec.Load()
	release, err := p.acquire(runCtx, e.ctx.Done(), spec.Target.ServiceSID)
	if err != nil {
		return
	}
	defer release()
	wait := time.Since(fired)
	start := time.Now()
	result := p.poll(e.ctx, e)
	p.cfg.Observer.PollDone(result, wait, time.Since(start))
}
