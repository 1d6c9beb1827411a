package main

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	oklogrun "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/discover"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/targets"
	"github.com/monitord/monitord/internal/twilio"
)

// targetWiring connects the config to the target set (internal/targets,
// which decides which targets are polled and when their state goes): the
// configured targets and per-Service templates converted from the config,
// and one Discoverer per account with `discover` entries, whose sets go to
// the target set.
type targetWiring struct {
	set         *targets.Set
	metrics     *discover.Metrics // nil when there is nothing to discover
	discoverers []*discover.Discoverer
	byService   map[string]*discover.Discoverer // the Discoverer of each discovered Service
	driven      bool                            // poll.mode activity's planners or ha's Service owners refresh, not Run
	// haEntries is every discover entry with its Discoverer and Tracker,
	// for ha.enabled (haWiring.discover).
	haEntries []haEntry
	listers   map[string]*accountLister // by account name
	// loc is poll.timezone, the zone of the discover schedules.
	loc *time.Location

	// onRefresh, when set, also gets each refresh's result: once uses it
	// to name the Services whose discovery failed. Set before any refresh.
	onRefresh func(discover.RefreshResult)
}

// haEntry is one discover entry as ha.Node.Discover takes it.
type haEntry struct {
	cfg     config.Discover
	d       *discover.Discoverer
	tracker *targets.Tracker
}

// accountLister is an account's client behind a pointer a reload swaps, so
// a Discoverer keeps its caches (and the target set its grace timers)
// across reloads and always shares the budget of the client the account's
// polls use.
type accountLister struct{ c atomic.Pointer[twilio.Client] }

func (l *accountLister) ListSessions(ctx context.Context, serviceSID string) ([]proxy.Session, error) {
	return l.c.Load().ListSessions(ctx, serviceSID)
}

func (l *accountLister) ListParticipants(ctx context.Context, serviceSID, sessionSID string) ([]proxy.Participant, error) {
	return l.c.Load().ListParticipants(ctx, serviceSID, sessionSID)
}

// newTargetWiring builds the target set in front of p and the
// Discoverers of cfg's discover entries (none is fine). store is where
// dropped targets' state is forgotten (nil: nowhere, for once). Metrics
// are registered on reg when there is something to discover.
func newTargetWiring(cfg *config.Config, clients map[string]*accountClient, p targets.Setter, store targets.Store,
	reg prometheus.Registerer, log *zap.Logger) (*targetWiring, error) {
	w := &targetWiring{listers: map[string]*accountLister{}, byService: map[string]*discover.Discoverer{}}
	tcfg := targets.Config{Poller: p, Store: store, Shared: cfg.HA.Enabled, Log: log.Named("targets")}
	wanted := false
	for _, a := range cfg.EffectiveAccounts() {
		wanted = wanted || len(a.Discover) > 0
	}
	if wanted {
		m, err := discover.NewMetrics(reg)
		if err != nil {
			return nil, fmt.Errorf("discovery metrics: %w", err)
		}
		w.metrics, tcfg.Observer = m, m
	}
	set, err := targets.New(tcfg)
	if err != nil {
		return nil, err
	}
	w.set = set
	if !wanted {
		return w, nil
	}
	loc, err := time.LoadLocation(cfg.Poll.Timezone)
	if err != nil {
		return nil, fmt.Errorf("poll.timezone: %w", err)
	}
	w.loc = loc
	dlog := log.Named("discover")
	for _, a := range cfg.EffectiveAccounts() {
		if len(a.Discover) == 0 {
			continue
		}
		l := &accountLister{}
		l.c.Store(clients[a.Name].client)
		w.listers[a.Name] = l
		entries := make([]discover.Entry, 0, len(a.Discover))
		var trackers []*targets.Tracker
		for i, dsc := range a.Discover {
			tr, err := set.Tracker(dsc.ServiceSID, dsc.Grace)
			if err != nil {
				return nil, fmt.Errorf("account %s: discover[%d].%w", a.Name, i, err)
			}
			e := discoverEntry(dsc, tr)
			if cfg.Poll.Mode == config.PollModeActivity {
				e.ParticipantRefreshEvery = activityParticipantRefresh(dsc, cfg.Poll.Activity.IndexEvery)
			}
			entries = append(entries, e)
			trackers = append(trackers, tr)
		}
		dsc, err := discover.New(discover.Config{
			Entries: entries, Lister: l, Observer: w, Location: loc,
			Logger: dlog.With(zap.String("account", a.Name)),
		})
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Name, err)
		}
		w.discoverers = append(w.discoverers, dsc)
		for i, e := range a.Discover {
			w.byService[e.ServiceSID] = dsc
			w.haEntries = append(w.haEntries, haEntry{cfg: e, d: dsc, tracker: trackers[i]})
		}
	}
	return w, nil
}

// discoverEntry converts one config entry; its grace period is applied by
// sink, the entry's Tracker in the target set.
func discoverEntry(d config.Discover, sink discover.Sink) discover.Entry {
	return discover.Entry{
		ServiceSID: d.ServiceSID, Source: d.Source, Statuses: d.SessionStatus,
		UniqueNamePrefix: d.UniqueNamePrefix, Schedule: d.Schedule, Sink: sink,
		ParticipantRefreshEvery: d.ParticipantRefreshEvery,
	}
}

// configure hands the target set the configured targets and the templates
// of discovered ones, polled with clients (start-up, reload), then points
// the Discoverers at the same clients. On error nothing changes.
func (w *targetWiring) configure(cfg *config.Config, clients map[string]*accountClient) error {
	if err := w.set.Configure(targetSpecs(cfg, clients), discoverTemplates(cfg, clients)); err != nil {
		return err
	}
	for name, l := range w.listers {
		if c, ok := clients[name]; ok {
			l.c.Store(c.client)
		}
	}
	return nil
}

// Refreshed implements discover.Observer: the metrics, then onRefresh.
func (w *targetWiring) Refreshed(r discover.RefreshResult) {
	if w.metrics != nil {
		w.metrics.Refreshed(r)
	}
	if w.onRefresh != nil {
		w.onRefresh(r)
	}
}

// addTo adds the Discoverers to the daemon's run group, each on a context
// of ctx that its own interrupt cancels.
func (w *targetWiring) addTo(ctx context.Context, g *oklogrun.Group) {
	if w.driven {
		return // each Service's planner refreshes it as its index
	}
	for _, d := range w.discoverers {
		dctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return d.Run(dctx) }, func(error) { cancel() })
	}
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

// discoverTemplates says, per discovered Service, how its targets are
// polled: the entry's poll_schedule (else poll.schedule), labels, and the
// account's client, whose per-Service budget discovery shares.
func discoverTemplates(cfg *config.Config, clients map[string]*accountClient) map[string]poller.TargetSpec {
	out := map[string]poller.TargetSpec{}
	for _, a := range cfg.EffectiveAccounts() {
		for _, d := range a.Discover {
			sched := d.PollSchedule
			if sched == "" {
				sched = cfg.Poll.Schedule
			}
			out[d.ServiceSID] = poller.TargetSpec{Schedule: sched, Lister: clients[a.Name].client,
				Messages: messageFetcher(cfg, clients[a.Name]),
				Account:  a.Name, Origin: poller.OriginDiscovered, Labels: d.Labels}
		}
	}
	return out
}

// setterFunc adapts a function to targets.Setter.
type setterFunc func(specs []poller.TargetSpec) error

func (f setterFunc) SetTargets(specs []poller.TargetSpec) error { return f(specs) }

// discoveryFailure is a Service whose discovery refresh failed in once.
type discoveryFailure struct {
	ServiceSID string
	Err        error
}

// discoverOnce runs one refresh of every discover entry and returns the
// configured targets merged with what it found: for `monitord once`, whose
// "every target" includes the discovered ones. An entry whose refresh
// fails adds none of its targets and its Service is returned among the
// failures (once per Service), so that once still polls everything else
// and says which Services it could not list. err is for what stops once
// altogether (a bad config). It forgets no state.
func discoverOnce(ctx context.Context, cfg *config.Config, clients map[string]*accountClient,
	log *zap.Logger) ([]poller.TargetSpec, []discoveryFailure, error) {
	var specs []poller.TargetSpec
	keep := setterFunc(func(s []poller.TargetSpec) error { specs = s; return nil })
	w, err := newTargetWiring(cfg, clients, keep, nil, prometheus.NewRegistry(), log)
	if err != nil {
		return nil, nil, err
	}
	var failures []discoveryFailure
	w.onRefresh = func(r discover.RefreshResult) {
		// One failure per Service, even when two of its entries failed.
		if r.Err == nil || slices.ContainsFunc(failures, func(f discoveryFailure) bool { return f.ServiceSID == r.ServiceSID }) {
			return
		}
		failures = append(failures, discoveryFailure{ServiceSID: r.ServiceSID, Err: r.Err})
	}
	if err := w.configure(cfg, clients); err != nil {
		return nil, nil, err
	}
	for _, d := range w.discoverers {
		// Each failed entry reached onRefresh: Refresh's joined error
		// says nothing more.
		_ = d.Refresh(ctx)
	}
	return specs, failures, nil
}
