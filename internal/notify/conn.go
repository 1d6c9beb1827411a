package notify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/redact"
)

// natsOptions builds the connection options. The auth options hold secrets
// (values or file paths read at connect time); nothing here logs them.
func (p *Publisher) natsOptions() ([]nats.Option, error) {
	c := p.cfg
	opts := []nats.Option{
		nats.Name(c.Name),
		// Reconnect forever: a NATS outage must never stop monitord, events
		// wait in the outbox meanwhile.
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(p.reconnectDelay),
		// No reconnect buffer: a publish during a reconnect fails at once
		// instead of being flushed after it, behind events the drain will
		// replay from the outbox, which would reorder them.
		nats.ReconnectBufSize(-1),
		// Keep retrying after the server twice refused our credentials:
		// an operator may be rotating them; the error is logged.
		nats.IgnoreAuthErrorAbort(),
		nats.ConnectHandler(p.onConnect),
		nats.ReconnectHandler(p.onConnect),
		nats.DisconnectErrHandler(p.onDisconnect),
		nats.ClosedHandler(p.onClosed),
		nats.ErrorHandler(p.onAsyncError),
		nats.ReconnectErrHandler(p.onReconnectError),
	}
	auth, err := AuthOptions(c)
	if err != nil {
		return nil, err
	}
	return append(opts, auth...), nil
}

// AuthOptions returns the nats.go options for c's authentication and TLS,
// for any client of the same server (the Publisher, monitord alertmanager's
// consumer), so that both read the same config the same way. They hold
// secrets (values, or file paths read at connect time): never log them.
func AuthOptions(c Config) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			// The error names the file's problem, never its content.
			return nil, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if len(opts) > 0 && !c.TLS.enabled() {
		// Credentials without TLS go only where the config says (loopback,
		// or a host accepted with nats.allow_insecure_auth), never to a
		// server the cluster advertises: that one may be on another host.
		opts = append(opts, nats.IgnoreDiscoveredServers())
	}
	if c.TLS.enabled() {
		// Secure first: it replaces the tls.Config the others fill in.
		opts = append(opts, nats.Secure(&tls.Config{ServerName: c.TLS.ServerName, MinVersion: tls.VersionTLS12}))
		if c.TLS.CAFile != "" {
			opts = append(opts, nats.RootCAs(c.TLS.CAFile))
		}
		if c.TLS.CertFile != "" {
			opts = append(opts, nats.ClientCert(c.TLS.CertFile, c.TLS.KeyFile))
		}
	}
	return opts, nil
}

// reconnectDelay is exponential backoff with full jitter between
// ReconnectWait and MaxReconnectWait, so a fleet of instances does not
// reconnect in lockstep after a server restart.
func (p *Publisher) reconnectDelay(attempts int) time.Duration {
	d := p.cfg.ReconnectWait
	for i := 1; i < attempts && d < p.cfg.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, p.cfg.MaxReconnectWait)
	return d/2 + rand.N(d/2+1)
}

// connect dials NATS. A first attempt without retry tells a refused login
// (a config error: Run fails with a clear message) from an unreachable
// server (normal at boot: the client then keeps retrying in the background
// and Run waits, while events wait in the outbox).
func (p *Publisher) connect() (*nats.Conn, error) {
	url := strings.Join(p.cfg.URLs, ",")
	nc, err := nats.Connect(url, p.opts...)
	if err == nil {
		return nc, nil
	}
	if authError(err) {
		return nil, fmt.Errorf("connect to NATS at %s: the server refused %s: %w", p.redactedURLs(), p.authMethod(), err)
	}
	p.log.Warn("nats unreachable; retrying in the background, events wait in the outbox",
		zap.String("servers", p.redactedURLs()), zap.Error(err))
	return nats.Connect(url, append(p.opts, nats.RetryOnFailedConnect(true))...)
}

func authError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrNkeyButNoSigCB)
}

// authMethod names the configured credentials without showing them.
func (p *Publisher) authMethod() string {
	c := p.cfg
	switch {
	case c.User != "":
		return fmt.Sprintf("user %q and its password", c.User)
	case c.Token != "":
		return "the token"
	case c.NKeySeedFile != "":
		return "the nkey from " + c.NKeySeedFile
	case c.CredsFile != "":
		return "the credentials in " + c.CredsFile
	}
	return "an anonymous connection (configure user/password, token, nkey_seed_file or creds_file)"
}

func (p *Publisher) redactedURLs() string {
	return redact.URLs(strings.Join(p.cfg.URLs, ","))
}

// The handlers below run on the client's callback goroutine. Each state
// change is logged once; repeated reconnect failures only at debug level.

func (p *Publisher) onConnect(nc *nats.Conn) {
	p.log.Info("nats connected", zap.String("server", nc.ConnectedUrlRedacted()))
	p.lastAsyncErr.Store(nil)
	if p.obs != nil {
		p.obs.Connected(true)
	}
	p.kick(p.stateCh)
	p.news.announce()
}

func (p *Publisher) onDisconnect(_ *nats.Conn, err error) {
	if err != nil {
		p.log.Warn("nats disconnected; events wait in the outbox", zap.Error(err))
	} else {
		p.log.Info("nats disconnected")
	}
	if p.obs != nil {
		p.obs.Connected(false)
	}
	p.kick(p.stateCh)
	p.news.announce()
}

func (p *Publisher) onClosed(*nats.Conn) {
	p.log.Info("nats connection closed")
	p.kick(p.stateCh)
	p.kick(p.closed)
	p.news.announce()
}

func (p *Publisher) onReconnectError(_ *nats.Conn, err error) {
	p.log.Debug("nats reconnect attempt failed", zap.Error(err))
	if authError(err) {
		p.onAsyncError(nil, nil, err)
	}
}

// onAsyncError logs a server or client error once per distinct message, so
// a refused login retried every few seconds is one line, not thousands.
func (p *Publisher) onAsyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	msg := err.Error()
	if prev := p.lastAsyncErr.Load(); prev != nil && *prev == msg {
		return
	}
	p.lastAsyncErr.Store(&msg)
	if authError(err) {
		p.log.Error("nats refused the credentials; retrying", zap.String("auth", p.authMethod()), zap.Error(err))
		return
	}
	p.log.Warn("nats error", zap.Error(err))
}

// kick does a non-blocking send on a 1-buffered channel: one pending
// signal is enough, the receiver looks at the whole state.
func (p *Publisher) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
