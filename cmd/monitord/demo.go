package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/schedule"
)

// demoOptions are monitord demo's flags.
type demoOptions struct {
	duration    time.Duration // 0: until Ctrl-C
	seed        uint64
	targets     int
	failureRate float64
	schedule    string
	discover    bool
	verbose     bool
	ha          bool

	// tempParent is where the demo's temp dir is made ("" : the system's);
	// the test points it at its own dir to check that nothing is left.
	tempParent string
}

func parseDemoFlags(args []string, stderr io.Writer) (demoOptions, error) {
	o := demoOptions{}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	fs.Uint64Var(&o.seed, "seed", 1, "simulated world `seed`: the same seed gives the same SIDs and messages")
	fs.IntVar(&o.targets, "targets", 6, "participants in the simulated world at start (`N`, 1-200; with discovery, more come as sessions open)")
	fs.Float64Var(&o.failureRate, "failure-rate", 0.2, "fraction of simulated messages that fail or go undelivered (0-1)")
	fs.StringVar(&o.schedule, "schedule", "@every 2s", "poll schedule (cron spec) of every target")
	fs.BoolVar(&o.discover, "discover", true, "find targets by listing the simulated Services' sessions, which open and close as the demo runs; false: watch a fixed list")
	fs.BoolVar(&o.verbose, "verbose", false, "log the daemon at info level (default: warnings only)")
	fs.BoolVar(&o.ha, "ha", false, "three instances on a 3-node JetStream cluster; partway, the owner of a Service stops and another takes over")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: monitord demo [--ha] [--duration D] [--seed N] [--targets N] [--failure-rate F]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Runs the Proxy API simulator, an embedded NATS server with JetStream and the real")
		fmt.Fprintln(stderr, "monitord pipeline in one process, and prints each event as it comes back from NATS.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usagef("demo: %v", err)
	}
	switch {
	case fs.NArg() > 0:
		return o, usagef("demo: takes no arguments, got %q", fs.Args())
	case o.duration < 0:
		return o, usagef("demo: --duration must not be negative, got %s", o.duration)
	case o.targets < 1 || o.targets > maxDemoTargets:
		return o, usagef("demo: --targets must be between 1 and %d, got %d", maxDemoTargets, o.targets)
	case !(o.failureRate >= 0 && o.failureRate <= 1):
		return o, usagef("demo: --failure-rate must be between 0 and 1, got %g", o.failureRate)
	}
	if _, err := schedule.Parse(o.schedule); err != nil {
		return o, usagef("demo: --schedule %v", err)
	}
	return o, nil
}

// maxDemoTargets keeps the demo a demo: the simulator's rate limit and a
// readable screen both end well before this.
const maxDemoTargets = 200

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseDemoFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	// `monitord demo | head` or quitting a pager closes stdout. Without
	// this, Go kills the process with SIGPIPE on the next write and the
	// temp dir stays behind; with it, the write fails and the demo stops
	// cleanly.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	if o.ha {
		_, err = runDemoHA(ctx, o, stdout, stderr)
		return err
	}
	_, err = runDemo(ctx, o, stdout, stderr)
	return err
}

// runDemo runs the demo until ctx is done and returns what it saw. Ctrl-C
// (or --duration running out) is the normal end: it returns nil, with every
// part stopped and the temp dir removed.
func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) (*demoStats, error) {
	dir, err := os.MkdirTemp(o.tempParent, "monitord-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo: temp dir: %w", err)
	}
	// Registered first, so it runs last: after the state file, the NATS
	// store and the simulator are all closed.
	defer os.RemoveAll(dir)

	sim := newDemoSim(o)
	srv, err := sim.Start()
	if err != nil {
		return nil, fmt.Errorf("demo: simulator: %w", err)
	}
	defer srv.Close()

	ns, err := startEmbeddedNATS(filepath.Join(dir, "jetstream"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	cfg := demoConfig(o, sim, srv.URL, ns.ClientURL(), dir)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo: config: %w", err)
	}
	log, err := demoLogger(o, stderr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Sync() }()

	nc, err := nats.Connect(ns.ClientURL(), nats.Name("monitord demo"))
	if err != nil {
		return nil, fmt.Errorf("demo: connect nats: %w", err)
	}
	defer nc.Close()
	if err := createDemoStream(nc, cfg); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}

	d, err := startDaemon(ctx, cfg, log, daemonOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ctx, stopOnWriteError := context.WithCancel(ctx)
	defer stopOnWriteError()
	stats := newDemoStats()
	p := newEventPrinter(stdout, false)
	defer p.close() // on an early return: nothing held prints after it
	p.seen = stats.event
	p.onWriteError = func(error) { stopOnWriteError() }
	printDemoBanner(p, o, cfg, sim, srv.URL, ns.ClientURL(), d.AdminAddr())

	// Follow the stream from its first message with tail's subscription,
	// before the daemon runs: every event it publishes comes back here.
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "demo: "+format+"\n", a...) }
	topts := tailOptions{subject: cfg.NATS.SubjectPrefix + ".>", stream: cfg.NATS.Stream.Name, all: true}
	unsubscribe, _, err := subscribe(context.WithoutCancel(ctx), nc, topts, p, logf)
	if err != nil {
		d.close()
		return stats, fmt.Errorf("demo: %w", err)
	}
	defer unsubscribe()

	// The daemon runs on its own context: it is stopped after the poll
	// reporter, which reads its state, and before the subscription, which
	// should see the events the daemon drains on its way out.
	daemonCtx, stopDaemon := context.WithCancel(context.Background())
	defer stopDaemon()
	var runErr error
	daemonStopped := make(chan struct{})
	go func() {
		defer close(daemonStopped)
		runErr = d.Run(daemonCtx)
	}()

	reportCtx, stopReport := context.WithCancel(context.Background())
	reportDone := make(chan struct{})
	go func(db demoOutbox) {
		defer close(reportDone)
		reportPolls(reportCtx, d.poller, db, p, stats)
	}(d.db)

	select {
	case <-ctx.Done():
	case <-daemonStopped:
	}
	stopReport()
	<-reportDone
	stopDaemon()
	<-daemonStopped
	if runErr != nil {
		return stats, fmt.Errorf("demo: daemon: %w", runErr)
	}
	// The daemon drained its outbox on the way out; let the subscription
	// print what is still on its way, then summarise.
	held := waitCaughtUp(nc, cfg.NATS.Stream.Name, stats, 5*time.Second)
	p.close()
	p.line(stats.summary(held))
	if err := p.writeErr(); err != nil && !errors.Is(err, syscall.EPIPE) {
		// A closed pipe is the reader saying "enough": not a failure.
		return stats, fmt.Errorf("demo: write output: %w", err)
	}
	return stats, nil
}

// printDemoBanner says what runs where before the first event: the
// simulated world, the NATS URL to tail from, how to stop.
func printDemoBanner(p *eventPrinter, o demoOptions, cfg *config.Config, sim *proxysim.Sim, simURL, natsURL, adminAddr string) {
	until := "Ctrl-C to stop"
	if o.duration > 0 {
		until = "stops after " + shortDuration(o.duration) + " (or Ctrl-C)"
	}
	p.line("monitord demo: simulated Twilio Proxy API, embedded NATS JetStream and the monitord daemon in one process")
	if o.discover {
		p.line(fmt.Sprintf("  targets discovered in %d simulated Services (a session opens in each every %s and closes after %s)",
			len(cfg.Discover), shortDuration(demoSessionOpenEvery), shortDuration(demoSessionLifetime)))
	} else {
		p.line(fmt.Sprintf("  %d targets", len(cfg.Targets)))
	}
	p.line(fmt.Sprintf("  polled %s; seed %d, failure rate %g; %s", o.schedule, o.seed, o.failureRate, until))
	if r := cfg.Rules.Baseline.AlertRecent; r > 0 {
		// Without this, the first second's column of failed lines looks
		// like the demo is broken.
		p.line(fmt.Sprintf("  the first poll of a target is its baseline: its history is recorded silently, except failures of the last %s,",
			shortDuration(r)))
		p.line("  shown at once and marked \"(baseline: already failed at the first poll)\"; every line after that is a change as it happens")
	}
	p.line("")
	p.line("  NATS       " + natsURL)
	p.line("             follow from another terminal: go run ./cmd/monitord tail --nats " + natsURL)
	p.line("  simulator  " + simURL)
	if ts := sim.Targets(); len(ts) > 0 {
		t, c := ts[0], sim.Credentials()
		p.line(fmt.Sprintf("             curl -u %s:%s %s/v1/Services/%s/Sessions/%s/Participants/%s/MessageInteractions",
			c.APIKeySID, c.APIKeySecret, simURL, t.ServiceSID, t.SessionSID, t.ParticipantSID))
	}
	if adminAddr != "" {
		p.line("  admin      http://" + adminAddr + "/metrics  /status  /readyz")
	}
	p.line("")
}

// shortDuration drops the zero tails Go prints: 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s, _ = strings.CutSuffix(s, "m0s")
	if strings.HasSuffix(d.String(), "m0s") {
		s += "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// demoLogger logs the daemon's warnings (info with --verbose) readably.
func demoLogger(o demoOptions, stderr io.Writer) (*zap.Logger, error) {
	level := "warn"
	if o.verbose {
		level = "info"
	}
	return newLogger(config.Log{Level: level, Format: "console"}, stderr)
}
