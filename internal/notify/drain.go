package notify

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
)

// noRetry turns off the client's own re-publish on "no responders": it
// would re-send an event after later ones. The drain replays from the
// outbox instead, in order.
var noRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

type inflight struct {
	pos event.Position
	id  string
	paf jetstream.PubAckFuture
}

// drainJetStream publishes the outbox until it is empty, keeping up to
// MaxPending publishes awaiting their PubAck. Acks are consumed in outbox
// order and their records deleted in batches of half a window, and at the
// end. On the first failed or timed-out publish it stops;
// nothing unacknowledged was deleted, so the next drain starts again at the
// first unacknowledged event, and the Nats-Msg-Id makes JetStream drop any
// copy it already stored. A drain reads the outbox once through, from the
// start: an event committed meanwhile behind the read position (a target
// earlier in the outbox's order) waits for the next drain, which its
// commit's Wake starts, so a target's events still leave in order.
func (p *Publisher) drainJetStream(ctx context.Context, js jetstream.JetStream) (err error) {
	limit := p.cfg.MaxPending
	deleteBatch := max(limit/2, 1)
	var (
		base      = make([]inflight, limit)
		window    = base[:0]
		acked     = make([]event.Position, 0, limit)
		after     event.Position
		exhausted bool
	)
	flush := func() error {
		if len(acked) == 0 {
			return nil
		}
		// The outbox's errors carry their own context ("peek outbox: …").
		if err := p.ob.Delete(acked); err != nil {
			return err
		}
		if p.obs != nil {
			p.obs.Published(len(acked))
		}
		acked = acked[:0]
		return nil
	}
	defer func() {
		// Acked events are delivered whatever went wrong after: delete them
		// so a replay does not need the duplicate window for them.
		if ferr := flush(); err == nil {
			err = ferr
		}
	}()
	for {
		// Refill at half empty rather than per ack: a Peek is a read
		// transaction, too dear to pay for every event.
		if !exhausted && len(window) <= limit/2 {
			want := limit - len(window)
			recs, err := p.ob.Peek(after, want)
			if err != nil {
				return err
			}
			exhausted = len(recs) < want
			// Move the window back to the start of its array.
			window = base[:copy(base, window)]
			for _, r := range recs {
				paf, err := js.PublishMsgAsync(natsMsg(r.Message), noRetry...)
				if err != nil {
					return fmt.Errorf("publish event %s: %w", r.ID, err)
				}
				window = append(window, inflight{pos: r.Position, id: r.ID, paf: paf})
				after = r.Position
			}
		}
		if len(window) == 0 {
			return nil
		}
		head := window[0]
		select {
		case <-head.paf.Ok():
		case err := <-head.paf.Err():
			return fmt.Errorf("publish event %s: %w", head.id, err)
		case <-ctx.Done():
			return ctx.Err()
		}
		acked = append(acked, head.pos)
		window = window[1:]
		// Delete in batches of half a window: a delete is a write
		// transaction with an fsync, and the other half keeps the server
		// busy meanwhile.
		if len(acked) >= deleteBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// drainCore publishes the outbox with core NATS: a batch is published,
// flushed (the server has read it), then deleted. Nothing confirms a
// subscriber got it, hence at-most-once.
func (p *Publisher) drainCore(ctx context.Context, nc *nats.Conn) error {
	seqs := make([]event.Position, 0, p.cfg.MaxPending)
	for {
		recs, err := p.ob.Peek(event.Position{}, p.cfg.MaxPending)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		seqs = seqs[:0]
		for _, r := range recs {
			if err := nc.PublishMsg(natsMsg(r.Message)); err != nil {
				return fmt.Errorf("publish event %s: %w", r.ID, err)
			}
			seqs = append(seqs, r.Position)
		}
		fctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
		err = nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if err := p.ob.Delete(seqs); err != nil {
			return err
		}
		if p.obs != nil {
			p.obs.Published(len(seqs))
		}
	}
}
