package ha

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
)

// discoveryPrefix starts the keys of the discovery records in the state
// bucket: d.<service SID>, the set the Service's owner last decided. The
// store's own keys start with t., c. and p.; the ownership records with o.
const discoveryPrefix = "d."

// A discovery record is written whole into one value: the largest the
// bucket takes (kvstore.Store.MaxValue: the server's max payload, 1 MiB by
// default, or the bucket's own limit). About 19,000 live sessions of two
// participants fit in 1 MiB (55 bytes a session once compressed,
// BenchmarkHADiscoveryRecord); a larger Service's refresh fails to write,
// naming the sizes, and every instance keeps the last set written.

// Discovery is an instance's discovery of the Services its discover
// entries watch (*discover.Discoverer).
type Discovery interface {
	// RefreshService runs one refresh of the entry of serviceSID here:
	// it lists through this instance's client, so within its budget of
	// the Service, and hands what it saw to the entry's Tracker.
	RefreshService(ctx context.Context, serviceSID string) ([]proxy.Session, error)
	// Seed starts the entry's next refresh from another instance's set.
	Seed(serviceSID string, tracked map[proxy.Target]time.Time) error
}

// Tracker is a discover entry's half of the target set (*targets.Tracker).
type Tracker interface {
	// Tracked is the entry's set after its last refresh or adoption.
	Tracked() map[proxy.Target]time.Time
	// Adopt polls the owner's set without forgetting any state.
	Adopt(tracked map[proxy.Target]time.Time)
}

// DiscoveredService is one discover entry of a Node: a Service whose
// targets discovery finds. With ha one entry per Service.
type DiscoveredService struct {
	// Service is the Service SID (KS…).
	Service string
	// Schedule is the entry's refresh schedule, as schedule.Parse reads
	// it (ha imports no config reader). Every instance derives
	// the same instants from it (poller.Aligned), so the refresh ticks of
	// the three schedulers are one task each.
	Schedule cron.Schedule
	// Location is the time zone the schedule is read in (poll.timezone,
	// as for the poll ticks); nil is UTC. Every instance must read it in
	// the same zone, or their ticks' ids differ and each refreshes.
	Location *time.Location
	// Source is the entry's target source, recorded with its set.
	Source proxy.Source
	// Discovery runs the refresh when this instance owns the Service.
	Discovery Discovery
	// Tracker takes the owner's set on every instance.
	Tracker Tracker
}

// Discover adds a discovered Service to the Node, before Run: the
// Service's consumer and worker exist from then on, with or without
// targets, because its refresh tasks are delivered through them. While
// Run runs, every instance publishes the entry's refresh ticks as tasks;
// the Service's owner runs each (Refresh) and writes the set it decided
// into the bucket (d.<service>); every instance polls that set (Adopt),
// so every scheduler knows every target and a new owner starts warm.
func (n *Node) Discover(ds DiscoveredService) error {
	if err := proxy.CheckSID("service_sid", "KS", ds.Service); err != nil {
		return fmt.Errorf("ha discover: %w", err)
	}
	if ds.Schedule == nil || ds.Discovery == nil || ds.Tracker == nil {
		return fmt.Errorf("ha discover %s: schedule, discovery and tracker are required", ds.Service)
	}
	if ds.Source == "" {
		ds.Source = proxy.SourceParticipant
	}
	if ds.Location == nil {
		ds.Location = time.UTC
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.runCtx != nil {
		return fmt.Errorf("ha discover %s: the node runs already", ds.Service)
	}
	if _, dup := n.discovered[ds.Service]; dup {
		return fmt.Errorf("ha discover %s: a second entry for one Service", ds.Service)
	}
	n.discovered[ds.Service] = &discState{DiscoveredService: ds}
	n.wantLocked()
	return nil
}

// discState is a discovered Service on this instance.
type discState struct {
	DiscoveredService
	// mu orders what reaches the Tracker: an owner's refresh (adopt,
	// refresh, write) and the watch's adoptions never interleave.
	mu sync.Mutex
	// due is the refresh tick of the newest record adopted or written,
	// unix ms: a record the watch delivers late (older) is not adopted
	// over a newer decision.
	due int64
}

// adoptLocked takes rec when it is newer than what ds holds. ds.mu is held.
func (ds *discState) adoptLocked(rec *discoveryRecord) {
	if rec.DueMillis <= ds.due {
		return
	}
	ds.due = rec.DueMillis
	ds.Tracker.Adopt(rec.tracked(&ds.DiscoveredService))
}

// discoveryLoops starts in wg, when there are discovered Services, the
// watch of their records and each one's refresh ticks, until ctx is done.
func (n *Node) discoveryLoops(ctx context.Context, wg *sync.WaitGroup) {
	n.mu.Lock()
	dss := make([]*discState, 0, len(n.discovered))
	for _, ds := range n.discovered {
		dss = append(dss, ds)
	}
	n.mu.Unlock()
	if len(dss) == 0 {
		return
	}
	wg.Go(func() { n.watchDiscovery(ctx) })
	for _, ds := range dss {
		wg.Go(func() { n.discoverTicks(ctx, ds) })
	}
}

// workPoller is what a Node's workers run tasks through: polls go to the
// instance's poller, discovery refreshes to the Node.
type workPoller struct {
	n *Node
	Poller
}

// Refresh implements work.Refresher.
func (w workPoller) Refresh(ctx context.Context, service string, due time.Time) error {
	return w.n.refresh(ctx, service, due)
}

// discoverTicks publishes ds's refresh ticks as tasks. At start it adopts
// the last record (so this instance polls the Service's targets before any
// refresh) and queues the schedule's last instant unless the record says
// a refresh at or after it was done: the first deployment, or one that was
// down across a tick, does not wait a whole interval for its set.
func (n *Node) discoverTicks(ctx context.Context, ds *discState) {
	sched := poller.Aligned(ds.Schedule)
	start := lastDue(sched, ds.Schedule, time.Now().In(ds.Location))
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		rec, _, err := n.readDiscovery(rctx, ds.Service)
		cancel()
		if err == nil {
			if rec != nil {
				ds.mu.Lock()
				ds.adoptLocked(rec)
				ds.mu.Unlock()
				if !start.IsZero() && rec.DueMillis >= start.UnixMilli() {
					start = time.Time{}
				}
			}
			break
		}
		n.log.Debug("ha: read discovery record", zap.String("service", ds.Service), zap.Error(err))
		if !sleep(ctx, time.Second) {
			return
		}
	}
	if !start.IsZero() {
		n.publishDiscover(ctx, ds.Service, start)
	}
	for {
		now := time.Now().In(ds.Location)
		next := sched.Next(now)
		if next.IsZero() || !sleep(ctx, next.Sub(now)) {
			return
		}
		n.publishDiscover(ctx, ds.Service, next)
	}
}

// lastDue is the schedule's last instant at or before now (zero when its
// interval is unknown). now is in the schedule's time zone: a spec such
// as "0 3 * * *" means 03:00 there, whatever zone the host runs in.
func lastDue(sched, spec cron.Schedule, now time.Time) time.Time {
	if iv := poller.Interval(spec, now); iv > 0 {
		if p := sched.Next(now.Add(-iv)); !p.After(now) {
			return p
		}
	}
	return time.Time{}
}

// publishDiscover queues one refresh tick; like a poll tick, a failure is
// counted and the next tick refreshes.
func (n *Node) publishDiscover(ctx context.Context, svc string, due time.Time) {
	pctx, cancel := context.WithTimeout(ctx, min(5*time.Second, n.cfg.Work.Duplicates/4))
	_, err := n.queue.PublishDiscover(pctx, svc, due)
	cancel()
	if err != nil && ctx.Err() == nil {
		n.failed.Add(1)
		n.dropLog.Do(func() {
			n.log.Warn("publish discovery task", zap.String("service", svc), zap.Error(err),
				zap.Int64("failed_total", n.failed.Load()))
		})
	}
}

// watchDiscovery adopts every discovery record written, on every
// instance (the owner's own included: it is what the owner decided), until
// ctx is done. A watch lost with the connection is opened again.
func (n *Node) watchDiscovery(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := n.kv.Watch(ctx, discoveryPrefix+">", jetstream.IgnoreDeletes())
		if err != nil {
			n.log.Debug("ha: watch discovery records", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		n.adoptUpdates(ctx, w)
		_ = w.Stop()
	}
}

func (n *Node) adoptUpdates(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // the end of the initial values, or a removal
			}
			svc := strings.TrimPrefix(e.Key(), discoveryPrefix)
			n.mu.Lock()
			ds := n.discovered[svc]
			n.mu.Unlock()
			if ds == nil {
				continue
			}
			rec, err := decodeDiscovery(e.Value())
			if err != nil {
				n.log.Warn("ha: bad discovery record ignored", zap.String("key", e.Key()), zap.Error(err))
				continue
			}
			ds.mu.Lock()
			ds.adoptLocked(rec)
			ds.mu.Unlock()
		}
	}
}

// refresh runs one refresh task of svc on this instance, its owner: it
// adopts and seeds the last record (another owner's, after a takeover),
// refreshes, and writes the set it decided, compare-and-set against the
// record it read. A task whose tick the record shows done already (a task
// delivered again) does nothing.
func (n *Node) refresh(ctx context.Context, svc string, due time.Time) error {
	n.mu.Lock()
	ds := n.discovered[svc]
	n.mu.Unlock()
	if ds == nil {
		return fmt.Errorf("discover task for Service %s: no discover entry here (every instance must list the same)", svc)
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	rec, rev, err := n.readDiscovery(ctx, svc)
	if err != nil {
		return err
	}
	if rec != nil {
		if rec.DueMillis >= due.UnixMilli() {
			return nil
		}
		ds.adoptLocked(rec)
		// Seeded even when adoptLocked had it: this instance's own
		// caches may be from before another owner's refreshes.
		if err := ds.Discovery.Seed(svc, rec.tracked(&ds.DiscoveredService)); err != nil {
			return err
		}
	}
	if _, err := ds.Discovery.RefreshService(ctx, svc); err != nil {
		return err // names the Service already
	}
	next := newDiscoveryRecord(n.cfg.Instance, due, time.Now(), ds.Source, ds.Tracker.Tracked())
	data, err := next.encode(n.store.MaxValue())
	if err != nil {
		return fmt.Errorf("discovery record %s: %w", svc, err)
	}
	if rev == 0 {
		_, err = n.kv.Create(ctx, discoveryPrefix+svc, data)
	} else {
		_, err = n.kv.Update(ctx, discoveryPrefix+svc, data, rev)
	}
	if err != nil {
		// Another owner wrote meanwhile (a pin moved mid-refresh): its
		// set stands, and the next refresh starts from it.
		return fmt.Errorf("write discovery record %s: %w", svc, err)
	}
	ds.due = next.DueMillis
	return nil
}

// readDiscovery reads svc's record and its revision: nil and 0 when there
// is none yet.
func (n *Node) readDiscovery(ctx context.Context, svc string) (*discoveryRecord, uint64, error) {
	e, err := n.kv.Get(ctx, discoveryPrefix+svc)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read discovery record %s: %w", svc, err)
	}
	rec, err := decodeDiscovery(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("discovery record %s: %w", svc, err)
	}
	return rec, e.Revision(), nil
}

// discoveryRecord is d.<service>: the set the Service's owner decided at
// its last refresh, grouped by session (a session's participants share
// its grace, so most sessions are one entry), as gzip-compressed JSON.
type discoveryRecord struct {
	Instance  string           `json:"instance"`
	DueMillis int64            `json:"due_ms"` // the refresh tick it answers
	At        time.Time        `json:"at"`
	Sessions  []recordedTarget `json:"sessions"`
}

// recordedTarget is the targets of one session that share one state: the
// session's own (session source), or its participants (participant
// source).
type recordedTarget struct {
	Session      string   `json:"s"`
	Participants []string `json:"p,omitempty"`
	GraceSince   int64    `json:"g,omitempty"` // unix ms; 0 while live
}

func newDiscoveryRecord(instance string, due, at time.Time, src proxy.Source, tracked map[proxy.Target]time.Time) *discoveryRecord {
	type group struct {
		session string
		since   int64
	}
	groups := map[group][]string{}
	for t, since := range tracked {
		g := group{session: t.SessionSID}
		if !since.IsZero() {
			g.since = since.UnixMilli()
		}
		if src == proxy.SourceParticipant {
			groups[g] = append(groups[g], t.ParticipantSID)
		} else if _, ok := groups[g]; !ok {
			groups[g] = nil
		}
	}
	rec := &discoveryRecord{Instance: instance, DueMillis: due.UnixMilli(), At: at.UTC()}
	for g, ps := range groups {
		slices.Sort(ps)
		rec.Sessions = append(rec.Sessions, recordedTarget{Session: g.session, Participants: ps, GraceSince: g.since})
	}
	slices.SortFunc(rec.Sessions, func(a, b recordedTarget) int {
		if c := strings.Compare(a.Session, b.Session); c != 0 {
			return c
		}
		return int(a.GraceSince - b.GraceSince)
	})
	return rec
}

// tracked is the record's set as ds's Tracker holds it.
func (r *discoveryRecord) tracked(ds *DiscoveredService) map[proxy.Target]time.Time {
	out := map[proxy.Target]time.Time{}
	for _, s := range r.Sessions {
		var since time.Time
		if s.GraceSince != 0 {
			since = time.UnixMilli(s.GraceSince).UTC()
		}
		if ds.Source == proxy.SourceSession {
			out[proxy.Target{Source: proxy.SourceSession, ServiceSID: ds.Service, SessionSID: s.Session}] = since
			continue
		}
		for _, p := range s.Participants {
			out[proxy.Target{Source: proxy.SourceParticipant, ServiceSID: ds.Service, SessionSID: s.Session, ParticipantSID: p}] = since
		}
	}
	return out
}

func (r *discoveryRecord) encode(max int) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > max {
		return nil, fmt.Errorf("%d sessions make %d bytes, over the %d a value holds", len(r.Sessions), buf.Len(), max)
	}
	return buf.Bytes(), nil
}

// decodeDiscovery reads a record and checks the SIDs it names, so a
// corrupt record is refused rather than polled.
func decodeDiscovery(data []byte) (*discoveryRecord, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode discovery record: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("decode discovery record: %w", err)
	}
	var rec discoveryRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode discovery record: %w", err)
	}
	for _, s := range rec.Sessions {
		if err := proxy.CheckSID("session_sid", "KC", s.Session); err != nil {
			return nil, fmt.Errorf("discovery record: %w", err)
		}
		for _, p := range s.Participants {
			if err := proxy.CheckSID("participant_sid", "KP", p); err != nil {
				return nil, fmt.Errorf("discovery record: %w", err)
			}
		}
	}
	return &rec, nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
