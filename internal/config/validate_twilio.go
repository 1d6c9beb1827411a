package config

import (
	"fmt"
	"net/url"
	"sort"

	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/redact"
)

// sessionStatuses are the spec's session_enum_status values, the ones a
// discovery filter may name.
var sessionStatuses = []string{"open", "in-progress", "closed", "failed", "unknown"}

// seen remembers where each target and discovered Service was first
// configured, across accounts: SIDs are global, so a repeat anywhere would
// poll the same listing twice and emit every event twice.
type seen struct {
	targets  map[string]string
	services map[string]string
}

// validateAccounts checks the single-account form or the accounts list, and
// that the two are not mixed: with accounts, the top level may only hold the
// shared twilio.base_url, twilio.messages_base_url and twilio.limits.
func (c *Config) validateAccounts(p *Problems) {
	s := seen{targets: map[string]string{}, services: map[string]string{}}
	if len(c.Accounts) == 0 {
		validateTwilio(p, "twilio", "", &c.Twilio)
		validateTargets(p, "targets", c.Targets, &s)
		validateDiscover(p, "discover", c.Discover, &s)
		return
	}
	const hint = "not allowed with accounts; set it in each accounts[].%s"
	if len(c.Targets) > 0 {
		p.addf("targets: "+hint, "targets")
	}
	if len(c.Discover) > 0 {
		p.addf("discover: "+hint, "discover")
	}
	t := c.Twilio
	for _, f := range []struct {
		key string
		set bool
	}{
		{"account_sid", t.AccountSID != ""},
		{"api_key_sid", t.APIKeySID != ""},
		{"api_key_secret", t.APIKeySecret != "" && t.APIKeySecretFile == ""},
		{"api_key_secret_file", t.APIKeySecretFile != ""},
		{"auth_token", t.AuthToken != "" && t.AuthTokenFile == ""},
		{"auth_token_file", t.AuthTokenFile != ""},
	} {
		if f.set {
			p.addf("twilio.%s: "+hint+" (only base_url and limits are shared)", f.key, "twilio."+f.key)
		}
	}
	checkBaseURL(p, "twilio.base_url", t.BaseURL)
	checkBaseURL(p, "twilio.messages_base_url", t.MessagesBaseURL)
	validateLimits(p, "twilio.limits", t.Limits)

	names := map[string]int{}
	for i := range c.Accounts {
		a := &c.Accounts[i]
		key := fmt.Sprintf("accounts[%d]", i)
		credPrefix := a.Name + "_"
		switch j, dup := names[a.Name]; {
		case a.Name == "":
			p.addf("%s.name: required", key)
			credPrefix = "<name>_"
		case !tokenRE.MatchString(a.Name):
			p.addf("%s.name: %q must be letters, digits, \"_\" or \"-\"", key, a.Name)
		case dup:
			p.addf("%s.name: %q is already the name of accounts[%d]", key, a.Name, j)
		default:
			names[a.Name] = i
		}
		validateTwilio(p, key+".twilio", credPrefix, &a.Twilio)
		validateTargets(p, key+".targets", a.Targets, &s)
		validateDiscover(p, key+".discover", a.Discover, &s)
	}
}

// validateTwilio checks one account's access. Exactly one auth kind: an API
// key (SK… and its secret, recommended) or the account's auth token.
func validateTwilio(p *Problems, key, credPrefix string, t *Twilio) {
	checkBaseURL(p, key+".base_url", t.BaseURL)
	checkBaseURL(p, key+".messages_base_url", t.MessagesBaseURL)
	checkSID(p, key+".account_sid", "AC", t.AccountSID)
	hasKey := t.APIKeySID != "" || t.APIKeySecret != ""
	hasToken := t.AuthToken != ""
	switch {
	case hasKey && hasToken:
		p.addf("%s: both an API key (api_key_sid, api_key_secret) and auth_token are set; use one", key)
	case !hasKey && !hasToken:
		p.addf("%s: no credentials: set api_key_sid and api_key_secret (recommended) or auth_token, "+
			"each secret inline, as *_file or as systemd credential %s%s / %s%s",
			key, credPrefix, CredTwilioAPIKeySecret, credPrefix, CredTwilioAuthToken)
	case hasKey:
		checkSID(p, key+".api_key_sid", "SK", t.APIKeySID)
		if t.APIKeySecret == "" {
			p.addf("%s.api_key_secret: required with api_key_sid (or api_key_secret_file, or systemd credential %s%s)",
				key, credPrefix, CredTwilioAPIKeySecret)
		}
	}
	validateLimits(p, key+".limits", t.Limits)
}

func validateLimits(p *Problems, key string, l Limits) {
	if l.RequestsPerSecond <= 0 {
		p.addf("%s.requests_per_second: must be positive, got %v", key, l.RequestsPerSecond)
	}
	atLeast(p, key+".burst", int64(l.Burst), 1)
	atLeast(p, key+".max_in_flight", int64(l.MaxInFlight), 1)
	if l.PageSize < 1 || l.PageSize > 1000 {
		p.addf("%s.page_size: must be between 1 and 1000, got %d", key, l.PageSize)
	}
	atLeast(p, key+".max_pages", int64(l.MaxPages), 1)
	atLeast(p, key+".max_response_bytes", l.MaxResponseBytes, 1024)
	positive(p, key+".request_timeout", l.RequestTimeout)
	atLeast(p, key+".max_attempts", int64(l.MaxAttempts), 1)
	nonNegative(p, key+".min_backoff", l.MinBackoff)
	positive(p, key+".max_backoff", l.MaxBackoff)
	if l.MaxBackoff > 0 && l.MinBackoff > l.MaxBackoff {
		p.addf("%s.min_backoff: %s is longer than max_backoff %s", key, l.MinBackoff, l.MaxBackoff)
	}
	oneOf(p, key+".scope", l.Scope, LimitScopeService, LimitScopeEndpoint)
}

func validateTargets(p *Problems, key string, targets []Target, s *seen) {
	for i, t := range targets {
		k := fmt.Sprintf("%s[%d]", key, i)
		n := len(*p)
		if !t.Source.Valid() {
			p.addf("%s.source: %q is not %q or %q", k, t.Source, proxy.SourceParticipant, proxy.SourceSession)
		}
		checkSID(p, k+".service_sid", "KS", t.ServiceSID)
		checkSID(p, k+".session_sid", "KC", t.SessionSID)
		switch {
		case t.Source == proxy.SourceParticipant:
			checkSID(p, k+".participant_sid", "KP", t.ParticipantSID)
		case t.Source == proxy.SourceSession && t.ParticipantSID != "":
			p.addf("%s.participant_sid: must be empty for source %q (it lists the whole session)", k, proxy.SourceSession)
		}
		checkCron(p, k+".schedule", t.Schedule, false)
		checkLabels(p, k+".labels", t.Labels)
		if len(*p) > n {
			continue // a duplicate of an invalid target says nothing new
		}
		id := t.TwilioTarget().Key()
		if first, dup := s.targets[id]; dup {
			p.addf("%s: duplicate of %s (%s)", k, first, id)
			continue
		}
		s.targets[id] = k
	}
}

func validateDiscover(p *Problems, key string, list []Discover, s *seen) {
	for i, d := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		checkSID(p, k+".service_sid", "KS", d.ServiceSID)
		if !d.Source.Valid() {
			p.addf("%s.source: %q is not %q or %q", k, d.Source, proxy.SourceParticipant, proxy.SourceSession)
		}
		for j, st := range d.SessionStatus {
			oneOf(p, fmt.Sprintf("%s.session_status[%d]", k, j), st, sessionStatuses...)
		}
		checkCron(p, k+".schedule", d.Schedule, true)
		checkCron(p, k+".poll_schedule", d.PollSchedule, false)
		nonNegative(p, k+".grace", d.Grace)
		atLeast(p, k+".participant_refresh_every", int64(d.ParticipantRefreshEvery), 1)
		checkLabels(p, k+".labels", d.Labels)
		if proxy.ValidSID("KS", d.ServiceSID) {
			if first, dup := s.services[d.ServiceSID]; dup {
				p.addf("%s.service_sid: %s is already discovered by %s", k, d.ServiceSID, first)
			} else {
				s.services[d.ServiceSID] = k
			}
		}
	}
}

// checkSID says "required" for a missing SID and otherwise the pattern.
func checkSID(p *Problems, key, prefix, sid string) {
	if sid == "" {
		p.addf("%s: required (%s followed by 32 hex digits)", key, prefix)
		return
	}
	if err := proxy.CheckSID(key, prefix, sid); err != nil {
		*p = append(*p, err)
	}
}

func checkLabels(p *Problems, key string, labels map[string]string) {
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !labelKeyRE.MatchString(name) {
			p.addf("%s: key %q must match %s", key, name, labelKeyRE)
		}
	}
}

// checkBaseURL: credentials go to this host only, so it must be an
// absolute URL without user info, and https unless the host is loopback
// (the simulator and tests), where plain http crosses no network.
func checkBaseURL(p *Problems, key, raw string) {
	u, err := url.Parse(raw)
	shown := redact.URL(raw) // never echo a password given in the URL
	switch {
	case raw == "":
		p.addf("%s: required", key)
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		p.addf("%s: %q is not an http or https URL", key, shown)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		p.addf("%s: %q must be https (http only to a loopback host such as the simulator): "+
			"Basic auth would cross the network in clear text", key, shown)
	case u.User != nil:
		p.addf("%s: must not contain credentials", key)
	case u.RawQuery != "" || u.Fragment != "":
		p.addf("%s: %q must not have a query or fragment", key, shown)
	}
}

// canonicalSIDs writes the configured Proxy SIDs with lower-case hex, the
// form Twilio writes and the decoder stores (proxy.CanonicalSID). SIDs are
// compared as strings: a target written KSAB… in the config would get a
// state key apart from the one discovery finds for the same participant,
// and be polled and reported twice. Invalid SIDs are left as written, for
// validation to name.
func (c *Config) canonicalSIDs() {
	canon := func(prefix string, sid *string) {
		if proxy.ValidSID(prefix, *sid) {
			*sid = proxy.CanonicalSID(*sid)
		}
	}
	fix := func(targets []Target, discover []Discover) {
		for i := range targets {
			canon("KS", &targets[i].ServiceSID)
			canon("KC", &targets[i].SessionSID)
			canon("KP", &targets[i].ParticipantSID)
		}
		for i := range discover {
			canon("KS", &discover[i].ServiceSID)
		}
	}
	fix(c.Targets, c.Discover)
	for i := range c.Accounts {
		fix(c.Accounts[i].Targets, c.Accounts[i].Discover)
	}
}
