//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// daemonConfig is what a scenario chooses of monitord's config; the rest is
// fixed by writeConfig.
type daemonConfig struct {
	SimURL    string
	Creds     proxysim.Credentials
	NATSURL   string
	StatePath string
	AdminAddr string
	Targets   []proxysim.Target
	Schedule  string // poll.schedule
	// Mode is poll.mode: "" or schedule, or activity (with intervals of
	// seconds, so that every target is polled at least every 3 s as with
	// the scenarios' fast schedules).
	Mode string
	// Activity, when set, is poll.activity (YAML flow) instead of the
	// fast intervals.
	Activity string
	// AlertRecent is rules.baseline.alert_recent; 0: 0s, a silent
	// baseline the oracle can explain.
	AlertRecent time.Duration

	RequestsPerSecond float64 // twilio.limits.requests_per_second; 0: default
	Burst             int     // twilio.limits.burst; 0: default
	MaxInFlight       int     // twilio.limits.max_in_flight; 0: default
	MaxAttempts       int     // 0: default
	TargetErrorAfter  int     // rules.target_error_after; 0: default
	Heartbeat         time.Duration
	Extra             string // appended verbatim (YAML)
}

// freeLoopbackAddr returns a loopback address with a port free right now,
// for monitord's admin listener (which must be known before it starts).
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// writeConfig writes a monitord YAML config to dir and returns its path.
// Retry delays are short so fault scenarios finish in seconds; stuck
// detection is effectively off (the simulator's stuck rate is 0 and the
// oracle does not model stuck events); baseline alerts are off so the
// baseline is silent and every event is a change the oracle can explain.
func writeConfig(t testing.TB, dir string, c daemonConfig) string {
	t.Helper()
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("instance: e2e")
	p("twilio:")
	p("  base_url: %s", c.SimURL)
	p("  messages_base_url: %s", c.SimURL)
	p("  account_sid: %s", c.Creds.AccountSID)
	p("  api_key_sid: %s", c.Creds.APIKeySID)
	p("  api_key_secret: %s", c.Creds.APIKeySecret)
	p("  limits:")
	if c.RequestsPerSecond > 0 {
		p("    requests_per_second: %g", c.RequestsPerSecond)
	}
	if c.Burst > 0 {
		p("    burst: %d", c.Burst)
	}
	if c.MaxInFlight > 0 {
		p("    max_in_flight: %d", c.MaxInFlight)
	}
	if c.MaxAttempts > 0 {
		p("    max_attempts: %d", c.MaxAttempts)
	}
	p("    request_timeout: 5s")
	p("    min_backoff: 50ms")
	p("    max_backoff: 2s")
	p("targets:")
	for _, tg := range c.Targets {
		p("  - {source: participant, service_sid: %s, session_sid: %s, participant_sid: %s}",
			tg.ServiceSID, tg.SessionSID, tg.ParticipantSID)
	}
	p("discover: []")
	p("poll:")
	p("  schedule: %q", c.Schedule)
	if c.Mode == "activity" {
		p("  mode: activity")
		act := c.Activity
		if act == "" {
			act = "{index_every: 1s, hot_min: 1s, hot_max: 2s, cold_every: 3s, settle: 1m}"
		}
		p("  activity: %s", act)
	}
	p("  timeout: 30s")
	hb := c.Heartbeat
	if hb == 0 {
		hb = 5 * time.Second
	}
	p("  heartbeat_interval: %s", hb)
	p("  shutdown_timeout: 5s")
	p("rules:")
	p("  stuck_after: 240h")
	p("  baseline: {alert_recent: %s}", c.AlertRecent)
	if c.TargetErrorAfter > 0 {
		p("  target_error_after: %d", c.TargetErrorAfter)
	}
	p("state:")
	p("  path: %s", c.StatePath)
	p("  open_timeout: 5s")
	p("nats:")
	p("  urls: [%s]", c.NATSURL)
	p("  ack_timeout: 2s")
	p("admin:")
	p("  listen: %s", c.AdminAddr)
	p("log:")
	p("  level: info")
	p("  format: json")
	b.WriteString(c.Extra)
	path := filepath.Join(dir, "monitord.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
