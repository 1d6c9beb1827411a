package main

import (
	"time"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
)

// Demo discovery settings: short enough that a demo of a minute shows
// sessions being picked up and dropped.
const (
	demoDiscoverSchedule = "@every 5s"
	demoDiscoverGrace    = 30 * time.Second
	demoSessionOpenEvery = 15 * time.Second
	demoSessionLifetime  = time.Minute
)

// useDemoDiscovery makes a demo follow the simulator's Services by
// discovery, as an operator would a real account, instead of a hand-made
// target list: every Service gets a `discover` entry and cfg.Targets is
// cleared. One line after demoConfig:
//
//	useDemoDiscovery(cfg, sim.Services())
func useDemoDiscovery(cfg *config.Config, services []string) {
	cfg.Targets = nil
	cfg.Discover = nil
	for _, svc := range services {
		cfg.Discover = append(cfg.Discover, config.Discover{
			ServiceSID: svc, Source: config.DefaultSource, Schedule: demoDiscoverSchedule,
			Grace: demoDiscoverGrace, ParticipantRefreshEvery: config.DefaultParticipantRefreshEvery,
		})
	}
}

// withDemoSessionChurn makes the simulator open a session in every Service
// every 15 s and close each after a minute, so discovery has something to
// follow. One line before proxysim.New:
//
//	withDemoSessionChurn(&simOptions)
func withDemoSessionChurn(o *proxysim.Options) {
	o.SessionOpenEvery = demoSessionOpenEvery
	o.SessionLifetime = demoSessionLifetime
}
