package main

import (
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/notify"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

// The conversions below turn config sections into the parts' own
// configs: each part knows nothing of the config file.

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
		MaxReasonWaits:   reasonWaits(cfg),
		Rules:            diffRules(cfg),
		PublishKinds:     cfg.Rules.PublishKinds,
		Render:           renderFunc(cfg),
		Store:            store,
		Log:              log.Named("poller"),
	}, nil
}

// reasonWaits is how many polls may wait for their failure reasons at
// once: what the accounts' FetchMessage budgets can serve within one
// reasons.timeout (rate × timeout, plus the requests in flight). A poll
// past that would wait only to time out, holding its next snapshot and the
// page text behind it: at 10,000 targets a baseline's storm of 256 waiting
// polls held about 40 MB of heap for nothing.
func reasonWaits(cfg *config.Config) int {
	r := cfg.Reasons
	if !r.Enabled {
		return 0 // the poller's default; no poll waits
	}
	per := int(math.Ceil(r.Rate*r.Timeout.Seconds())) + r.Concurrency
	return max(16, per*len(cfg.EffectiveAccounts()))
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
		RequestsPerSecond: l.RequestsPerSecond, Burst: l.Burst, MaxInFlight: l.MaxInFlight, LimitScope: l.Scope,
		PageSize: l.PageSize, MaxPages: l.MaxPages, MaxResponseBytes: l.MaxResponseBytes,
		MaxAttempts: l.MaxAttempts, MinBackoff: l.MinBackoff, MaxBackoff: l.MaxBackoff,
		RequestTimeout: l.RequestTimeout, Observer: ob,
	}
}
