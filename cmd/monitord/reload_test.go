package main

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/activity"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestReloadKeepsTheNewClients: a reload that changes an account's
// settings builds a new client, and the daemon keeps it: the next reload
// without a change reuses it (its rate limiter keeps its state), and the
// clients closed at shutdown are the ones in use. Before, the daemon kept
// the map it started with, so every later reload rebuilt the client (a
// fresh bucket, a full burst) and the one in use was never closed.
func TestReloadKeepsTheNewClients(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 1, Services: 1})
	o := demoOptions{targets: 2, schedule: "@every 1m", failureRate: 0.2, seed: 1}
	cfg := demoConfig(o, sim, "http://127.0.0.1:1", "nats://127.0.0.1:1", t.TempDir())
	cfg.Admin.Listen = ""
	d, err := startDaemon(context.Background(), cfg, zap.NewNop(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	name := cfg.EffectiveAccounts()[0].Name
	first := d.accountClients()[name].client

	changed := *cfg
	changed.Twilio.Limits.RequestsPerSecond = 20
	if err := d.Reload(&changed); err != nil {
		t.Fatal(err)
	}
	second := d.accountClients()[name].client
	if second == first || d.accountClients()[name].settings.Limits.RequestsPerSecond != 20 {
		t.Fatalf("after a change of limits: client %p (was %p), %v req/s; want a new client at 20", second, first,
			d.accountClients()[name].settings.Limits.RequestsPerSecond)
	}
	same := changed
	if err := d.Reload(&same); err != nil {
		t.Fatal(err)
	}
	if d.accountClients()[name].client != second {
		t.Errorf("a reload without a change rebuilt the client")
	}
}

// TestReloadKeepsTheInstanceName: instance is a restart-only setting, so
// /status keeps naming the instance as the heartbeat and the ha records
// do after a reload that changes it. Before, /status read the reloaded
// config and named an instance nothing else knew.
func TestReloadKeepsTheInstanceName(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 1, Services: 1})
	o := demoOptions{targets: 2, schedule: "@every 1m", failureRate: 0.2, seed: 1}
	cfg := demoConfig(o, sim, "http://127.0.0.1:1", "nats://127.0.0.1:1", t.TempDir())
	cfg.Admin.Listen = ""
	cfg.Instance = "first"
	d, err := startDaemon(context.Background(), cfg, zap.NewNop(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	changed := *cfg
	changed.Instance = "renamed"
	if err := d.Reload(&changed); err != nil {
		t.Fatal(err)
	}
	if got := d.status.Instance(); got != "first" {
		t.Errorf("/status names instance %q after the reload, want %q (the name at start)", got, "first")
	}
}

// TestReloadChangesActivityBudget: in poll.mode activity a reload that
// changes an account's limits changes its Services' budgets, which the
// planner plans with and the client's requests take their tokens from.
// Before, a budget kept the rate it was made with until a restart.
func TestReloadChangesActivityBudget(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 1, Services: 1})
	o := demoOptions{targets: 2, schedule: "@every 1m", failureRate: 0.2, seed: 1}
	cfg := demoConfig(o, sim, "http://127.0.0.1:1", "nats://127.0.0.1:1", t.TempDir())
	cfg.Admin.Listen = ""
	cfg.Poll.Mode = config.PollModeActivity
	d, err := startDaemon(context.Background(), cfg, zap.NewNop(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	svc := sim.Services()[0]
	budget := func() *activity.Budget {
		d.activity.bmu.Lock()
		defer d.activity.bmu.Unlock()
		return d.activity.budgets[svc]
	}
	b := budget()
	if b == nil {
		t.Fatalf("no budget for %s", svc)
	}
	changed := *cfg
	changed.Twilio.Limits.RequestsPerSecond = 5
	changed.Twilio.Limits.Burst = 3
	if err := d.Reload(&changed); err != nil {
		t.Fatal(err)
	}
	if budget() != b {
		t.Fatal("the reload replaced the budget: its tokens and debt would be forgotten")
	}
	if r, n := b.Limits(); r != 5 || n != 3 {
		t.Errorf("budget after the reload: %v/s, burst %d; want 5/s, burst 3", r, n)
	}

	// A reload refused after the budgets were set changes nothing.
	refused := changed
	refused.Twilio.Limits.RequestsPerSecond = 9
	refused.Poll.Schedule = "not a schedule"
	if err := d.Reload(&refused); err == nil {
		t.Fatal("a reload with a bad schedule was accepted")
	}
	if r, n := b.Limits(); r != 5 || n != 3 {
		t.Errorf("budget after a refused reload: %v/s, burst %d; want 5/s, burst 3 as before", r, n)
	}
}
