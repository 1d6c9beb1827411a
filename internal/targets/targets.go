// Package targets is the one owner of monitord's target set: the targets the
// config lists, the targets discovery finds under each watched Service, and
// which of them the poller polls. It decides when a target's state is
// deleted, and deletes it through one path (Set.forget):
//
//   - at start-up, the state of targets no longer configured (removed while
//     monitord was stopped), except under a Service that discovery watches:
//     discovery finds those again after start; and not at all when the
//     store is shared by several instances (Config.Shared);
//   - at each Service's first discovered set, the state under that Service of
//     targets neither discovered nor configured (sessions that ended, beyond
//     their grace, while monitord was stopped);
//   - whenever a change (reload, discovery dropping a target after its grace
//     period) removes a target from the poller: after the poller has
//     cancelled and awaited that target's poll, so no commit follows.
//
// It also applies the grace period: discovery (internal/discover) reports
// what each refresh saw to a Tracker (one per discover entry), and the
// Tracker decides which targets of ended or vanished sessions are still
// polled, and when one is dropped. Discovery keeps only the planning of
// its requests, from what the Tracker says it still tracks.
package targets

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
)

// Setter is the poller's half the target set drives. SetTargets replaces
// the polled set and returns only when removed targets' polls have ended.
type Setter interface {
	SetTargets(specs []poller.TargetSpec) error
}

// Store is the state store's half that lists and deletes targets' state.
type Store interface {
	Keys() ([]string, error)
	Forget(keys ...string) error
}

// Observer learns the polled targets by origin after each change (the
// monitord_targets_by_origin gauge).
type Observer interface {
	TargetsByOrigin(configured, discovered int)
}

// Config configures a Set.
type Config struct {
	// Poller receives every merged set; required.
	Poller Setter
	// Store is where targets' state is deleted; nil deletes nothing
	// (`monitord once`, which polls one time and owns no long-lived state).
	Store Store
	// Shared says the store is shared by several instances (ha): start-up
	// then forgets no configured target's state. An instance started on
	// an older config, during a rolling change that adds a target, would
	// otherwise forget the state the others poll, and the new target
	// would be baselined again, silently. A reload that removes a target
	// still forgets its state.
	Shared bool
	// Observer may be nil.
	Observer Observer
	// Log may be nil.
	Log *zap.Logger
}

// Set is the target set. Create it with New; it is safe for concurrent use
// (discovery refreshes and reloads arrive on their own goroutines).
type Set struct {
	cfg Config
	log *zap.Logger

	mu         sync.Mutex // serialises changes, so a reload and a refresh never undo each other
	configured []poller.TargetSpec
	templates  map[string]poller.TargetSpec // by Service: how its discovered targets are polled
	discovered map[string][]proxy.Target    // by Service, as its Trackers last set it
	trackers   map[string][]*Tracker        // by Service, one per discover entry
	applied    map[string]bool              // keys the poller polls now
	pruned     map[string]bool              // Services whose stale state was forgotten
	started    bool                         // Configure has succeeded once
}

// New returns an empty Set.
func New(cfg Config) (*Set, error) {
	if cfg.Poller == nil {
		return nil, errors.New("targets: poller is nil")
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &Set{
		cfg: cfg, log: log,
		templates:  map[string]poller.TargetSpec{},
		discovered: map[string][]proxy.Target{},
		trackers:   map[string][]*Tracker{},
		applied:    map[string]bool{},
		pruned:     map[string]bool{},
	}, nil
}

// Configure replaces the configured targets and the per-Service templates
// of discovered ones (start-up, reload), and hands the poller the merge.
// On error nothing changes.
//
// The first call is start-up: it also forgets the state of every target
// that is neither configured nor under a Service in templates (discovery
// speaks for those once it has refreshed), unless the store is shared. Later calls take discover
// entries as they were at start-up: an entry's poll settings and client
// apply at once, an added or removed entry only after a restart (its
// Discoverer is built once), which is logged.
func (s *Set) Configure(configured []poller.TargetSpec, templates map[string]poller.TargetSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]poller.TargetSpec, len(templates))
	for svc, t := range templates {
		next[svc] = t
	}
	for svc, old := range s.templates {
		if _, ok := next[svc]; !ok {
			next[svc] = old
			s.log.Warn("reload: removing a discover entry takes effect after a restart", zap.String("service", svc))
		}
	}
	if s.started {
		for svc := range next {
			if _, ok := s.templates[svc]; !ok {
				s.log.Warn("reload: a new discover entry takes effect after a restart", zap.String("service", svc))
			}
		}
	}
	if !s.started && !s.cfg.Shared {
		// Before the first apply, while nothing polls: a state file that
		// cannot be read or written fails start-up here.
		keep := make(map[string]bool, len(configured))
		for _, sp := range configured {
			keep[sp.Target.Key()] = true
		}
		err := s.forgetStaleLocked("forgetting state of targets no longer configured", func(key string) bool {
			_, watched := next[serviceOf(key)]
			return !keep[key] && !watched
		})
		if err != nil {
			return err
		}
	}
	if err := s.applyLocked(configured, next, s.discovered, true); err != nil {
		return err
	}
	s.configured, s.templates, s.started = configured, next, true
	return nil
}

// setDiscoveredLocked takes svc's complete discovered set (live targets
// and those in their grace period), as its Trackers decided it. A target
// that left the set is no longer polled, and its state is forgotten, unless
// it is also configured. The first set of a Service also forgets the state
// of its targets that nothing polls any more (dropped while monitord was
// stopped). s.mu is held.
//
// decided is false for a set adopted from another instance's decision
// (Tracker.Adopt, ha): it is polled, but forgets nothing, because the
// instance that decided has forgotten what it dropped already, and one that
// merely lags behind it must never delete state the decider has written
// since.
func (s *Set) setDiscoveredLocked(svc string, discovered []proxy.Target, decided bool) {
	if cur, ok := s.discovered[svc]; ok && slices.Equal(cur, discovered) && (!decided || s.pruned[svc]) {
		// Nothing to hand the poller: in poll.mode activity a Service is
		// refreshed every index interval (30 s), mostly to the same set.
		return
	}
	next := make(map[string][]proxy.Target, len(s.discovered)+1)
	for k, v := range s.discovered {
		next[k] = v
	}
	next[svc] = discovered
	if err := s.applyLocked(s.configured, s.templates, next, decided); err != nil {
		// The poller refused the whole list (it validates every spec
		// first); the next refresh tries again with the newest set.
		s.log.Error("apply discovered targets", zap.String("service", svc), zap.Error(err))
		return
	}
	s.discovered = next
	if !decided || s.pruned[svc] {
		return
	}
	s.pruned[svc] = true
	err := s.forgetStaleLocked("forgetting state of targets discovery no longer follows",
		func(key string) bool { return !s.applied[key] && serviceOf(key) == svc }, zap.String("service", svc))
	if err != nil {
		s.log.Warn("forget state of targets discovery no longer follows", zap.String("service", svc), zap.Error(err))
	}
}

// Specs returns the merged set the poller was last given.
func (s *Set) Specs() []poller.TargetSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	specs, _, _ := Merge(s.configured, s.discovered, s.templates)
	return specs
}

// applyLocked hands the poller the merge of configured and discovered, and
// forgets the state of the targets it no longer polls, unless forget is
// false (a set adopted from another instance). s.mu is held.
func (s *Set) applyLocked(configured []poller.TargetSpec, templates map[string]poller.TargetSpec,
	discovered map[string][]proxy.Target, forget bool) error {
	specs, nConf, nDisc := Merge(configured, discovered, templates)
	if err := s.cfg.Poller.SetTargets(specs); err != nil {
		return err
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.TargetsByOrigin(nConf, nDisc)
	}
	now := make(map[string]bool, len(specs))
	for _, sp := range specs {
		now[sp.Target.Key()] = true
	}
	var removed []string
	for k := range s.applied {
		if !now[k] {
			removed = append(removed, k)
		}
	}
	s.applied = now
	if !forget {
		return nil
	}
	slices.Sort(removed)
	// SetTargets has cancelled and awaited the removed targets' polls, so
	// none of them commits after this. A removed target added back later is
	// baselined afresh. The poller's set has changed already: a failure is
	// logged, and the next start's pass forgets what is left.
	if err := s.forget(removed, "forgetting state of removed targets"); err != nil {
		s.log.Warn("forget state of removed targets", zap.Error(err))
	}
	return nil
}

// forgetStaleLocked forgets the state of every key the store holds that
// stale selects. s.mu is held.
func (s *Set) forgetStaleLocked(msg string, stale func(key string) bool, fields ...zap.Field) error {
	if s.cfg.Store == nil {
		return nil
	}
	keys, err := s.cfg.Store.Keys()
	if err != nil {
		return err
	}
	var drop []string
	for _, k := range keys {
		if stale(k) {
			drop = append(drop, k)
		}
	}
	return s.forget(drop, msg, fields...)
}

// forget is the one path that deletes targets' state.
func (s *Set) forget(keys []string, msg string, fields ...zap.Field) error {
	if len(keys) == 0 || s.cfg.Store == nil {
		return nil
	}
	s.log.Info(msg, append(fields, zap.Int("targets", len(keys)))...)
	return s.cfg.Store.Forget(keys...)
}

// serviceOf returns the Service SID of a target key (proxy.Target.Key:
// "participant/KS…/KC…/KP…" or "session/KS…/KC…"), "" if it has none.
func serviceOf(key string) string {
	_, rest, ok := strings.Cut(key, "/")
	if !ok {
		return ""
	}
	svc, _, _ := strings.Cut(rest, "/")
	return svc
}
