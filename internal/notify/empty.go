package notify

import (
	"context"
	"fmt"
	"sync"

	"github.com/monitord/monitord/internal/event"
)

// news tells WaitEmpty that something it waits on may have changed: a
// drain attempt ended, the connection went up or down, or Run started or
// stopped. It carries no verdict: the waiter looks at the outbox itself, so
// a commit that lands between a drain's end and the signal cannot make it
// report an outbox that is not empty.
type news struct {
	mu sync.Mutex
	ch chan struct{} // closed and dropped by announce; nil while nobody waits
}

// wait returns a channel closed at the next announce. Take it before
// looking at the outbox, so that news arriving after the look is not lost.
func (n *news) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// announce wakes every waiter. It never blocks, so the NATS client's
// callback goroutine may call it.
func (n *news) announce() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// WaitEmpty blocks until the outbox is empty and returns nil, or until ctx
// is done and returns ctx's error. It wakes the drain and then sleeps until
// a drain attempt ends or the connection changes, looking at the outbox
// again each time: nothing polls on a timer. While NATS is down it waits
// (Run reconnects in the background), so ctx bounds the wait; `once` uses
// it that way. Nil means the outbox was empty at one instant: a caller that
// wants it to stay empty stops committing first (the daemon stops the
// poller before it waits).
func (p *Publisher) WaitEmpty(ctx context.Context) error {
	return p.waitEmpty(ctx, false)
}

// WaitEmptyConnected is WaitEmpty for a shutdown: it gives up at once with
// ErrNotConnected when NATS is not connected (or Run is not running), as
// waiting for a server that is down only delays the exit; the outbox keeps
// the events for the next start.
func (p *Publisher) WaitEmptyConnected(ctx context.Context) error {
	return p.waitEmpty(ctx, true)
}

func (p *Publisher) waitEmpty(ctx context.Context, connected bool) error {
	for {
		changed := p.news.wait()
		recs, err := p.ob.Peek(event.Position{}, 1)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		if connected && !p.Connected() {
			return fmt.Errorf("wait for an empty outbox: %w", ErrNotConnected)
		}
		p.Wake()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
