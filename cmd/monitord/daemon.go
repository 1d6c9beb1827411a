package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	oklogrun "github.com/oklog/run"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
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
	db      *state.DB
	pub     *notify.Publisher
	poller  *poller.Poller
	beat    *poller.Heartbeat // nil when heartbeat events are not published
	admin   *admin.Server     // nil when admin.listen is ""
	sd      *systemd

	// discovery merges discovered targets with the configured ones in
	// front of the poller (discover_wiring.go, issue 8).
	discovery *discovery

	mu      sync.Mutex // serialises reloads
	cfg     *config.Config
	clients map[string]*accountClient
}

// accountClient is one account's client and the settings it was built
// from, so a reload rebuilds only the clients whose settings changed.
type accountClient struct {
	settings config.Twilio
	reasons  config.Reasons // the FetchMessage budget is the client's too
	client   *twilio.Client
}

// startDaemon builds every part from cfg (a loaded, validated config):
// it opens the state file, binds the admin listener, and sets the targets,
// so that a bad path, a port in use or an unusable target fails here,
// before anyone is told the daemon is ready. Nothing runs until Run. On
// error everything opened is closed again.
func startDaemon(ctx context.Context, cfg *config.Config, log *zap.Logger, opts daemonOptions) (_ *daemon, err error) {
	d := &daemon{opts: opts, log: log, cfg: cfg, metrics: admin.NewMetrics(), sd: newSystemd(opts.Systemd, log)}
	d.metrics.SetErrorCodes(cfg.Reasons.MetricCodes)
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	d.db, err = state.Open(cfg.State.Path, stateOptions(cfg))
	if err != nil {
		return nil, err
	}
	if d.clients, err = buildClients(cfg, nil, d.metrics); err != nil {
		return nil, err
	}
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
	if d.poller, err = poller.New(pcfg); err != nil {
		return nil, err
	}
	if slices.Contains(cfg.Rules.PublishKinds, event.Heartbeat) {
		d.beat, err = poller.NewHeartbeat(poller.HeartbeatConfig{Interval: cfg.Poll.HeartbeatInterval,
			Instance: cfg.Instance, Publisher: d.pub, Render: pcfg.Render, Outbox: d.db, Log: pcfg.Log}, d.poller)
		if err != nil {
			return nil, err
		}
	}
	specs := targetSpecs(cfg, d.clients)
	if err := pruneState(d.db, cfg, specs, log); err != nil {
		return nil, err
	}
	// Discovery (issue 8): every SetTargets goes through it, so configured
	// and discovered targets are merged and each is polled once.
	if d.discovery, err = newDiscovery(cfg, d.clients, d.poller, d.db, d.metrics.Registry(), log); err != nil {
		return nil, err
	}
	if err := d.discovery.setTargets(cfg, d.clients, specs); err != nil {
		return nil, err
	}
	d.metrics.SetSources(admin.Sources{
		Outbox:    d.db.OutboxStats,
		Targets:   d.targetsByHealth,
		LastCycle: d.poller.LastCycle,
		LastTick:  d.poller.LastTick,
	})
	if cfg.Admin.Listen != "" {
		d.admin, err = admin.New(admin.Config{
			Addr:    cfg.Admin.Listen,
			Pprof:   cfg.Admin.Pprof,
			Metrics: d.metrics,
			Status:  d.status,
			Live:    []admin.Check{{Name: "scheduler", Fn: admin.Recent("scheduler tick", d.poller.LastTick, 10*time.Second)}},
			Ready: []admin.Check{
				{Name: "state", Fn: func() error {
					if _, _, _, err := d.db.OutboxStats(); err != nil {
						return err
					}
					// The outbox stays readable on a full disk: only a
					// failed commit shows that state cannot be written.
					return d.poller.StateErr()
				}},
				{Name: "nats", Fn: func() error {
					if !d.pub.Connected() {
						return errors.New("not connected")
					}
					return nil
				}},
				{Name: "cycle", Fn: admin.Recent("complete poll cycle", d.poller.LastCycle, 0)},
			},
			Log: log,
		})
		if err != nil {
			return nil, err
		}
	}
	log.Info("monitord started", zap.String("instance", cfg.Instance), zap.Int("targets", len(specs)),
		zap.String("state", cfg.State.Path), zap.String("admin", d.AdminAddr()))
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
	pctx, cancelPoll := context.WithCancel(base)
	pollerDone := make(chan struct{})
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
		d.drain(base, d.config().Poll.ShutdownTimeout/2)
		cancelNotify()
	})

	d.discovery.addTo(&g) // issue 8: one actor per account with discover entries

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
	for _, c := range d.clients {
		c.client.Close()
	}
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			d.log.Error("close state", zap.Error(err))
		}
		d.db = nil
	}
}

// targetsByHealth is the monitord_targets gauge's source.
func (d *daemon) targetsByHealth() map[string]int {
	s := d.poller.Summary()
	return map[string]int{poller.HealthHealthy: s.Healthy, poller.HealthFailing: s.Failing, poller.HealthUnknown: s.Unknown}
}

// statusDoc is the /status document.
type statusDoc struct {
	Instance  string                `json:"instance"`
	Targets   int                   `json:"targets"`
	Healthy   int                   `json:"healthy"`
	Failing   int                   `json:"failing"`
	Unknown   int                   `json:"unknown"`
	LastCycle time.Time             `json:"last_complete_cycle,omitzero"`
	NATS      bool                  `json:"nats_connected"`
	Outbox    int                   `json:"outbox_events"`
	Status    []poller.TargetStatus `json:"status"`
}

func (d *daemon) status() any {
	s := d.poller.Summary()
	n, _, _, _ := d.db.OutboxStats()
	return statusDoc{Instance: d.config().Instance, Targets: s.Targets, Healthy: s.Healthy, Failing: s.Failing,
		Unknown: s.Unknown, LastCycle: s.LastCycle, NATS: d.pub.Connected(), Outbox: n, Status: d.poller.Status()}
}

// statusLine is systemd's one-line STATUS=.
func (d *daemon) statusLine() string {
	s := d.poller.Summary()
	n, _, _, _ := d.db.OutboxStats()
	nats := "connected"
	if !d.pub.Connected() {
		nats = "disconnected"
	}
	cycle := "no complete cycle yet"
	if !s.LastCycle.IsZero() {
		cycle = "last cycle " + time.Since(s.LastCycle).Round(time.Second).String() + " ago"
	}
	return fmt.Sprintf("%d targets (%d healthy, %d failing); outbox %d; nats %s; %s",
		s.Targets, s.Healthy, s.Failing, n, nats, cycle)
}

func (d *daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// onTick runs on the scheduler's own loop every second: the systemd
// watchdog is fed from here, so a stuck scheduler stops feeding it.
func (d *daemon) onTick(now time.Time) { d.sd.tick(now, d.statusLine) }

// stateOptions converts the state section.
func stateOptions(cfg *config.Config) state.Options {
	return state.Options{
		MaxOutboxEvents: cfg.State.MaxOutboxEvents,
		MaxOutboxBytes:  cfg.State.MaxOutboxBytes,
		OpenTimeout:     cfg.State.OpenTimeout,
	}
}

// diffRules converts the rules section.
func diffRules(cfg *config.Config) diff.Rules {
	r := diff.DefaultRules()
	r.AlertStatuses = cfg.Rules.AlertStatuses
	r.StuckAfter = cfg.Rules.StuckAfter
	r.BaselineAlertRecent = cfg.Rules.Baseline.AlertRecent
	r.IncludeBody = cfg.Rules.IncludeBody
	return r
}

// renderFunc renders events with the configured subject prefix and body
// policy.
func renderFunc(cfg *config.Config) poller.RenderFunc {
	o := event.RenderOptions{Prefix: cfg.NATS.SubjectPrefix, IncludeBody: cfg.Rules.IncludeBody}
	return func(e event.Event) (event.Message, error) { return event.Render(e, o) }
}

// pollerConfig converts the poll and rules sections; store is where polls
// commit (the state file, or an in-memory store for once --dry-run).
func pollerConfig(cfg *config.Config, store poller.Store, log *zap.Logger) (poller.Config, error) {
	loc, err := time.LoadLocation(cfg.Poll.Timezone)
	if err != nil {
		return poller.Config{}, fmt.Errorf("poll.timezone: %w", err)
	}
	return poller.Config{
		DefaultSchedule:  cfg.Poll.Schedule,
		Location:         loc,
		Spread:           cfg.Poll.Spread,
		PollTimeout:      cfg.Poll.Timeout,
		ShutdownGrace:    cfg.Poll.ShutdownTimeout / 2,
		FailureThreshold: cfg.Rules.TargetErrorAfter,
		ReasonTimeout:    cfg.Reasons.Timeout,
		Rules:            diffRules(cfg),
		PublishKinds:     cfg.Rules.PublishKinds,
		Render:           renderFunc(cfg),
		Store:            store,
		Log:              log.Named("poller"),
	}, nil
}

// notifyConfig converts the nats section.
func notifyConfig(cfg *config.Config) notify.Config {
	n := cfg.NATS
	c := notify.DefaultConfig()
	c.URLs = n.URLs
	c.Name = n.Name
	c.User, c.Password, c.Token = n.User, n.Password.Reveal(), n.Token.Reveal()
	c.NKeySeedFile, c.CredsFile = n.NKeySeedFile, n.CredsFile
	c.TLS = notify.TLSConfig{CAFile: n.TLS.CAFile, CertFile: n.TLS.CertFile, KeyFile: n.TLS.KeyFile}
	c.Mode = notify.Mode(n.Mode)
	c.Prefix = n.SubjectPrefix
	c.Stream = notify.StreamConfig{Name: n.Stream.Name, Create: n.Stream.Create, Storage: n.Stream.Storage,
		MaxAge: n.Stream.MaxAge, Duplicates: n.Stream.Duplicates, Replicas: n.Stream.Replicas,
		AllowShrink: n.Stream.AllowShrink}
	c.MaxPending = n.MaxPending
	c.AckTimeout = n.AckTimeout
	return c
}

// twilioConfig converts one account's twilio section and the reasons
// budget every account gets.
func twilioConfig(t config.Twilio, r config.Reasons, ob twilio.Observer) twilio.Config {
	ver, _ := buildInfo()
	l := t.Limits
	return twilio.Config{
		BaseURL: t.BaseURL, MessagesBaseURL: t.MessagesBaseURL,
		MessagesPerSecond: r.Rate, MessagesInFlight: r.Concurrency,
		AccountSID: t.AccountSID, APIKeySID: t.APIKeySID,
		APIKeySecret: t.APIKeySecret.Reveal(), AuthToken: t.AuthToken.Reveal(), Version: ver,
		RequestsPerSecond: l.RequestsPerSecond, Burst: l.Burst, MaxInFlight: l.MaxInFlight,
		PageSize: l.PageSize, MaxPages: l.MaxPages, MaxResponseBytes: l.MaxResponseBytes,
		MaxAttempts: l.MaxAttempts, MinBackoff: l.MinBackoff, MaxBackoff: l.MaxBackoff,
		RequestTimeout: l.RequestTimeout, Observer: ob,
	}
}

// buildClients returns a client per account, reusing from old the clients
// whose settings did not change (their rate limiters keep their state).
func buildClients(cfg *config.Config, old map[string]*accountClient, ob twilio.Observer) (map[string]*accountClient, error) {
	out := make(map[string]*accountClient)
	for _, a := range cfg.EffectiveAccounts() {
		if o, ok := old[a.Name]; ok && reflect.DeepEqual(o.settings, a.Twilio) &&
			o.reasons.Rate == cfg.Reasons.Rate && o.reasons.Concurrency == cfg.Reasons.Concurrency {
			out[a.Name] = o
			continue
		}
		c, err := twilio.New(twilioConfig(a.Twilio, cfg.Reasons, ob))
		if err != nil {
			for name, ac := range out {
				if old[name] != ac {
					ac.client.Close()
				}
			}
			return nil, fmt.Errorf("account %s: twilio client: %w", a.Name, err)
		}
		out[a.Name] = &accountClient{settings: a.Twilio, reasons: cfg.Reasons, client: c}
	}
	return out, nil
}

// targetSpecs lists every configured target of every account with its
// account's client and its schedule resolved.
func targetSpecs(cfg *config.Config, clients map[string]*accountClient) []poller.TargetSpec {
	var out []poller.TargetSpec
	for _, a := range cfg.EffectiveAccounts() {
		for _, t := range a.Targets {
			sched := t.Schedule
			if sched == "" {
				sched = cfg.Poll.Schedule
			}
			out = append(out, poller.TargetSpec{
				Target: t.TwilioTarget(), Schedule: sched, Lister: clients[a.Name].client,
				Messages: messageFetcher(cfg, clients[a.Name]),
				Account:  a.Name, Origin: poller.OriginConfigured, Labels: t.Labels,
			})
		}
	}
	return out
}

// messageFetcher is what fetches the reasons of an account's failed
// events: its client, or nil when reasons.enabled is off.
func messageFetcher(cfg *config.Config, ac *accountClient) poller.MessageFetcher {
	if !cfg.Reasons.Enabled {
		return nil
	}
	return ac.client
}

// pruneState forgets, at start-up, the state of targets that are no longer
// configured (removed while monitord was stopped), so that the state file
// does not grow forever. Keys under a Service that discovery watches are
// kept: discovery finds its targets after start and drops them itself after
// their grace period.
func pruneState(db *state.DB, cfg *config.Config, specs []poller.TargetSpec, log *zap.Logger) error {
	keys, err := db.Keys()
	if err != nil {
		return err
	}
	keep := make(map[string]bool, len(specs))
	for _, s := range specs {
		keep[s.Target.Key()] = true
	}
	watched := map[string]bool{}
	for _, a := range cfg.EffectiveAccounts() {
		for _, dsc := range a.Discover {
			watched[dsc.ServiceSID] = true
		}
	}
	var drop []string
	for _, k := range keys {
		if keep[k] || watched[serviceOfKey(k)] {
			continue
		}
		drop = append(drop, k)
	}
	if len(drop) == 0 {
		return nil
	}
	log.Info("forgetting state of targets no longer configured", zap.Int("targets", len(drop)))
	return db.Forget(drop...)
}

// serviceOfKey returns the Service SID of a target key
// ("participant/KS…/KC…/KP…" or "session/KS…/KC…").
func serviceOfKey(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			rest := key[i+1:]
			if len(rest) >= 34 {
				return rest[:34]
			}
			return rest
		}
	}
	return ""
}
