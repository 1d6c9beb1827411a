package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	oklogrun "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/discover"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/twilio"
)

// discovery is target discovery (issue 8) inside the daemon: one
// Discoverer per account that has `discover` entries, and the merge of the
// configured targets with every Service's discovered set in front of the
// poller. Every SetTargets of the daemon goes through setTargets, so a
// reload and a discovery refresh never undo each other.
type discovery struct {
	poller  targetSetter
	store   stateKeys
	log     *zap.Logger
	metrics *discover.Metrics // nil when there is nothing to discover

	discoverers []*discover.Discoverer
	listers     map[string]*accountLister // by account name

	mu         sync.Mutex // serialises applying the merged list
	configured []poller.TargetSpec
	templates  map[string]poller.TargetSpec // by Service: how its discovered targets are polled
	discovered map[string][]twilio.Target   // by Service
	pruned     map[string]bool              // Services whose stale state was forgotten
	applied    bool                         // setTargets has succeeded once

	// onRefresh, when set, also gets each refresh's result: once uses it
	// to name the Services whose discovery failed. Set before any refresh.
	onRefresh func(discover.RefreshResult)
}

// targetSetter is the poller's half that discovery drives.
type targetSetter interface {
	SetTargets(specs []poller.TargetSpec) error
}

// stateKeys is the state store's half that forgets targets discovery lost
// track of while monitord was stopped (nil: forget nothing).
type stateKeys interface {
	Keys() ([]string, error)
	Forget(keys ...string) error
}

// accountLister is an account's client behind a pointer a reload swaps, so
// a Discoverer keeps its caches and grace timers across reloads and always
// shares the budget of the client the account's polls use.
type accountLister struct{ c atomic.Pointer[twilio.Client] }

func (l *accountLister) ListSessions(ctx context.Context, serviceSID string) ([]twilio.Session, error) {
	return l.c.Load().ListSessions(ctx, serviceSID)
}

func (l *accountLister) ListParticipants(ctx context.Context, serviceSID, sessionSID string) ([]twilio.Participant, error) {
	return l.c.Load().ListParticipants(ctx, serviceSID, sessionSID)
}

// newDiscovery builds the Discoverers of cfg's discover entries (none is
// fine: setTargets then passes the configured targets through). Metrics are
// registered on reg when there is something to discover.
func newDiscovery(cfg *config.Config, clients map[string]*accountClient, p targetSetter, store stateKeys,
	reg prometheus.Registerer, log *zap.Logger) (*discovery, error) {
	x := &discovery{
		poller: p, store: store, log: log.Named("discover"),
		listers:    map[string]*accountLister{},
		templates:  map[string]poller.TargetSpec{},
		discovered: map[string][]twilio.Target{},
		pruned:     map[string]bool{},
	}
	wanted := false
	for _, a := range cfg.EffectiveAccounts() {
		wanted = wanted || len(a.Discover) > 0
	}
	if !wanted {
		return x, nil
	}
	m, err := discover.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("discovery metrics: %w", err)
	}
	x.metrics = m
	loc, err := time.LoadLocation(cfg.Poll.Timezone)
	if err != nil {
		return nil, fmt.Errorf("poll.timezone: %w", err)
	}
	for _, a := range cfg.EffectiveAccounts() {
		if len(a.Discover) == 0 {
			continue
		}
		l := &accountLister{}
		l.c.Store(clients[a.Name].client)
		x.listers[a.Name] = l
		entries := make([]discover.Entry, 0, len(a.Discover))
		for _, dsc := range a.Discover {
			entries = append(entries, discoverEntry(dsc))
		}
		dsc, err := discover.New(discover.Config{
			Entries: entries, Lister: l, Sink: x, Observer: x, Location: loc,
			Logger: x.log.With(zap.String("account", a.Name)),
		})
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Name, err)
		}
		x.discoverers = append(x.discoverers, dsc)
	}
	x.templates = discoverTemplates(cfg, clients)
	return x, nil
}

// discoverEntry converts one config entry.
func discoverEntry(d config.Discover) discover.Entry {
	return discover.Entry{
		ServiceSID: d.ServiceSID, Source: d.Source, Statuses: d.SessionStatus,
		UniqueNamePrefix: d.UniqueNamePrefix, Schedule: d.Schedule, Grace: d.Grace,
		ParticipantRefreshEvery: d.ParticipantRefreshEvery,
	}
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

// Refreshed implements discover.Observer: the metrics, then onRefresh.
func (x *discovery) Refreshed(r discover.RefreshResult) {
	if x.metrics != nil {
		x.metrics.Refreshed(r)
	}
	if x.onRefresh != nil {
		x.onRefresh(r)
	}
}

// addTo adds the Discoverers to the daemon's run group.
func (x *discovery) addTo(g *oklogrun.Group) {
	for _, d := range x.discoverers {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return d.Run(ctx) }, func(error) { cancel() })
	}
}

// setTargets replaces the configured targets (start-up, reload) with the
// clients they are polled with, and applies them merged with what discovery
// found. On error nothing changes. Entries added to or removed from
// `discover` take effect after a restart; their poll settings and clients
// at once.
func (x *discovery) setTargets(cfg *config.Config, clients map[string]*accountClient, configured []poller.TargetSpec) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	templates := discoverTemplates(cfg, clients)
	for svc, old := range x.templates {
		if _, ok := templates[svc]; !ok {
			templates[svc] = old
			x.log.Warn("reload: removing a discover entry takes effect after a restart", zap.String("service", svc))
		}
	}
	for svc := range templates {
		if _, ok := x.templates[svc]; !ok && x.applied {
			x.log.Warn("reload: a new discover entry takes effect after a restart", zap.String("service", svc))
		}
	}
	if _, err := x.applyLocked(configured, templates); err != nil {
		return err
	}
	x.configured, x.templates, x.applied = configured, templates, true
	for name, l := range x.listers {
		if c, ok := clients[name]; ok {
			l.c.Store(c.client)
		}
	}
	return nil
}

// SetDiscovered implements discover.Sink. The first set of each Service
// also forgets the state of its targets that are neither discovered nor
// configured: sessions that ended, beyond their grace, while monitord was
// stopped (start-up keeps every key under a discovered Service until
// discovery has spoken).
func (x *discovery) SetDiscovered(serviceSID string, targets []twilio.Target) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.discovered[serviceSID] = targets
	merged, err := x.applyLocked(x.configured, x.templates)
	if err != nil {
		// The poller refused the whole list (it validates every spec
		// first); the next refresh tries again with the newest set.
		x.log.Error("apply discovered targets", zap.String("service", serviceSID), zap.Error(err))
		return
	}
	if x.pruned[serviceSID] || x.store == nil {
		return
	}
	x.pruned[serviceSID] = true
	if err := x.forgetStale(serviceSID, merged); err != nil {
		x.log.Warn("forget state of targets discovery no longer follows", zap.String("service", serviceSID), zap.Error(err))
	}
}

// applyLocked hands the poller the merged list. x.mu is held.
func (x *discovery) applyLocked(configured []poller.TargetSpec, templates map[string]poller.TargetSpec) ([]poller.TargetSpec, error) {
	specs, counts := mergeSpecs(configured, x.discovered, templates)
	if err := x.poller.SetTargets(specs); err != nil {
		return nil, err
	}
	if x.metrics != nil {
		x.metrics.TargetsByOrigin(counts)
	}
	return specs, nil
}

// forgetStale forgets state keys under svc that no polled target has.
func (x *discovery) forgetStale(svc string, polled []poller.TargetSpec) error {
	keys, err := x.store.Keys()
	if err != nil {
		return err
	}
	keep := make(map[string]bool, len(polled))
	for _, s := range polled {
		keep[s.Target.Key()] = true
	}
	var stale []string
	for _, k := range keys {
		if !keep[k] && serviceOfKey(k) == svc {
			stale = append(stale, k)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	x.log.Info("forgetting state of targets discovery no longer follows", zap.String("service", svc), zap.Int("targets", len(stale)))
	return x.store.Forget(stale...)
}

// mergeSpecs is discover.Merge over poller specs: configured targets as
// configured, then each discovered target not also configured, polled as
// its Service's template says (a Service without one is skipped). It also
// returns the targets-by-origin counts.
func mergeSpecs(configured []poller.TargetSpec, discovered map[string][]twilio.Target,
	templates map[string]poller.TargetSpec) ([]poller.TargetSpec, map[discover.Origin]int) {
	targets := make([]twilio.Target, len(configured))
	byTarget := make(map[twilio.Target]poller.TargetSpec, len(configured))
	for i, s := range configured {
		targets[i] = s.Target
		byTarget[s.Target] = s
	}
	merged := discover.Merge(targets, discovered)
	out := make([]poller.TargetSpec, 0, len(merged))
	counts := map[discover.Origin]int{discover.OriginConfigured: 0, discover.OriginDiscovered: 0}
	for _, m := range merged {
		spec := byTarget[m.Target]
		if m.Origin == discover.OriginDiscovered {
			tmpl, ok := templates[m.Target.ServiceSID]
			if !ok {
				continue
			}
			spec = tmpl
			spec.Target, spec.Origin = m.Target, poller.OriginDiscovered
		}
		counts[m.Origin]++
		out = append(out, spec)
	}
	return out, counts
}

// setterFunc adapts a function to targetSetter.
type setterFunc func(specs []poller.TargetSpec) error

func (f setterFunc) SetTargets(specs []poller.TargetSpec) error { return f(specs) }

// discoveryFailure is a Service whose discovery refresh failed in once.
type discoveryFailure struct {
	ServiceSID string
	Err        error
}

// discoverOnce runs one refresh of every discover entry and returns the
// configured specs merged with what it found: for `monitord once`, whose
// "every target" includes the discovered ones. An entry whose refresh
// fails adds none of its targets and its Service is returned among the
// failures (once per Service), so
// that once still polls everything else and says which Services it could
// not list. err is for what stops once altogether (a bad config). It
// forgets no state.
//
//	specs, failures, err := discoverOnce(ctx, cfg, clients, targetSpecs(cfg, clients), log)
func discoverOnce(ctx context.Context, cfg *config.Config, clients map[string]*accountClient,
	configured []poller.TargetSpec, log *zap.Logger) ([]poller.TargetSpec, []discoveryFailure, error) {
	var specs []poller.TargetSpec
	keep := setterFunc(func(s []poller.TargetSpec) error { specs = s; return nil })
	x, err := newDiscovery(cfg, clients, keep, nil, prometheus.NewRegistry(), log)
	if err != nil {
		return nil, nil, err
	}
	var failures []discoveryFailure
	x.onRefresh = func(r discover.RefreshResult) {
		// One failure per Service, even when two of its entries failed.
		if r.Err == nil || slices.ContainsFunc(failures, func(f discoveryFailure) bool { return f.ServiceSID == r.ServiceSID }) {
			return
		}
		failures = append(failures, discoveryFailure{ServiceSID: r.ServiceSID, Err: r.Err})
	}
	if err := x.setTargets(cfg, clients, configured); err != nil {
		return nil, nil, err
	}
	for _, d := range x.discoverers {
		// Each failed entry reached onRefresh: Refresh's joined error
		// says nothing more.
		_ = d.Refresh(ctx)
	}
	return specs, failures, nil
}
