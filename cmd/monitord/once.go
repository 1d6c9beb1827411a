package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/state"
)

// cmdOnce polls every configured and discovered target once and prints the events as
// CloudEvents JSON lines on stdout (logs go to stderr). Without --dry-run
// it commits to the state file like the daemon and then drains the outbox
// to NATS once, for a bounded time (what is left waits for the next run).
// With --dry-run it reads no state and writes none, publishes nothing: every
// target is seen as for the first time, so it prints what a first poll
// would raise (failures within rules.baseline.alert_recent).
// Polls what it can: a Service whose discovery fails is named, and the
// other targets are polled. It ends with one summary line (onceSummary);
// exit 1 when a target's poll or a Service's discovery failed.
func cmdOnce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newConfigFlags("once", "once -c FILE [--dry-run] [overrides]", stderr)
	dry := f.fs.Bool("dry-run", false, "read and write no state, publish nothing; just print the events")
	if err := f.parse(args); err != nil {
		return helpOK(err)
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr may not sync

	clients, err := buildClients(cfg, nil, nil, nil)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range clients {
			c.client.Close()
		}
	}()
	out := &jsonLines{w: stdout}
	var (
		store poller.Store
		db    *state.DB
	)
	if *dry {
		if store, err = newMemStore(out); err != nil {
			return err
		}
	} else {
		if cfg.HA.Enabled {
			// The state is the cluster's; a poll outside the work queue
			// could race the Service's owner for Twilio's budget.
			return usagef("once: ha.enabled: the instances poll; use once --dry-run to see what a first poll raises")
		}
		if db, err = state.Open(cfg.State.Path, stateOptions(cfg)); err != nil {
			return err
		}
		defer db.Close()
		store = printingStore{db, out}
	}
	pcfg, err := pollerConfig(cfg, store, log)
	if err != nil {
		return err
	}
	p, err := poller.New(pcfg)
	if err != nil {
		return err
	}
	specs, failures, err := discoverOnce(ctx, cfg, clients, log)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	if err := p.SetTargets(specs); err != nil {
		return err
	}
	res := p.PollAll(ctx)
	if err := out.err; err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	summary, ok := onceSummary(len(specs), res, failures)
	fields := []zap.Field{zap.Int("events", out.n), zap.Bool("dry_run", *dry)}
	if ok {
		// Otherwise the summary is the error once returns: said once.
		fields = append(fields, zap.String("summary", summary))
	}
	log.Info("polled every target once", fields...)
	if db != nil && ctx.Err() == nil {
		if err := deliverOnce(ctx, cfg, db, log); err != nil {
			return err
		}
	}
	if !ok {
		return fmt.Errorf("once: %s", summary)
	}
	return nil
}

// onceSummary is once's last word, one readable line such as
//
//	polled 20 targets: 18 ok, 2 failed; discovery of KS… failed: list sessions: HTTP 404
//
// and whether everything was polled. Failed polls are detailed in the log
// lines above it, one per target.
func onceSummary(targets int, res poller.Results, failures []discoveryFailure) (string, bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "polled %s: %d ok", plural(targets, "target"), res[poller.ResultOK])
	// The poller's results in a fixed order, worded for a reader.
	for _, r := range []struct{ key, text string }{
		{poller.ResultError, "failed"},
		{poller.ResultOutboxFull, "not committed (outbox full)"},
		{poller.ResultStateError, "state error"},
		{poller.ResultPanic, "panicked"},
		{poller.ResultCancelled, "cancelled"},
	} {
		if n := res[r.key]; n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, r.text)
		}
	}
	for _, f := range failures {
		// The refresh error starts with its Service already.
		reason := strings.TrimPrefix(f.Err.Error(), "discover "+f.ServiceSID+": ")
		fmt.Fprintf(&b, "; discovery of %s failed: %s", f.ServiceSID, reason)
	}
	return b.String(), res[poller.ResultOK] == targets && len(failures) == 0
}

// deliverOnce runs the publisher until the outbox is empty or
// poll.shutdown_timeout passes. Undelivered events stay in the outbox.
func deliverOnce(ctx context.Context, cfg *config.Config, db *state.DB, log *zap.Logger) error {
	pub, err := notify.New(notifyConfig(cfg), db, log)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The wait ends at the deadline, or when Run returns early (a refused
	// login, a missing stream): its error is then the one to report.
	wctx, stopWait := context.WithTimeout(rctx, cfg.Poll.ShutdownTimeout)
	defer stopWait()
	done := make(chan error, 1)
	go func() {
		done <- pub.Run(rctx)
		stopWait()
	}()
	werr := pub.WaitEmpty(wctx)
	cancel()
	if rerr := <-done; rerr != nil {
		return rerr
	}
	if werr == nil || ctx.Err() != nil {
		return nil
	}
	if !errors.Is(werr, context.DeadlineExceeded) {
		return werr
	}
	if n, _, _, err := db.OutboxStats(); err == nil {
		log.Warn("outbox not drained; the events wait for the next run", zap.Int("events", n))
	}
	return nil
}

// jsonLines writes rendered events as JSON lines, one at a time.
type jsonLines struct {
	mu  sync.Mutex
	w   io.Writer
	n   int
	err error
}

func (p *jsonLines) print(msgs []event.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if p.err != nil {
			return
		}
		line := append(append(make([]byte, 0, len(m.Data)+1), m.Data...), '\n')
		_, p.err = p.w.Write(line)
		p.n++
	}
}

// printingStore commits to the state file and prints what was committed.
type printingStore struct {
	*state.DB
	out *jsonLines
}

func (s printingStore) Commit(key string, rev state.Revision, next state.Next, msgs []event.Message) (state.Revision, error) {
	nrev, err := s.DB.Commit(key, rev, next, msgs)
	if err != nil {
		return 0, err
	}
	s.out.print(msgs)
	return nrev, nil
}

// memStore is once --dry-run's store: state.Memory, which starts empty and
// keeps commits for the process's life, printing what is committed.
// Printing is the delivery: the events are removed once printed, as the
// publisher removes them after their PubAck, so they never fill its
// bounds.
type memStore struct {
	*state.Memory
	out *jsonLines
}

func newMemStore(out *jsonLines) (memStore, error) {
	m, err := state.NewMemory(state.Options{})
	if err != nil {
		return memStore{}, err
	}
	return memStore{m, out}, nil
}

func (s memStore) Commit(key string, rev state.Revision, next state.Next, msgs []event.Message) (state.Revision, error) {
	nrev, err := s.Memory.Commit(key, rev, next, msgs)
	if err != nil {
		return 0, err
	}
	s.out.print(msgs)
	for {
		recs, err := s.Peek(event.Position{}, 0)
		if err != nil || len(recs) == 0 {
			return nrev, err
		}
		ps := make([]event.Position, len(recs))
		for i, r := range recs {
			ps[i] = r.Position
		}
		if err := s.Delete(ps); err != nil {
			return nrev, err
		}
	}
}
