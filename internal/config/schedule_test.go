package config

import (
	"strings"
	"testing"
)

// TestValidateSchedules: Validate alone catches every schedule the
// scheduler or discovery would refuse, in each of the four places a
// schedule is set, and names the key. robfig/cron itself accepts
// "@every 100ms" (and runs it every second) and "0 0 30 2 *" (which never
// fires): only the one parser, internal/schedule, refuses them, so this
// fails if validation parses with anything else.
func TestValidateSchedules(t *testing.T) {
	const (
		ks = "KS0123456789abcdef0123456789abcdef"
		kc = "KC0123456789abcdef0123456789abcdef"
		kp = "KP0123456789abcdef0123456789abcdef"
	)
	base := func() Config {
		cfg := Default()
		cfg.Twilio.AccountSID = testAC
		cfg.Twilio.AuthToken = "x"
		cfg.Targets = []Target{{Source: DefaultSource, ServiceSID: ks, SessionSID: kc, ParticipantSID: kp}}
		cfg.Discover = []Discover{{Source: DefaultSource, ServiceSID: ks, Schedule: DefaultDiscoverSchedule,
			ParticipantRefreshEvery: DefaultParticipantRefreshEvery}}
		return cfg
	}
	if cfg := base(); cfg.Validate() != nil {
		t.Fatalf("base config invalid: %v", cfg.Validate())
	}
	places := map[string]func(*Config, string){
		"poll.schedule":             func(c *Config, s string) { c.Poll.Schedule = s },
		"targets[0].schedule":       func(c *Config, s string) { c.Targets[0].Schedule = s },
		"discover[0].schedule":      func(c *Config, s string) { c.Discover[0].Schedule = s },
		"discover[0].poll_schedule": func(c *Config, s string) { c.Discover[0].PollSchedule = s },
	}
	specs := map[string]string{
		"@every 100ms": `"@every 100ms": interval must be whole seconds, at least 1s`,
		"@every 1.5s":  `"@every 1.5s": interval must be whole seconds, at least 1s`,
		"0 0 30 2 *":   `"0 0 30 2 *" never fires`,
		"* * *":        `"* * *" is not a cron spec: expected 5 to 6 fields, found 3: [* * *]`,
	}
	for key, set := range places {
		for spec, msg := range specs {
			cfg := base()
			set(&cfg, spec)
			err := cfg.Validate()
			if want := key + ": " + msg; err == nil || err.Error() != want {
				t.Errorf("%s = %q: Validate() = %v, want %s", key, spec, err, want)
			}
		}
		cfg := base()
		set(&cfg, "TZ=Europe/Berlin 0 9 * * MON-FRI")
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s with a zone prefix: %v", key, err)
		}
	}
	// An empty schedule is an error only where nothing else applies.
	cfg := base()
	cfg.Targets[0].Schedule, cfg.Discover[0].PollSchedule = "", ""
	cfg.Poll.Schedule, cfg.Discover[0].Schedule = "", ""
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "poll.schedule: required") ||
		!strings.Contains(err.Error(), "discover[0].schedule: required") || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("empty schedules: %v", err)
	}
}
