package notify

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/redact"
)

// Mode is how events reach NATS.
type Mode string

const (
	// ModeJetStream publishes to a stream and removes an event from the
	// outbox only after its PubAck: at-least-once from the outbox, exactly
	// once in the stream within the duplicate window.
	ModeJetStream Mode = "jetstream"
	// ModeCore publishes with core NATS (publish + flush): at-most-once,
	// since a flushed message may still be lost on the way and nothing acks.
	ModeCore Mode = "core"
)

// Config configures the Publisher. Secrets arrive as values (read from files
// by the config layer) or as paths (NKeySeedFile, CredsFile); they are never
// logged and never put in an error.
type Config struct {
	// URLs of the NATS servers; default nats://127.0.0.1:4222.
	URLs []string
	// Name is the connection name the server shows (default "monitord").
	Name string

	// At most one authentication method: User+Password, Token,
	// NKeySeedFile or CredsFile.
	User         string
	Password     string
	Token        string
	NKeySeedFile string
	CredsFile    string

	TLS TLSConfig

	// Mode is ModeJetStream (default) or ModeCore.
	Mode Mode
	// Prefix is the first subject token(s), as in event.Render (default
	// "monitord"); it sets the default stream subjects.
	Prefix string
	Stream StreamConfig

	// MaxPending bounds the asynchronous publishes awaiting a PubAck
	// (default 1024): enough to keep a local JetStream busy during a burst,
	// small enough that a failure replays little.
	MaxPending int
	// AckTimeout is how long a PubAck (JetStream) or flush (core) may take
	// before the drain stops and replays from the first unacknowledged event
	// (default 5s).
	AckTimeout time.Duration
	// ReconnectWait is the first reconnect delay, doubled per failed attempt
	// up to MaxReconnectWait, each with random jitter (defaults 250ms, 10s).
	ReconnectWait    time.Duration
	MaxReconnectWait time.Duration
	// RetryInterval is how long to wait after a failed drain or stream check
	// before trying again, and how often the outbox is looked at without a
	// Wake (default 2s).
	RetryInterval time.Duration

	// Observer receives delivery metrics; nil for none.
	Observer Observer
}

// TLSConfig holds paths to PEM files. Any of them switches TLS on.
type TLSConfig struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string // overrides the name checked against the server certificate
}

func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// StreamConfig describes the JetStream stream events go to.
type StreamConfig struct {
	// Name of the stream (default "MONITORD").
	Name string
	// Subjects the stream captures (default "<prefix>.>").
	Subjects []string
	// Create creates the stream at start, or widens an existing one to
	// this config (see AllowShrink; subjects are only ever added).
	// When false, or when the account may not manage streams, the stream
	// must exist and the error says how to create it. DefaultConfig sets it.
	Create bool
	// Storage is "file" (default) or "memory".
	Storage string
	// MaxAge drops events older than this; 0 keeps them until another
	// limit of the stream applies (JetStream's meaning). DefaultConfig: 168h.
	MaxAge time.Duration
	// Duplicates is the stream's duplicate window (default 2h). A replayed
	// event is dropped only if its first copy was stored within the window,
	// so it must outlast the longest gap between a publish whose ack was
	// lost and its replay: a crash and systemd restart (seconds to minutes)
	// or a NATS outage that broke the connection with acks in flight. Two
	// hours covers restarts and ordinary outages while keeping the server's
	// id table small.
	Duplicates time.Duration
	// Replicas (default 1; 3 in a cluster).
	Replicas int
	// AllowShrink lets Create shorten an existing stream's max_age or
	// duplicate window to the config's. Off, a shorter configured value is
	// a warning and the stream keeps its own: shortening max_age deletes
	// stored events, perhaps another publisher's.
	AllowShrink bool
}

// ProvisionedStream is the JetStream stream the Publisher creates, updates
// or checks for c, with c's defaults filled in. A tool that creates the
// stream itself (the demo does, before its daemon starts) uses it to make
// exactly the stream the Publisher then finds.
func ProvisionedStream(c Config) jetstream.StreamConfig {
	p := &Publisher{cfg: c.withDefaults()}
	return p.streamConfig()
}

// Observer is told about deliveries, for metrics. Calls come from the
// Publisher's goroutines and must not block.
type Observer interface {
	// Published: n events were acknowledged and removed from the outbox.
	Published(n int)
	// PublishError: a drain attempt failed and will be retried.
	PublishError()
	// Connected: the NATS connection went up or down.
	Connected(up bool)
}

// Defaults.
const (
	DefaultURL           = "nats://127.0.0.1:4222"
	DefaultStreamName    = "MONITORD"
	DefaultMaxPending    = 1024
	DefaultAckTimeout    = 5 * time.Second
	DefaultDuplicates    = 2 * time.Hour
	DefaultMaxAge        = 7 * 24 * time.Hour
	DefaultRetryInterval = 2 * time.Second
)

// DefaultConfig returns the documented defaults, Stream.Create included.
func DefaultConfig() Config {
	return Config{
		URLs:             []string{DefaultURL},
		Name:             "monitord",
		Mode:             ModeJetStream,
		Prefix:           event.DefaultPrefix,
		MaxPending:       DefaultMaxPending,
		AckTimeout:       DefaultAckTimeout,
		ReconnectWait:    250 * time.Millisecond,
		MaxReconnectWait: 10 * time.Second,
		RetryInterval:    DefaultRetryInterval,
		Stream: StreamConfig{
			Name:       DefaultStreamName,
			Subjects:   []string{event.DefaultPrefix + ".>"},
			Create:     true,
			Storage:    "file",
			MaxAge:     DefaultMaxAge,
			Duplicates: DefaultDuplicates,
			Replicas:   1,
		},
	}
}

// withDefaults fills zero fields from DefaultConfig. Stream.Create is a
// bool and is taken as given.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.URLs) == 0 {
		c.URLs = d.URLs
	}
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.MaxPending == 0 {
		c.MaxPending = d.MaxPending
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = d.AckTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = d.ReconnectWait
	}
	if c.MaxReconnectWait == 0 {
		c.MaxReconnectWait = d.MaxReconnectWait
	}
	if c.MaxReconnectWait < c.ReconnectWait {
		c.MaxReconnectWait = c.ReconnectWait
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = d.RetryInterval
	}
	s := &c.Stream
	if s.Name == "" {
		s.Name = d.Stream.Name
	}
	if len(s.Subjects) == 0 {
		s.Subjects = []string{c.Prefix + ".>"}
	}
	if s.Storage == "" {
		s.Storage = d.Stream.Storage
	}
	if s.Duplicates == 0 {
		s.Duplicates = d.Stream.Duplicates
	}
	if s.Replicas == 0 {
		s.Replicas = d.Stream.Replicas
	}
	return c
}

// validate reports every problem at once, naming the field. It never
// quotes a secret.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, u := range c.URLs {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			bad("nats.urls: %q is not a URL like nats://host:4222", redact.URL(u))
		}
	}
	methods := 0
	if c.User != "" || c.Password != "" {
		methods++
		if c.User == "" {
			bad("nats.user: required with a password")
		}
	}
	if c.Token != "" {
		methods++
	}
	if c.NKeySeedFile != "" {
		methods++
		if err := readable(c.NKeySeedFile); err != nil {
			bad("nats.nkey_seed_file: %w", err)
		}
	}
	if c.CredsFile != "" {
		methods++
		if err := readable(c.CredsFile); err != nil {
			bad("nats.creds_file: %w", err)
		}
	}
	if methods > 1 {
		bad("nats: set only one of user/password, token, nkey_seed_file, creds_file")
	}
	for field, path := range map[string]string{"ca_file": c.TLS.CAFile, "cert_file": c.TLS.CertFile, "key_file": c.TLS.KeyFile} {
		if path != "" {
			if err := readable(path); err != nil {
				bad("nats.tls.%s: %w", field, err)
			}
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("nats.tls: cert_file and key_file go together")
	}
	if c.Mode != ModeJetStream && c.Mode != ModeCore {
		bad("nats.mode: %q is not %q or %q", c.Mode, ModeJetStream, ModeCore)
	}
	if err := event.CheckPrefix(c.Prefix); err != nil {
		bad("nats.subject_prefix: %w", err)
	}
	if c.MaxPending < 1 {
		bad("nats.max_pending: %d is below 1", c.MaxPending)
	}
	if c.AckTimeout < 0 || c.ReconnectWait < 0 || c.RetryInterval < 0 {
		bad("nats: durations may not be negative")
	}
	if c.Mode == ModeJetStream {
		s := c.Stream
		if s.Name == "" || strings.ContainsAny(s.Name, ". *>\t\r\n/\\") {
			bad("nats.stream.name: %q may not be empty or hold '.', '*', '>', '/', '\\' or white space", s.Name)
		}
		if s.Storage != "file" && s.Storage != "memory" {
			bad("nats.stream.storage: %q is not \"file\" or \"memory\"", s.Storage)
		}
		if s.Replicas < 1 || s.Replicas > 5 {
			bad("nats.stream.replicas: %d is not 1..5", s.Replicas)
		}
		if s.Duplicates < 0 || s.MaxAge < 0 {
			bad("nats.stream: max_age and duplicates may not be negative")
		}
		if s.MaxAge > 0 && s.Duplicates > s.MaxAge {
			bad("nats.stream.duplicates: %s exceeds max_age %s", s.Duplicates, s.MaxAge)
		}
	}
	return errors.Join(errs...)
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
