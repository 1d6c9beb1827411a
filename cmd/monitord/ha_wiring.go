package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/discover"
	"github.com/monitord/monitord/internal/ha"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/schedule"
	"github.com/monitord/monitord/internal/state/kvstore"
	"github.com/monitord/monitord/internal/targets"
	"github.com/monitord/monitord/internal/work"
)

// daemonStore is what the daemon's parts need of the state store: the
// bbolt file (*state.DB) of a single instance, or the KV bucket
// (*kvstore.Store) every instance shares with ha.enabled.
type daemonStore interface {
	poller.Store
	notify.Outbox
	targets.Store
	OutboxStats() (events int, bytes int64, oldest time.Time, err error)
	Close() error
}

// haWiring is ha.enabled's share of the daemon: a NATS connection of its
// own (the publisher's is made and remade inside its Run, and state must be
// reachable before anything runs) and the ha.Node on it.
type haWiring struct {
	nc   *nats.Conn
	node *ha.Node
	// instance is the name the Node writes in the bucket: the one at
	// start (a reload applies the ha section at the next restart).
	instance string
}

// haWorkConfig converts the ha section to the work queue's config.
func haWorkConfig(cfg *config.Config) work.Config {
	t := cfg.HA.Tasks
	return work.Config{Prefix: t.SubjectPrefix, Stream: t.Stream, Replicas: cfg.HA.Replicas, Duplicates: t.Duplicates,
		PinnedTTL: t.PinnedTTL, PullExpiry: t.PullExpiry, AckWait: t.AckWait, Concurrency: t.Concurrency}
}

// haConfig converts the ha section to the Node's config.
func haConfig(cfg *config.Config, log *zap.Logger) ha.Config {
	return ha.Config{Instance: cfg.Instance, Work: haWorkConfig(cfg), CreateAssets: cfg.HA.CreateAssets, Log: log,
		KV: kvstore.Config{Bucket: cfg.HA.Bucket, Replicas: cfg.HA.Replicas}, Balance: cfg.HA.Balance}
}

// spendBurstOnOwned is the Node's OnOwned: a Service this instance takes
// over starts at its bucket's rate, without a burst. The previous owner
// may have spent its own burst in the same 5 s window, and rate × 5 plus
// two bursts passes Twilio's 150 (the defaults: 135 + 20 = 155).
func (d *daemon) spendBurstOnOwned(service string) {
	for _, ac := range d.accountClients() {
		ac.client.SpendBurst(service)
	}
}

// connectHA dials NATS with the publisher's authentication and TLS. It
// fails at once when no server answers: with ha.enabled the state is in
// NATS, so nothing can start without it (systemd restarts the unit).
func connectHA(cfg *config.Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	ncfg := notifyConfig(cfg)
	opts, err := notify.AuthOptions(ncfg)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, nats.Name(name), nats.MaxReconnects(-1), nats.IgnoreAuthErrorAbort())
	nc, err := nats.Connect(strings.Join(ncfg.URLs, ","), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("ha: connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("ha: jetstream: %w", err)
	}
	return nc, js, nil
}

// openHA connects and opens the Node: the bucket and the tasks stream are
// created, or found when ha.create_assets is off.
func openHA(ctx context.Context, cfg *config.Config, log *zap.Logger, onOwned func(service string)) (*haWiring, error) {
	nc, js, err := connectHA(cfg, cfg.NATS.Name+"/ha")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := haConfig(cfg, log)
	hc.OnOwned = onOwned
	node, err := ha.Open(ctx, js, hc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ha: %w", err)
	}
	return &haWiring{nc: nc, node: node, instance: hc.Instance}, nil
}

// discover hands the Node every discover entry: with ha, the refreshes
// run as tasks on each Service's owner (never by the Discoverers' own
// Run), and every instance polls the set the owner decided.
func (h *haWiring) discover(w *targetWiring) error {
	for _, e := range w.haEntries {
		spec := e.cfg.Schedule
		if spec == "" {
			spec = discover.DefaultSchedule
		}
		sched, err := schedule.Parse(spec)
		if err != nil {
			return fmt.Errorf("discover %s: schedule: %w", e.cfg.ServiceSID, err)
		}
		err = h.node.Discover(ha.DiscoveredService{Service: e.cfg.ServiceSID, Schedule: sched, Location: w.loc, Source: e.cfg.Source,
			Discovery: e.d, Tracker: e.tracker})
		if err != nil {
			return err
		}
	}
	w.driven = w.driven || len(w.haEntries) > 0
	return nil
}

// start creates (or checks) the consumer of every Service of the target
// set, once the targets are configured.
func (h *haWiring) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.node.EnsureServices(ctx); err != nil {
		return fmt.Errorf("ha: %w", err)
	}
	return nil
}

// view is the /status section of ha mode.
func (h *haWiring) view() *admin.HAView {
	v := &admin.HAView{Instance: h.instance, Services: h.node.Services(), TicksSkipped: h.node.TicksSkipped(),
		Handovers: h.node.Handovers(), KV: "ok"}
	for _, o := range h.node.Owned() {
		v.Owned = append(v.Owned, admin.HAOwned{Service: o.Service, Since: o.Since})
	}
	if err := h.node.Ready(context.Background()); err != nil {
		v.KV = err.Error()
	}
	return v
}

// ownedServices is the heartbeat's Owned: nil for a single instance.
func (d *daemon) ownedServices() func() []string {
	if d.ha == nil {
		return nil
	}
	return func() []string {
		var out []string
		for _, o := range d.ha.node.Owned() {
			out = append(out, o.Service)
		}
		return out
	}
}

// close closes the connection; the store is closed before it (daemon.close).
func (h *haWiring) close() {
	if h != nil && h.nc != nil {
		h.nc.Close()
	}
}

// errNoHA is status --cluster on a config without ha.enabled.
var errNoHA = errors.New("ha.enabled is false: a single instance owns every Service")
