package main

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/config"
)

// newAdminServer binds the admin listener with the daemon's checks: live
// while the scheduler ticks; ready when the state file answers and its
// last commit succeeded, NATS is connected and a poll cycle is complete
// (with ha.enabled: the KV bucket answers instead of the file and the cycle).
func newAdminServer(cfg *config.Config, d *daemon, log *zap.Logger) (*admin.Server, error) {
	ready := []admin.Check{
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
	}
	if d.ha != nil {
		// An instance polls only the Services it owns, so its own cycle
		// never completes when it owns none: ready is the shared state
		// answering (a standby is ready to take over).
		ready[0].Fn = func() error {
			if err := d.ha.node.Ready(context.Background()); err != nil {
				return err
			}
			return d.poller.StateErr()
		}
		ready = ready[:2]
	}
	return admin.New(admin.Config{
		Addr:    cfg.Admin.Listen,
		Pprof:   cfg.Admin.Pprof,
		Metrics: d.metrics,
		Status:  func() any { return d.status.Doc() },
		Live:    []admin.Check{{Name: "scheduler", Fn: admin.Recent("scheduler tick", d.poller.LastTick, 10*time.Second)}},
		Ready:   ready,
		Log:     log,
	})
}
