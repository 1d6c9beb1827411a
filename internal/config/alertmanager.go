package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/redact"
)

// Alertmanager configures `monitord alertmanager`: the bridge that reads
// events from the JetStream stream through a durable consumer and posts
// them to Prometheus Alertmanager's v2 API. The daemon ignores this
// section; the bridge ignores twilio, targets, discover, poll, rules and
// state, so each process is given only the secrets it uses.
type Alertmanager struct {
	// URLs are the Alertmanager base URLs (http or https, with the
	// --web.route-prefix path if one is set). Each batch goes to every one,
	// as Prometheus does with an Alertmanager cluster; one accepting it is
	// enough, the cluster gossips the rest.
	URLs []string `koanf:"urls"`
	// Timeout bounds one POST to one Alertmanager.
	Timeout time.Duration `koanf:"timeout"`
	// User is the HTTP basic auth user name.
	User string `koanf:"user"`
	// Password is User's password.
	Password Secret `koanf:"password"`
	// PasswordFile is a file holding Password.
	PasswordFile string `koanf:"password_file"`
	// BearerToken is sent as "Authorization: Bearer …".
	BearerToken Secret `koanf:"bearer_token"`
	// BearerTokenFile is a file holding BearerToken.
	BearerTokenFile string `koanf:"bearer_token_file"`
	// TLS configures server verification and a client certificate.
	TLS TLS `koanf:"tls"`
	// Consumer is the durable JetStream consumer's name: its position in
	// the stream survives restarts of the bridge.
	Consumer string `koanf:"consumer"`
	// Kinds are the event kinds made into alerts: failed, and optionally
	// stuck and target_error.
	Kinds []event.Kind `koanf:"kinds"`
	// ResolveAfter sets each alert's endsAt this long after it is posted,
	// so alerts resolve by themselves: monitord never sees a failed
	// message get better.
	ResolveAfter time.Duration `koanf:"resolve_after"`
	// ResendInterval is how often alerts before their endsAt are posted
	// again: Alertmanager keeps alerts in memory only, and one that
	// restarted has forgotten them. 0 disables.
	ResendInterval time.Duration `koanf:"resend_interval"`
	// BatchSize is the most events posted in one request.
	BatchSize int `koanf:"batch_size"`
	// MinBackoff and MaxBackoff bound the jittered exponential delay
	// between attempts while no Alertmanager accepts a batch.
	MinBackoff time.Duration `koanf:"min_backoff"`
	MaxBackoff time.Duration `koanf:"max_backoff"`
	// AckWait is the consumer's ack wait: JetStream redelivers an event
	// not acknowledged (nor marked in progress) within it.
	AckWait time.Duration `koanf:"ack_wait"`
	// Listen serves the bridge's /metrics and /healthz on host:port; ""
	// disables it. It must differ from admin.listen on a shared host.
	Listen string `koanf:"listen"`
}

// DefaultAlertmanager returns the defaults of the alertmanager section.
func DefaultAlertmanager() Alertmanager {
	return Alertmanager{
		Timeout:        10 * time.Second,
		Consumer:       "monitord-alertmanager",
		Kinds:          []event.Kind{event.Failed},
		ResolveAfter:   time.Hour,
		ResendInterval: time.Minute,
		BatchSize:      100,
		MinBackoff:     time.Second,
		MaxBackoff:     30 * time.Second,
		AckWait:        2 * time.Minute,
	}
}

// alertKinds are the event kinds the bridge can turn into alerts.
var alertKinds = []event.Kind{event.Failed, event.Stuck, event.TargetError}

// validate checks the section, for `monitord alertmanager` (the daemon
// does not read it).
func (a *Alertmanager) validate(p *Problems) {
	if len(a.URLs) == 0 {
		p.addf("alertmanager.urls: must list at least one Alertmanager, e.g. http://127.0.0.1:9093")
	}
	for i, raw := range a.URLs {
		key := fmt.Sprintf("alertmanager.urls[%d]", i)
		u, err := url.Parse(raw)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			p.addf("%s: %q is not an http or https URL such as http://127.0.0.1:9093", key, redact.URL(raw))
		case u.User != nil:
			// Credentials in a URL end up in logs; they have keys of their own.
			p.addf("%s: must not contain credentials; use alertmanager.user/password or bearer_token", key)
		case u.RawQuery != "" || u.Fragment != "":
			p.addf("%s: must not have a query or fragment", key)
		case u.Scheme == "http" && (a.User != "" || a.BearerToken != "") && !loopback(u.Hostname()):
			// The same rule as twilio.base_url: a password or token is
			// never sent across the network in clear text.
			p.addf("%s: %q must be https when alertmanager.user or bearer_token is set (http only to a loopback host)", key, u.Redacted())
		}
	}
	positive(p, "alertmanager.timeout", a.Timeout)
	if a.User != "" && a.Password == "" {
		p.addf("alertmanager.password: required with alertmanager.user (or password_file, or credential %s)", CredAlertmanagerPassword)
	}
	if a.User == "" && a.Password != "" {
		p.addf("alertmanager.user: required with alertmanager.password")
	}
	if a.User != "" && a.BearerToken != "" {
		p.addf("alertmanager: set either user/password or bearer_token, not both")
	}
	checkFile(p, "alertmanager.tls.ca_file", a.TLS.CAFile)
	checkFile(p, "alertmanager.tls.cert_file", a.TLS.CertFile)
	checkFile(p, "alertmanager.tls.key_file", a.TLS.KeyFile)
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		p.addf("alertmanager.tls: cert_file and key_file go together")
	}
	if a.Consumer == "" {
		p.addf("alertmanager.consumer: required")
	} else if !tokenRE.MatchString(a.Consumer) {
		p.addf("alertmanager.consumer: %q must be letters, digits, \"_\" or \"-\"", a.Consumer)
	}
	if len(a.Kinds) == 0 {
		p.addf("alertmanager.kinds: must list at least one of failed, stuck, target_error")
	}
	seen := map[event.Kind]bool{}
	for i, k := range a.Kinds {
		key := fmt.Sprintf("alertmanager.kinds[%d]", i)
		ok := false
		for _, a := range alertKinds {
			ok = ok || k == a
		}
		switch {
		case !ok:
			p.addf("%s: %q is not failed, stuck or target_error", key, k)
		case seen[k]:
			p.addf("%s: %q is listed twice", key, k)
		}
		seen[k] = true
	}
	positive(p, "alertmanager.resolve_after", a.ResolveAfter)
	nonNegative(p, "alertmanager.resend_interval", a.ResendInterval)
	if a.BatchSize < 1 || a.BatchSize > 10000 {
		p.addf("alertmanager.batch_size: must be between 1 and 10000, got %d", a.BatchSize)
	}
	positive(p, "alertmanager.min_backoff", a.MinBackoff)
	if a.MaxBackoff < a.MinBackoff {
		p.addf("alertmanager.max_backoff: %s is shorter than alertmanager.min_backoff %s", a.MaxBackoff, a.MinBackoff)
	}
	// Each attempt marks the batch in progress, which restarts the ack
	// wait: it must outlast one backoff plus one round of posts.
	if need := a.MaxBackoff + a.Timeout; a.AckWait <= need {
		p.addf("alertmanager.ack_wait: %s must be longer than max_backoff + timeout (%s), or JetStream redelivers a batch while it is being retried", a.AckWait, need)
	}
	if a.Listen != "" {
		checkHostPort(p, "alertmanager.listen", a.Listen)
	}
}
