package main

import (
	"path/filepath"
	"time"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
)

// newDemoSim builds a world small enough to read on one screen and busy
// enough that something happens every few seconds: two Services, two
// participants per session, a short backlog (some of it still in flight,
// some recently failed) and a new message per participant every 8 s.
func newDemoSim(o demoOptions) *proxysim.Sim {
	services := 2
	if o.targets == 1 {
		services = 1
	}
	const participants = 2
	perSession := services * participants
	opts := proxysim.Options{
		Seed:             o.seed,
		Services:         services,
		Sessions:         (o.targets + perSession - 1) / perSession,
		Participants:     participants,
		Interactions:     6,
		BacklogGap:       20 * time.Second,
		InteractionEvery: 8 * time.Second,
		FailureRate:      o.failureRate,
		StuckRate:        0.05,
	}
	if o.discover {
		withDemoSessionChurn(&opts)
	}
	return proxysim.New(opts)
}

// demoConfig is the config a user would write for the simulator, with a
// fast schedule, and baseline.alert_recent long enough that the backlog's
// recent failures are reported on the first poll instead of recorded
// silently: the demo shows a failure within seconds.
func demoConfig(o demoOptions, sim *proxysim.Sim, simURL, natsURL, dir string) *config.Config {
	cfg := config.Default()
	cfg.Instance = "demo"
	creds := sim.Credentials()
	cfg.Twilio.BaseURL = simURL
	cfg.Twilio.MessagesBaseURL = simURL // the simulator serves both APIs
	cfg.Twilio.AccountSID = creds.AccountSID
	cfg.Twilio.APIKeySID = creds.APIKeySID
	cfg.Twilio.APIKeySecret = config.Secret(creds.APIKeySecret)
	cfg.Twilio.Limits.RequestTimeout = 10 * time.Second
	cfg.Twilio.Limits.MaxBackoff = 2 * time.Second
	for i, t := range sim.Targets() {
		if i == o.targets {
			break
		}
		cfg.Targets = append(cfg.Targets, config.Target{
			Source: config.DefaultSource, ServiceSID: t.ServiceSID, SessionSID: t.SessionSID, ParticipantSID: t.ParticipantSID,
		})
	}
	if o.discover {
		// Discovery finds the sessions above and every one opened later.
		useDemoDiscovery(&cfg, sim.Services())
		for i := range cfg.Discover {
			cfg.Discover[i].PollSchedule = o.schedule
		}
	}
	cfg.Poll.Schedule = o.schedule
	cfg.Poll.Timeout = 30 * time.Second
	cfg.Poll.HeartbeatInterval = 10 * time.Second
	cfg.Poll.ShutdownTimeout = 4 * time.Second
	cfg.Rules.StuckAfter = 30 * time.Second
	cfg.Rules.Baseline.AlertRecent = 10 * time.Minute
	cfg.State.Path = filepath.Join(dir, "state.db")
	cfg.NATS.URLs = []string{natsURL}
	cfg.NATS.Name = "monitord demo"
	cfg.NATS.Stream.MaxAge = time.Hour
	cfg.NATS.Stream.Duplicates = 10 * time.Minute
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Log = config.Log{Level: "warn", Format: "console"}
	return &cfg
}
