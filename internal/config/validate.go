package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/redact"
	"github.com/monitord/monitord/internal/schedule"
)

// Problems is every problem found in a configuration, in key order, each
// message starting with the key it concerns. Its Error is one per line.
type Problems []error

// Error returns the problems one per line.
func (p Problems) Error() string {
	msgs := make([]string, len(p))
	for i, e := range p {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.Is and errors.As see each problem.
func (p Problems) Unwrap() []error { return p }

func (p *Problems) addf(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

var (
	labelKeyRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	tokenRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Validate checks every value and returns a Problems listing all that are
// wrong, or nil. It never includes a secret's value. It expects secrets
// already read (Load does); it reads nothing but stats the NATS key and
// certificate files so that `monitord check` catches a missing one.
func (c *Config) Validate() error { return c.validate(PartDaemon) }

// validate checks the sections part uses.
func (c *Config) validate(part Part) error {
	var p Problems
	c.warnings = nil
	if c.Instance == "" {
		p.addf("instance: required")
	} else if !tokenRE.MatchString(c.Instance) {
		p.addf("instance: %q must be letters, digits, \"_\" or \"-\" (it is a NATS subject token)", c.Instance)
	}
	if part == PartDaemon {
		c.validateAccounts(&p)
		c.Poll.validate(&p)
		c.Rules.validate(&p)
		c.State.validate(&p)
		c.validateHA(&p)
	}
	c.NATS.validate(&p)
	c.NATS.checkAuthTransport(&p, c.warnf)
	c.Reasons.validate(&p)
	if c.Admin.Listen != "" {
		checkHostPort(&p, "admin.listen", c.Admin.Listen)
	}
	oneOf(&p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(&p, "log.format", c.Log.Format, "auto", "json", "console")
	if part == PartAlertmanager {
		c.Alertmanager.validate(&p)
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

func (r *Reasons) validate(p *Problems) {
	if !r.Enabled {
		return // the other keys are not used
	}
	if r.Rate <= 0 {
		p.addf("reasons.rate: must be positive, got %v", r.Rate)
	}
	atLeast(p, "reasons.concurrency", int64(r.Concurrency), 1)
	positive(p, "reasons.timeout", r.Timeout)
	seen := map[int]bool{}
	for i, c := range r.MetricCodes {
		switch {
		case c < 1:
			p.addf("reasons.metric_codes[%d]: %d is not a Twilio error code", i, c)
		case seen[c]:
			p.addf("reasons.metric_codes[%d]: %d is listed twice", i, c)
		}
		seen[c] = true
	}
}

func (pl *Poll) validate(p *Problems) {
	checkCron(p, "poll.schedule", pl.Schedule, true)
	if pl.Timezone == "" {
		p.addf("poll.timezone: required (an IANA zone such as UTC or Europe/Berlin)")
	} else if _, err := time.LoadLocation(pl.Timezone); err != nil {
		p.addf("poll.timezone: unknown time zone %q", pl.Timezone)
	}
	positive(p, "poll.timeout", pl.Timeout)
	positive(p, "poll.heartbeat_interval", pl.HeartbeatInterval)
	positive(p, "poll.shutdown_timeout", pl.ShutdownTimeout)
	pl.Activity.validate(p, pl.Mode)
}

func (r *Rules) validate(p *Problems) {
	if len(r.AlertStatuses) == 0 {
		p.addf("rules.alert_statuses: must list at least one status")
	}
	seen := map[string]bool{}
	for i, s := range r.AlertStatuses {
		key := fmt.Sprintf("rules.alert_statuses[%d]", i)
		switch {
		case strings.TrimSpace(s) == "":
			p.addf("%s: must not be empty", key)
		case seen[s]:
			p.addf("%s: %q is listed twice", key, s)
		}
		seen[s] = true
	}
	positive(p, "rules.stuck_after", r.StuckAfter)
	nonNegative(p, "rules.baseline.alert_recent", r.Baseline.AlertRecent)
	seenKind := map[event.Kind]bool{}
	for i, k := range r.PublishKinds {
		key := fmt.Sprintf("rules.publish_kinds[%d]", i)
		switch {
		case !k.Valid():
			p.addf("%s: %q is not an event kind (%s)", key, k, kindList())
		case seenKind[k]:
			p.addf("%s: %q is listed twice", key, k)
		}
		seenKind[k] = true
	}
	atLeast(p, "rules.target_error_after", int64(r.TargetErrorAfter), 1)
}

func kindList() string {
	names := make([]string, len(event.Kinds))
	for i, k := range event.Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func (s *State) validate(p *Problems) {
	// An empty path is allowed here: Load resolves it.
	atLeast(p, "state.max_outbox_events", int64(s.MaxOutboxEvents), 1)
	atLeast(p, "state.max_outbox_bytes", s.MaxOutboxBytes, 1)
	positive(p, "state.open_timeout", s.OpenTimeout)
}

func (n *NATS) validate(p *Problems) {
	if len(n.URLs) == 0 {
		p.addf("nats.urls: must list at least one server")
	}
	for i, raw := range n.URLs {
		key := fmt.Sprintf("nats.urls[%d]", i)
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			p.addf("%s: %q is not a URL such as nats://127.0.0.1:4222", key, redact.URL(raw))
			continue
		}
		if s := u.Scheme; s != "nats" && s != "tls" && s != "ws" && s != "wss" {
			p.addf("%s: scheme %q is not nats, tls, ws or wss", key, u.Scheme)
		}
		if u.User != nil {
			// Credentials in a URL end up in logs; they have keys of their own.
			p.addf("%s: must not contain credentials; use nats.user/password or nats.token", key)
		}
	}
	kinds := 0
	for _, set := range []bool{n.User != "" || n.Password != "", n.Token != "", n.NKeySeedFile != "", n.CredsFile != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		p.addf("nats: set only one of user/password, token, nkey_seed_file and creds_file")
	}
	if n.User != "" && n.Password == "" {
		p.addf("nats.password: required with nats.user (or password_file, or credential %s)", CredNATSPassword)
	}
	if n.User == "" && n.Password != "" {
		p.addf("nats.user: required with nats.password")
	}
	checkFile(p, "nats.nkey_seed_file", n.NKeySeedFile)
	checkFile(p, "nats.creds_file", n.CredsFile)
	checkFile(p, "nats.tls.ca_file", n.TLS.CAFile)
	checkFile(p, "nats.tls.cert_file", n.TLS.CertFile)
	checkFile(p, "nats.tls.key_file", n.TLS.KeyFile)
	if n.TLS.CertFile != "" && n.TLS.KeyFile == "" {
		p.addf("nats.tls.key_file: required with nats.tls.cert_file")
	}
	if n.TLS.CertFile == "" && n.TLS.KeyFile != "" {
		p.addf("nats.tls.cert_file: required with nats.tls.key_file")
	}
	oneOf(p, "nats.mode", n.Mode, "jetstream", "core")
	if n.SubjectPrefix == "" {
		p.addf("nats.subject_prefix: required")
	} else if !validSubjectToken(n.SubjectPrefix) {
		p.addf("nats.subject_prefix: %q must be one subject token (no \".\", \"*\", \">\" or spaces)", n.SubjectPrefix)
	}
	st := n.Stream
	if st.Name == "" {
		p.addf("nats.stream.name: required")
	} else if strings.ContainsAny(st.Name, ".*>/\\ \t\r\n") {
		p.addf("nats.stream.name: %q must not contain \".\", \"*\", \">\", slashes or spaces", st.Name)
	}
	oneOf(p, "nats.stream.storage", st.Storage, "file", "memory")
	nonNegative(p, "nats.stream.max_age", st.MaxAge)
	positive(p, "nats.stream.duplicates", st.Duplicates)
	if st.MaxAge > 0 && st.Duplicates > st.MaxAge {
		p.addf("nats.stream.duplicates: %s is longer than nats.stream.max_age %s", st.Duplicates, st.MaxAge)
	}
	if st.Replicas < 1 || st.Replicas > 5 {
		p.addf("nats.stream.replicas: must be between 1 and 5, got %d", st.Replicas)
	}
	atLeast(p, "nats.max_pending", int64(n.MaxPending), 1)
	positive(p, "nats.ack_timeout", n.AckTimeout)
}

// checkAuthTransport refuses credentials over a connection without TLS to
// another host: a password or token would cross the network in clear text,
// and a creds or nkey login could be relayed. Loopback is this machine (a
// local server or a tunnel's end), so it is allowed.
func (n *NATS) checkAuthTransport(p *Problems, warnf func(string, ...any)) {
	what := ""
	switch {
	case n.User != "":
		what = "the password"
	case n.Token != "":
		what = "the token"
	case n.NKeySeedFile != "":
		what = "the nkey login"
	case n.CredsFile != "":
		what = "the creds login"
	}
	if what == "" || n.TLS.CAFile != "" || n.TLS.CertFile != "" || n.TLS.KeyFile != "" {
		// nats.go requires TLS of every server once any TLS file is set.
		return
	}
	for i, raw := range n.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "ws") || loopback(u.Hostname()) {
			continue
		}
		shown := redact.URL(raw)
		if n.AllowInsecureAuth {
			warnf("nats.allow_insecure_auth: %s goes to %s without TLS", what, shown)
			continue
		}
		p.addf("nats.urls[%d]: %s would get %s without TLS: use tls://, set nats.tls, "+
			"or accept the risk with nats.allow_insecure_auth: true", i, shown, what)
	}
}

// loopback reports whether host, as url.Hostname returns it, is this
// machine: what goes there never crosses a network.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckStatePath finds what state.Open will meet at state.path, without
// creating anything: an existing file must be a regular file this process
// can read and write; otherwise the nearest existing ancestor must be a
// directory it can create entries in, since Open makes the missing
// directories. It is not part of Validate because `once --dry-run` opens
// no state; check calls it, so that a path run cannot open fails there.
func (c *Config) CheckStatePath() error {
	if c.HA.Enabled {
		return nil // state lives in the ha bucket: the file is never opened
	}
	var p Problems
	checkStatePath(&p, c.State.Path)
	if len(p) == 0 {
		return nil
	}
	return p
}

func checkStatePath(p *Problems, path string) {
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		p.addf("state.path: %s is not a regular file", path)
		return
	case err == nil:
		if err := unix.Access(path, unix.R_OK|unix.W_OK); err != nil {
			p.addf("state.path: %s: %v", path, err)
		}
		return
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		p.addf("state.path: %s: %v", path, pathErr(err))
		return
	}
	for dir := filepath.Dir(path); ; {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && !fi.IsDir():
			p.addf("state.path: %s: %s is not a directory", path, dir)
		case err == nil:
			if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
				p.addf("state.path: %s: cannot create entries in %s: %v", path, dir, err)
			}
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			if parent := filepath.Dir(dir); parent != dir {
				dir = parent
				continue
			}
		default:
			p.addf("state.path: %s: %v", path, pathErr(err))
		}
		return
	}
}

// pathErr drops the operation and path of a *fs.PathError: the message
// names the path already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func validSubjectToken(s string) bool {
	return !strings.ContainsAny(s, ".*> \t\r\n")
}

// checkCron parses spec with the scheduler's own parser (schedule.Parse),
// so that what check accepts, run runs; an empty spec is an error only when
// required (a target's own schedule may be empty: poll.schedule applies).
func checkCron(p *Problems, key, spec string, required bool) {
	if spec == "" {
		if required {
			p.addf("%s: required (a cron spec such as \"@every 1m\" or \"*/5 * * * *\")", key)
		}
		return
	}
	if _, err := schedule.Parse(spec); err != nil {
		p.addf("%s: %v", key, err)
	}
}

func checkHostPort(p *Problems, key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.addf("%s: %q is not host:port", key, addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.addf("%s: port %q is not a number between 0 and 65535", key, port)
	}
}

func checkFile(p *Problems, key, path string) {
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		p.addf("%s: %s: %v", key, path, err)
	case !fi.Mode().IsRegular():
		// A directory or a device (/dev/zero, a FIFO) would hang or
		// exhaust the reader: these files are read whole.
		p.addf("%s: %s is not a regular file", key, path)
	case fi.Size() > maxKeyFile:
		p.addf("%s: %s is %d bytes, more than a key, certificate or CA bundle (%d at most)", key, path, fi.Size(), maxKeyFile)
	}
}

// maxKeyFile bounds the credential, key and certificate files the config
// names: nats.go and crypto/tls read them whole, with no bound of their
// own. A CA bundle of every public root is about 200 KB.
const maxKeyFile = 1 << 20

func oneOf(p *Problems, key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.addf("%s: %q is not %s", key, v, orList(allowed))
}

// orList words a choice: "a", "a or b", "a, b or c".
func orList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func positive(p *Problems, key string, d time.Duration) {
	if d <= 0 {
		p.addf("%s: must be positive, got %s", key, d)
	}
}

func nonNegative(p *Problems, key string, d time.Duration) {
	if d < 0 {
		p.addf("%s: must not be negative, got %s", key, d)
	}
}

func atLeast(p *Problems, key string, n, min int64) {
	if n < min {
		p.addf("%s: must be at least %d, got %d", key, min, n)
	}
}
