// Package config loads and validates monitord's configuration.
//
// Sources are layered, later wins: built-in defaults (Default), the YAML
// file, the environment (MONITORD_ prefix, "__" between levels so that
// snake_case keys survive: MONITORD_NATS__SUBJECT_PREFIX is
// nats.subject_prefix) and command-line flags that were set explicitly.
// Unknown keys and values of the wrong type are errors naming the key, and
// Validate reports every problem at once, so an operator fixes a config in one
// round instead of one error per restart.
//
// Secrets (Twilio API key secret and auth token, NATS password and token) are
// held as Secret, which prints as "[redacted]" in every format, and may come
// from the file itself, from a *_file path, or from systemd's
// $CREDENTIALS_DIRECTORY (LoadCredential=) under a documented name.
package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

// Config is the whole configuration of one monitord instance. Field tags
// name the YAML keys.
//
// One Twilio account is written with the top-level Twilio, Targets and
// Discover. Several accounts (an agency, or a company with subaccounts) are
// written as Accounts instead; then the top-level Twilio may hold only
// base_url and limits, which every account inherits unless it sets its own.
// EffectiveAccounts returns either form as a list.
type Config struct {
	// Instance names this process in heartbeats and NATS client names.
	// Empty means the host name (with characters that are not allowed in
	// a NATS subject token replaced by "_").
	Instance string `koanf:"instance"`
	// Twilio is the single account's credentials and limits, or, with
	// Accounts, the shared base_url and limits.
	Twilio Twilio `koanf:"twilio"`
	// Targets are the single account's configured listings.
	Targets []Target `koanf:"targets"`
	// Discover lists the single account's Services whose sessions are
	// found and followed automatically.
	Discover []Discover `koanf:"discover"`
	// Accounts replaces Twilio credentials, Targets and Discover when
	// several Twilio accounts are monitored.
	Accounts []Account `koanf:"accounts"`
	// Poll is the scheduling of polls and heartbeats.
	Poll Poll `koanf:"poll"`
	// Rules decide which changes become which events.
	Rules Rules `koanf:"rules"`
	// State is the local bbolt store of snapshots and the outbox.
	State State `koanf:"state"`
	// NATS is where events are published.
	NATS NATS `koanf:"nats"`
	// Admin is the HTTP listener for /metrics, /healthz, /readyz, /status.
	Admin Admin `koanf:"admin"`
	// Log configures the zap logger.
	Log Log `koanf:"log"`
	// Reasons governs fetching why a failed message failed.
	Reasons Reasons `koanf:"reasons"`
	// Alertmanager configures `monitord alertmanager` (alertmanager.go).
	Alertmanager Alertmanager `koanf:"alertmanager"`
	// HA runs several instances on NATS JetStream (ha.go).
	HA HA `koanf:"ha"`

	// warnings are what Validate found risky but allowed; fileWarnings
	// what Load found reading secret files.
	warnings, fileWarnings []string
	// setBy maps a key path set by the environment or a flag to its name.
	setBy map[string]string
}

// Warnings returns what Load found risky but allowed, one sentence each
// starting with the key it concerns: check prints them and run logs them
// at start.
func (c *Config) Warnings() []string {
	if len(c.fileWarnings) == 0 {
		return c.warnings
	}
	return append(slices.Clip(c.fileWarnings), c.warnings...)
}

func (c *Config) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// Twilio holds one account's API access: where, who, and how fast.
type Twilio struct {
	// BaseURL is the Proxy API root; the client never follows a
	// next_page_url to another scheme or host.
	BaseURL string `koanf:"base_url"`
	// MessagesBaseURL is the root of the 2010-04-01 API that serves the
	// Message resources behind failed legs (reasons). The simulator
	// serves both APIs on one address.
	MessagesBaseURL string `koanf:"messages_base_url"`
	// AccountSID is the account (or subaccount) SID, AC….
	AccountSID string `koanf:"account_sid"`
	// APIKeySID is the API key SID, SK… (recommended over the auth token).
	APIKeySID string `koanf:"api_key_sid"`
	// APIKeySecret is the API key's secret.
	APIKeySecret Secret `koanf:"api_key_secret"`
	// APIKeySecretFile is a file holding APIKeySecret.
	APIKeySecretFile string `koanf:"api_key_secret_file"`
	// AuthToken is the account's auth token, used with AccountSID.
	AuthToken Secret `koanf:"auth_token"`
	// AuthTokenFile is a file holding AuthToken.
	AuthTokenFile string `koanf:"auth_token_file"`
	// Limits bound the request rate, concurrency and response sizes.
	Limits Limits `koanf:"limits"`
}

// Limits keep monitord under Twilio's limits by design (30 requests/s per
// Service averaged over 5 s, bursts to 150/s, an account-wide concurrency
// limit), so that 429s are rare rather than the control loop.
type Limits struct {
	// RequestsPerSecond is the token bucket rate per Proxy Service.
	RequestsPerSecond float64 `koanf:"requests_per_second"`
	// Burst is the token bucket size per Service.
	Burst int `koanf:"burst"`
	// MaxInFlight caps concurrent requests for the whole account.
	MaxInFlight int `koanf:"max_in_flight"`
	// PageSize is the PageSize query parameter, 1..1000.
	PageSize int `koanf:"page_size"`
	// MaxPages bounds one listing; a listing that needs more fails.
	MaxPages int `koanf:"max_pages"`
	// MaxResponseBytes bounds one response body.
	MaxResponseBytes int64 `koanf:"max_response_bytes"`
	// RequestTimeout bounds one HTTP request, retries excluded.
	RequestTimeout time.Duration `koanf:"request_timeout"`
	// MaxAttempts is the number of tries of one request (1 = no retry).
	MaxAttempts int `koanf:"max_attempts"`
	// MinBackoff is the first retry delay when no Retry-After is given.
	MinBackoff time.Duration `koanf:"min_backoff"`
	// MaxBackoff caps the retry delay, Retry-After included.
	MaxBackoff time.Duration `koanf:"max_backoff"`
	// Scope is what one token bucket covers: a whole Service (service)
	// or one endpoint of a Service (endpoint); see activity.go.
	Scope string `koanf:"scope"`
}

// Account is one Twilio account with its own credentials, limits, targets
// and discovery.
type Account struct {
	// Name identifies the account in logs, metrics and credential names
	// (<name>_twilio_auth_token); letters, digits, "_" and "-".
	Name string `koanf:"name"`
	// Twilio is the account's API access; base_url and limits default to
	// the top-level twilio ones.
	Twilio Twilio `koanf:"twilio"`
	// Targets are the account's configured listings.
	Targets []Target `koanf:"targets"`
	// Discover lists the account's Services to discover sessions in.
	Discover []Discover `koanf:"discover"`
}

// Target is one configured listing to poll.
type Target struct {
	// Source is participant (MessageInteractions, the default) or session
	// (the session's Interactions).
	Source proxy.Source `koanf:"source"`
	// ServiceSID is the Proxy Service, KS….
	ServiceSID string `koanf:"service_sid"`
	// SessionSID is the Session, KC….
	SessionSID string `koanf:"session_sid"`
	// ParticipantSID is the Participant, KP…; empty for source session.
	ParticipantSID string `koanf:"participant_sid"`
	// Schedule overrides poll.schedule for this target (cron spec).
	Schedule string `koanf:"schedule"`
	// Labels are free-form key/values carried to logs and /status.
	Labels map[string]string `koanf:"labels"`
}

// TwilioTarget returns the listing address the client and state use.
func (t Target) TwilioTarget() proxy.Target {
	return proxy.Target{Source: t.Source, ServiceSID: t.ServiceSID, SessionSID: t.SessionSID, ParticipantSID: t.ParticipantSID}
}

// Discover asks for a Proxy Service's sessions and participants to be found
// and followed without listing them by hand (issue 8).
type Discover struct {
	// ServiceSID is the Proxy Service to watch, KS….
	ServiceSID string `koanf:"service_sid"`
	// Source is what to poll for each session found: participant (each
	// participant's MessageInteractions, the default) or session.
	Source proxy.Source `koanf:"source"`
	// SessionStatus keeps only sessions in these statuses; empty keeps
	// every status but closed and failed.
	SessionStatus []string `koanf:"session_status"`
	// UniqueNamePrefix keeps only sessions whose unique_name starts with it.
	UniqueNamePrefix string `koanf:"unique_name_prefix"`
	// Schedule is how often the session list is refreshed (cron spec).
	Schedule string `koanf:"schedule"`
	// PollSchedule overrides poll.schedule for the discovered targets.
	PollSchedule string `koanf:"poll_schedule"`
	// Grace is how long a closed or vanished session's targets are still
	// polled (late delivery receipts) before they and their state go.
	Grace time.Duration `koanf:"grace"`
	// ParticipantRefreshEvery re-lists the participants of a known,
	// complete session only every Nth refresh (new sessions and ones with
	// fewer than two participants every time), saving requests.
	ParticipantRefreshEvery int `koanf:"participant_refresh_every"`
	// Labels are given to every discovered target.
	Labels map[string]string `koanf:"labels"`
}

// Poll is the default scheduling of every target, and the heartbeat.
type Poll struct {
	// Schedule is a robfig/cron spec: five or six fields (optional
	// seconds) or a descriptor such as "@every 1m".
	Schedule string `koanf:"schedule"`
	// Timezone is the IANA zone cron specs are read in.
	Timezone string `koanf:"timezone"`
	// Spread offsets each target within its interval by a stable hash,
	// so that thousands of targets do not fire in the same second.
	Spread bool `koanf:"spread"`
	// Timeout bounds one poll of one target, every page included.
	Timeout time.Duration `koanf:"timeout"`
	// HeartbeatInterval is how often the heartbeat event is published.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// ShutdownTimeout bounds how long in-flight polls and the outbox
	// drain may take after SIGTERM.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// Mode is schedule (every target on its cron spec) or activity (a
	// planner per Service; activity.go).
	Mode string `koanf:"mode"`
	// Activity configures the planner of activity mode.
	Activity Activity `koanf:"activity"`
}

// Rules decide which observed changes become which events.
type Rules struct {
	// AlertStatuses are the statuses that make a "failed" event.
	AlertStatuses []string `koanf:"alert_statuses"`
	// StuckAfter is how long an outbound status may stay non-terminal
	// before a "stuck" event.
	StuckAfter time.Duration `koanf:"stuck_after"`
	// Baseline governs a target's first complete listing.
	Baseline Baseline `koanf:"baseline"`
	// PublishKinds are the event kinds published; others are dropped.
	PublishKinds []event.Kind `koanf:"publish_kinds"`
	// IncludeBody puts the message body (personal data) into events.
	IncludeBody bool `koanf:"include_body"`
	// TargetErrorAfter is how many consecutive transient failures
	// (5xx, timeouts) make a target_error; 401/403/404 count at once.
	TargetErrorAfter int `koanf:"target_error_after"`
}

// Baseline governs the silent first listing of a target.
type Baseline struct {
	// AlertRecent still alerts for failures updated this recently, so a
	// restart does not miss a fresh failure nor page for last week's.
	AlertRecent time.Duration `koanf:"alert_recent"`
}

// State is the local store.
type State struct {
	// Path is the bbolt file. Empty means $STATE_DIRECTORY/monitord.db
	// (systemd StateDirectory=) or else ./monitord.db; Load resolves it.
	Path string `koanf:"path"`
	// MaxOutboxEvents bounds the outbox while NATS is unreachable.
	MaxOutboxEvents int `koanf:"max_outbox_events"`
	// MaxOutboxBytes bounds the outbox size in bytes.
	MaxOutboxBytes int64 `koanf:"max_outbox_bytes"`
	// OpenTimeout bounds waiting for the file lock of another process.
	OpenTimeout time.Duration `koanf:"open_timeout"`
}

// NATS is the connection events are published on.
type NATS struct {
	// URLs are the servers (nats://, tls://, ws://, wss://). The key
	// "url" is accepted as a single-URL alias.
	URLs []string `koanf:"urls"`
	// Name is the client connection name; empty means monitord/<instance>.
	Name string `koanf:"name"`
	// User is the user name for password authentication.
	User string `koanf:"user"`
	// Password is User's password.
	Password Secret `koanf:"password"`
	// PasswordFile is a file holding Password.
	PasswordFile string `koanf:"password_file"`
	// Token is a bearer token.
	Token Secret `koanf:"token"`
	// TokenFile is a file holding Token.
	TokenFile string `koanf:"token_file"`
	// NKeySeedFile is a file holding an NKey seed (SU…).
	NKeySeedFile string `koanf:"nkey_seed_file"`
	// CredsFile is a decentralised-auth .creds file (JWT and seed).
	CredsFile string `koanf:"creds_file"`
	// TLS configures server verification and client certificates.
	TLS TLS `koanf:"tls"`
	// AllowInsecureAuth lets credentials go over plain nats:// or ws:// to
	// a host other than loopback. Validate refuses that otherwise; with it,
	// Warnings says so, and run logs it at start.
	AllowInsecureAuth bool `koanf:"allow_insecure_auth"`
	// Mode is jetstream (durable, deduplicated by Nats-Msg-Id) or core.
	Mode string `koanf:"mode"`
	// SubjectPrefix is the first subject token: <prefix>.<kind>.….
	SubjectPrefix string `koanf:"subject_prefix"`
	// Stream is the JetStream stream events go to.
	Stream Stream `koanf:"stream"`
	// MaxPending caps published messages awaiting their PubAck.
	MaxPending int `koanf:"max_pending"`
	// AckTimeout bounds waiting for one PubAck.
	AckTimeout time.Duration `koanf:"ack_timeout"`
}

// TLS holds file paths for NATS TLS.
type TLS struct {
	// CAFile is a PEM bundle of CAs to verify the server with.
	CAFile string `koanf:"ca_file"`
	// CertFile is the client certificate (PEM), with KeyFile.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the client key (PEM), with CertFile.
	KeyFile string `koanf:"key_file"`
}

// Stream is the JetStream stream settings; monitord creates the stream when
// Create is set, otherwise it only checks the stream exists.
type Stream struct {
	// Name is the stream name.
	Name string `koanf:"name"`
	// Create creates the stream on start-up, or widens an existing one.
	Create bool `koanf:"create"`
	// Storage is file or memory.
	Storage string `koanf:"storage"`
	// MaxAge is how long events are kept in the stream.
	MaxAge time.Duration `koanf:"max_age"`
	// Duplicates is the Nats-Msg-Id deduplication window.
	Duplicates time.Duration `koanf:"duplicates"`
	// Replicas is the number of stream replicas, 1..5.
	Replicas int `koanf:"replicas"`
	// AllowShrink lets Create shorten an existing stream's max_age or
	// duplicate window; off, the stream keeps its longer values.
	AllowShrink bool `koanf:"allow_shrink"`
}

// Admin is the HTTP admin listener.
type Admin struct {
	// Listen is host:port; empty disables the listener.
	Listen string `koanf:"listen"`
	// Pprof serves Go's profiler at /debug/pprof/ on the listener. Off by
	// default: turn it on to take a profile (docs/operations.md).
	Pprof bool `koanf:"pprof"`
}

// Reasons governs fetching the Message resource of each failed leg for its
// error_code and error_message. The fetches have their own budget per
// account, apart from the Proxy limits, and never hold a poll longer than
// Timeout.
type Reasons struct {
	// Enabled fetches reasons; off, failed events carry no error_code.
	Enabled bool `koanf:"enabled"`
	// Rate is FetchMessage requests per second per account.
	Rate float64 `koanf:"rate"`
	// Concurrency caps FetchMessage requests in flight per account, on top
	// of twilio.limits.max_in_flight.
	Concurrency int `koanf:"concurrency"`
	// Timeout bounds the wait for the reasons of one poll; failed events
	// whose reason has not arrived by then go out without one.
	Timeout time.Duration `koanf:"timeout"`
	// MetricCodes are the error codes monitord_failed_events_total keeps
	// as their own label value; other codes count as "other", which bounds
	// the metric's cardinality. Empty: the codes monitord knows a meaning
	// of.
	MetricCodes []int `koanf:"metric_codes"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `koanf:"level"`
	// Format is json, console, or auto: console when stderr is a terminal,
	// else json (journald and log shippers parse JSON).
	Format string `koanf:"format"`
}

// Default returns the built-in defaults. Lists of targets, discovery entries
// and accounts are empty; their items' defaults are applied by Load.
// State.Path is left empty (Load resolves it from $STATE_DIRECTORY).
func Default() Config {
	kinds := make([]event.Kind, len(event.Kinds))
	copy(kinds, event.Kinds)
	return Config{
		Instance: defaultInstance(),
		Twilio: Twilio{
			BaseURL:         "https://proxy.twilio.com",
			MessagesBaseURL: "https://api.twilio.com",
			Limits:          DefaultLimits(),
		},
		Poll: Poll{
			Schedule:          "@every 1m",
			Timezone:          "UTC",
			Spread:            true,
			Timeout:           5 * time.Minute,
			HeartbeatInterval: 30 * time.Second,
			ShutdownTimeout:   15 * time.Second,
			Mode:              PollModeSchedule,
			Activity:          DefaultActivity(),
		},
		Rules: Rules{
			AlertStatuses:    []string{"failed", "undelivered"},
			StuckAfter:       15 * time.Minute,
			Baseline:         Baseline{AlertRecent: 15 * time.Minute},
			PublishKinds:     kinds,
			TargetErrorAfter: 3,
		},
		State: State{
			MaxOutboxEvents: 1_000_000,
			MaxOutboxBytes:  1 << 30,
			OpenTimeout:     10 * time.Second,
		},
		NATS: NATS{
			URLs:          []string{"nats://127.0.0.1:4222"},
			Mode:          "jetstream",
			SubjectPrefix: "monitord",
			Stream: Stream{
				Name:       "MONITORD",
				Create:     true,
				Storage:    "file",
				MaxAge:     168 * time.Hour,
				Duplicates: 2 * time.Hour,
				Replicas:   1,
			},
			MaxPending: 1024,
			AckTimeout: 5 * time.Second,
		},
		Admin:        Admin{Listen: "127.0.0.1:9464"},
		Log:          Log{Level: "info", Format: "auto"},
		Alertmanager: DefaultAlertmanager(),
		HA:           DefaultHA(),
		Reasons:      Reasons{Enabled: true, Rate: 10, Concurrency: 4, Timeout: 5 * time.Second},
	}
}

// DefaultLimits returns the default Twilio limits: 27 requests/s per Service
// with a burst of 10 is at most 145 requests in any 5 s window, under the
// 150 Twilio allows (30/s averaged over 5 s), and uses 90 % of it.
func DefaultLimits() Limits {
	return Limits{
		RequestsPerSecond: 27,
		Burst:             10,
		MaxInFlight:       10,
		PageSize:          1000,
		MaxPages:          1000,
		MaxResponseBytes:  16 << 20,
		RequestTimeout:    30 * time.Second,
		MaxAttempts:       5,
		MinBackoff:        500 * time.Millisecond,
		MaxBackoff:        30 * time.Second,
		Scope:             LimitScopeService,
	}
}

// Defaults of list items, applied by Load to each item before its keys.
const (
	// DefaultSource is a target's and a discovery entry's source.
	DefaultSource = proxy.SourceParticipant
	// DefaultDiscoverSchedule is how often discovery refreshes.
	DefaultDiscoverSchedule = "@every 5m"
	// DefaultDiscoverGrace is how long a closed session is still polled.
	DefaultDiscoverGrace = time.Hour
	// DefaultParticipantRefreshEvery is discovery's participants re-listing
	// period, in refreshes.
	DefaultParticipantRefreshEvery = 12
	// SingleAccountName names the top-level account in EffectiveAccounts.
	SingleAccountName = "default"
)

// EffectiveAccounts returns the accounts to monitor: Accounts when set,
// otherwise one account named "default" made of the top-level Twilio,
// Targets and Discover. Callers iterate this instead of both forms.
func (c *Config) EffectiveAccounts() []Account {
	if len(c.Accounts) > 0 {
		return c.Accounts
	}
	return []Account{{Name: SingleAccountName, Twilio: c.Twilio, Targets: c.Targets, Discover: c.Discover}}
}

// defaultInstance is the host name made into one NATS subject token.
func defaultInstance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "monitord"
	}
	return sanitizeToken(h)
}

// sanitizeToken replaces every byte outside [A-Za-z0-9_-] with "_".
func sanitizeToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, s)
}
