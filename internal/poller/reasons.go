package poller

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/twilio"
)

// MessageFetcher fetches the Message resource behind an interaction's leg,
// for the reason a failed message failed. *twilio.Client implements it,
// within its own budget (apart from the Proxy Services' buckets).
type MessageFetcher interface {
	FetchMessage(ctx context.Context, sid string) (twilio.Message, error)
}

// Reason fetch results, as reported to the Observer.
const (
	ReasonOK       = "ok"        // the Message's code is in the event
	ReasonNoCode   = "no_code"   // the Message carries no code
	ReasonNotFound = "not_found" // no such Message (any more)
	ReasonError    = "error"     // the fetch failed
	ReasonTimeout  = "timeout"   // not done within Config.ReasonTimeout
	ReasonSkipped  = "skipped"   // not tried: Config.MaxReasonWaits polls were waiting already
)

// ReasonResults lists every reason fetch result.
var ReasonResults = []string{ReasonOK, ReasonNoCode, ReasonNotFound, ReasonError, ReasonTimeout, ReasonSkipped}

// maxReasonWorkers bounds the goroutines of one poll's fetches. The
// client's in-flight cap bounds the requests; this only keeps a baseline
// with a thousand recent failures from starting a thousand goroutines.
const maxReasonWorkers = 8

// addReasons sets ErrorCode and ErrorMessage of every failed event whose
// leg is a Message, fetching them through f within ReasonTimeout. What has
// not arrived by then is left out for good: the event goes out without a
// reason, once, and no later event carries it. Ids are never touched, so
// which events fire and their ids do not depend on the reasons.
//
// The wait needs no worker: free gives the poll's worker back before it
// starts, so that polls of other targets go on while this one waits (a
// burst of failures, or a baseline full of recent ones, used to hold the
// whole pool for ReasonTimeout). The target itself stays locked until its
// commit, so its own next poll cannot overtake this one. At most
// Config.MaxReasonWaits polls wait at once: when they are all taken the
// events go out at once without reasons (ReasonSkipped), so that memory
// stays bounded however many targets fail together; the budget could not
// have served them within the bound anyway.
//
// It returns false when ctx (the poll's parent) was cancelled meanwhile:
// the poll must then commit nothing, so that the next start derives the
// same events again and fetches their reasons then.
func (p *Poller) addReasons(ctx context.Context, log *zap.Logger, f MessageFetcher, events []event.Event, free func()) bool {
	if f == nil {
		return true
	}
	if publish := p.rules.Load().publish; publish != nil && !publish[event.Failed] {
		return true // nobody would see the reasons
	}
	var todo []int
	for i := range events {
		if events[i].Kind == event.Failed && twilio.IsMessageSID(legResource(&events[i])) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return true
	}
	select {
	case p.reasonWaits <- struct{}{}:
		defer func() { <-p.reasonWaits }()
	default:
		for range todo {
			p.cfg.Observer.ReasonFetched(ReasonSkipped)
		}
		p.reasonLog.Do(func() {
			log.Warn("failed events sent without their reason: too many polls waiting for reasons",
				zap.Int("without", len(todo)), zap.Int("waiting", p.cfg.MaxReasonWaits))
		})
		return true
	}
	free()
	rctx, cancel := context.WithTimeout(ctx, p.cfg.ReasonTimeout)
	defer cancel()
	results := make([]string, len(todo))
	errs := make([]error, len(todo))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(todo), maxReasonWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				results[j], errs[j] = fetchReason(rctx, f, &events[todo[j]])
			}
		}()
	}
	for j := range todo {
		next <- j
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}

	var missing int
	var firstErr error
	for j, r := range results {
		p.cfg.Observer.ReasonFetched(r)
		if r == ReasonTimeout || r == ReasonError {
			missing++
			if firstErr == nil {
				firstErr = errs[j]
			}
		}
	}
	if missing > 0 {
		// Once a minute at most: a Messages API outage would otherwise
		// log a line per failed message. The metric counts every one.
		p.reasonLog.Do(func() {
			log.Warn("failed events sent without their reason", zap.Int("without", missing),
				zap.Int("failed", len(todo)), zap.Duration("timeout", p.cfg.ReasonTimeout), zap.Error(firstErr))
		})
	}
	return true
}

// fetchReason fetches the reason of one failed event into it.
func fetchReason(ctx context.Context, f MessageFetcher, e *event.Event) (string, error) {
	if ctx.Err() != nil {
		return ReasonTimeout, ctx.Err() // the wait ran out before its turn
	}
	m, err := f.FetchMessage(ctx, legResource(e))
	switch {
	case err == nil && m.ErrorCode == 0 && m.ErrorMessage == "":
		return ReasonNoCode, nil
	case err == nil:
		e.ErrorCode, e.ErrorMessage = m.ErrorCode, m.ErrorMessage
		return ReasonOK, nil
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout, err
	case twilio.IsNotFound(err):
		return ReasonNotFound, err
	default:
		return ReasonError, err
	}
}

// legResource is the resource SID of the event's leg.
func legResource(e *event.Event) string {
	if e.Leg == event.Inbound {
		return e.InboundResourceSID
	}
	return e.OutboundResourceSID
}
