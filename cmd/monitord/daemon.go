package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	oklogrun "github.com/oklog/run"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/targets"
)

// daemonOptions are what a caller of startDaemon chooses beyond the config.
type daemonOptions struct {
	// Systemd sends sd_notify READY, STATUS, WATCHDOG and RELOADING. Only
	// `run` sets it; without NOTIFY_SOCKET the calls do nothing anyway.
	Systemd bool
	// Reload delivers reload requests (SIGHUP); LoadConfig reads and
	// validates the new config for each. Both nil: no reloading.
	Reload     <-chan struct{}
	LoadConfig func() (*config.Config, error)
	// Signals stop the daemon like the end of Run's ctx (`run`: SIGINT,
	// SIGTERM). None: only ctx does, so that the demo stops the daemon
	// after its own reporter.
	Signals []os.Signal
}

// daemon is monitord's parts wired together from a config: state, the
// Twilio clients (one per account), the NATS publisher, the poller and the
// admin server. `run` and `demo` start it with startDaemon and run it with
// Run; `once` reuses the builders below.
type daemon struct {
	opts    daemonOptions
	log     *zap.Logger
	metrics *admin.Metrics
	db      daemonStore // the bbolt file, or with ha.enabled the KV bucket
	ha      *haWiring   // nil unless ha.enabled
	pub     *notify.Publisher
	poller  *poller.Poller
	beat    *poller.Heartbeat // nil when heartbeat events are not published
	admin   *admin.Server     // nil when admin.listen is ""
	sd      *systemd

	// targets owns which targets the poller polls: configured and
	// discovered (targets_wiring.go, internal/targets).
	targets *targetWiring
	// activity drives the polls in poll.mode activity; nil in schedule
	// mode (activity_wiring.go).
	activity *activityWiring
	status   admin.Status

	mu  sync.Mutex // serialises reloads
	cfg *config.Config
	// clients are the Twilio clients by account: replaced by Reload
	// (under mu), read without mu by the ha takeover hook, which runs
	// inside a worker that a reload may be waiting on.
	clients atomic.Pointer[map[string]*accountClient]
}

// startDaemon builds every part from cfg (a loaded, validated config):
// it opens the state file, binds the admin listener, and sets the targets,
// so that a bad path, a port in use or an unusable target fails here,
// before anyone is told the daemon is ready. Nothing runs until Run. On
// error everything opened is closed again.
func startDaemon(ctx context.Context, cfg *config.Config, log *zap.Logger, opts daemonOptions) (_ *daemon, err error) {
	d := &daemon{opts: opts, log: log, cfg: cfg, metrics: admin.NewMetrics(), sd: newSystemd(opts.Systemd, log),
		activity: newActivityWiring(cfg, log)}
	d.metrics.SetErrorCodes(cfg.Reasons.MetricCodes)
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if cfg.HA.Enabled {
		// State lives in the bucket every instance shares: no file opened.
		if d.ha, err = openHA(ctx, cfg, log, d.spendBurstOnOwned); err != nil {
			return nil, err
		}
		d.db = d.ha.node.Store()
	} else {
		db, err := state.Open(cfg.State.Path, stateOptions(cfg))
		if err != nil {
			return nil, err
		}
		d.db = db
	}
	clients, err := buildClients(cfg, nil, d.metrics, d.activity)
	if err != nil {
		return nil, err
	}
	d.clients.Store(&clients)
	ncfg := notifyConfig(cfg)
	ncfg.Observer = d.metrics
	if d.pub, err = notify.New(ncfg, d.db, log); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	pcfg, err := pollerConfig(cfg, d.db, log)
	if err != nil {
		return nil, err
	}
	pcfg.Waker = d.pub
	pcfg.Observer = d.metrics
	pcfg.OnTick = d.onTick
	if d.ha != nil {
		// Ticks become tasks; the Service's owner polls them (ha_wiring.go).
		pcfg.Dispatch = d.ha.node.Dispatch
	}
	if d.poller, err = poller.New(pcfg); err != nil {
		return nil, err
	}
	if slices.Contains(cfg.Rules.PublishKinds, event.Heartbeat) {
		d.beat, err = poller.NewHeartbeat(poller.HeartbeatConfig{Interval: cfg.Poll.HeartbeatInterval,
			Instance: cfg.Instance, Publisher: d.pub, Render: pcfg.Render, Outbox: d.db, Log: pcfg.Log,
			Owned: d.ownedServices()}, d.poller)
		if err != nil {
			return nil, err
		}
	}
	// Every SetTargets goes through the target set, so configured and
	// discovered targets are merged and each is polled once; it also
	// forgets, here at start-up, the state of targets removed while
	// monitord was stopped.
	var setter targets.Setter = d.poller
	if d.activity != nil {
		d.activity.poller = d.poller
		setter = d.activity
	}
	if d.ha != nil {
		setter = d.ha.node.Targets(d.poller) // a worker per Service of the set
	}
	if d.targets, err = newTargetWiring(cfg, clients, setter, d.db, d.metrics.Registry(), log); err != nil {
		return nil, err
	}
	if d.ha != nil {
		if err := d.ha.discover(d.targets); err != nil { // refreshed by each Service's owner
			return nil, err
		}
	}
	if d.activity != nil {
		d.targets.driveDiscovery(d.activity)
		d.activity.restore(activityStatePath(cfg.State.Path)) // before the first targets
	}
	if err := d.targets.configure(cfg, clients); err != nil {
		return nil, err
	}
	if d.ha != nil {
		if err := d.ha.start(ctx); err != nil {
			return nil, err
		}
	}
	d.status = admin.Status{
		// The name at start, as the heartbeat and the ha records carry
		// it: instance is a restart-only setting.
		Instance: func() string { return cfg.Instance },
		Targets:  d.poller, Outbox: d.db.OutboxStats, NATS: d.pub.Connected,
	}
	if d.activity != nil {
		d.status.Classes = d.activity.Classes
		if err := d.metrics.SetActivity(d.activity.Stats); err != nil {
			return nil, err
		}
	}
	if d.ha != nil {
		d.status.HA = func() *admin.HAView { return d.ha.view() }
	}
	d.metrics.SetSources(admin.Sources{
		Outbox:    d.db.OutboxStats,
		Targets:   d.status.ByHealth,
		LastCycle: d.poller.LastCycle,
		LastTick:  d.poller.LastTick,
	})
	if cfg.Admin.Listen != "" {
		if d.admin, err = newAdminServer(cfg, d, log); err != nil {
			return nil, err
		}
	}
	where := cfg.State.Path
	if d.ha != nil {
		where = "kv bucket " + cfg.HA.Bucket + " (ha)"
	}
	log.Info("monitord started", zap.String("instance", cfg.Instance), zap.Int("targets", len(d.targets.set.Specs())),
		zap.String("state", where), zap.String("admin", d.AdminAddr()))
	return d, nil
}

// AdminAddr is where the admin server listens ("" when disabled).
func (d *daemon) AdminAddr() string {
	if d.admin == nil {
		return ""
	}
	return d.admin.Addr().String()
}

// Run runs the daemon until ctx is done or a part fails, then stops the
// parts in order: scheduling stops and in-flight polls get their grace;
// then the publisher drains what it can of the outbox within the rest of
// poll.shutdown_timeout; then the admin server stops; last the state file
// is closed. It returns nil after a clean stop: SIGTERM exits 0.
func (d *daemon) Run(ctx context.Context) error {
	defer d.close()
	var g oklogrun.Group

	// Shutdown order is the order of Add: oklog/run interrupts actors one
	// after another, and the publisher's interrupt waits for the poller.
	// The signal handler ends on SIGINT/SIGTERM (for `run`) or when ctx is
	// done.
	sigRun, sigStop := oklogrun.ContextHandler(ctx)
	if len(d.opts.Signals) > 0 {
		// Only with signals: SignalHandler takes none as "every signal".
		sigRun, sigStop = oklogrun.SignalHandler(ctx, d.opts.Signals...)
	}
	g.Add(func() error {
		err := sigRun()
		if errors.Is(err, oklogrun.ErrSignal) || ctx.Err() != nil {
			d.log.Info("stopping")
		}
		return err
	}, sigStop)

	// The parts run on contexts that carry ctx's values but not its
	// cancellation: each is stopped by its own interrupt, in order.
	base := context.WithoutCancel(ctx)
	if d.ha != nil {
		// Before the poller: its workers poll through the poller, so
		// they stop first (a poll cut short is handed to the next owner
		// at once) and each unpins the Service it owned.
		hctx, cancelHA := context.WithCancel(base)
		haDone := make(chan struct{})
		g.Add(func() error {
			defer close(haDone)
			return d.ha.node.Run(hctx)
		}, func(error) { cancelHA(); <-haDone })
	}
	pctx, cancelPoll := context.WithCancel(base)
	pollerDone := make(chan struct{})
	activityDone := make(chan struct{})
	if d.activity != nil {
		// Before the poller: its loops stop asking for polls first.
		actx, cancelActivity := context.WithCancel(base)
		g.Add(func() error {
			defer close(activityDone)
			return d.activity.Run(actx)
		}, func(error) { cancelActivity() })
	} else {
		close(activityDone)
	}
	g.Add(func() error {
		defer close(pollerDone)
		return d.poller.Run(pctx)
	}, func(error) { cancelPoll() })

	if d.beat != nil {
		hctx, cancelBeat := context.WithCancel(base)
		g.Add(func() error { return d.beat.Run(hctx) }, func(error) { cancelBeat() })
	}

	nctx, cancelNotify := context.WithCancel(base)
	g.Add(func() error {
		return d.pub.Run(nctx)
	}, func(error) {
		<-pollerDone
		<-activityDone
		d.drain(base, d.config().Poll.ShutdownTimeout/2)
		cancelNotify()
	})

	d.targets.addTo(base, &g) // one actor per account with discover entries

	if d.admin != nil {
		actx, cancelAdmin := context.WithCancel(base)
		g.Add(func() error { return d.admin.Run(actx) }, func(error) { cancelAdmin() })
	}

	if d.opts.Reload != nil && d.opts.LoadConfig != nil {
		rstop := make(chan struct{})
		g.Add(func() error {
			for {
				select {
				case <-rstop:
					return nil
				case <-d.opts.Reload:
					d.reloadFromSource()
				}
			}
		}, func(error) { close(rstop) })
	}

	d.sd.ready(d.statusLine())
	err := g.Run()
	d.sd.stopping()
	// A signal or the end of ctx is a clean stop: SIGTERM exits 0.
	if err != nil && !errors.Is(err, oklogrun.ErrSignal) && (ctx.Err() == nil || !errors.Is(err, ctx.Err())) {
		return err
	}
	d.log.Info("stopped")
	return nil
}

// drain gives the publisher up to max to empty the outbox after polling
// stopped, and gives up at once while NATS is down. What is left is
// delivered at the next start: the outbox is durable, so a short drain
// loses nothing.
func (d *daemon) drain(ctx context.Context, max time.Duration) {
	if d.ha != nil {
		// The outbox is the deployment's: the other instances publish
		// it, and the others' commits would keep it from ever being
		// empty here. What is pending stays in the bucket.
		return
	}
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	if d.pub.WaitEmptyConnected(ctx) == nil {
		return
	}
	if n, _, _, err := d.db.OutboxStats(); err == nil && n > 0 {
		d.log.Info("outbox not empty at shutdown; delivered after the next start", zap.Int("events", n))
	}
}

// close releases what startDaemon opened; safe on a partial daemon.
func (d *daemon) close() {
	if d.admin != nil {
		d.admin.Close()
	}
	for _, c := range d.accountClients() {
		c.client.Close()
	}
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			d.log.Error("close state", zap.Error(err))
		}
		d.db = nil
	}
	d.ha.close() // after the store: closing the KV store writes through it
}

func (d *daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// statusLine is systemd's one-line STATUS=.
func (d *daemon) statusLine() string { return d.status.Line(time.Now()) }

// onTick runs on the scheduler's own loop every second: the systemd
// watchdog is fed from here, so a stuck scheduler stops feeding it.
func (d *daemon) onTick(now time.Time) { d.sd.tick(now, d.statusLine) }

// accountClients returns the Twilio clients by account (nil before they
// are built).
func (d *daemon) accountClients() map[string]*accountClient {
	if cs := d.clients.Load(); cs != nil {
		return *cs
	}
	return nil
}
