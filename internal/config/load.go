package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	envprovider "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable Load reads. Levels are
// separated by "__": MONITORD_TWILIO__LIMITS__PAGE_SIZE is
// twilio.limits.page_size. A list of strings is comma-separated. Lists of
// targets, discovery entries and accounts come from the file only.
const EnvPrefix = "MONITORD_"

// Load reads the configuration: defaults, then the YAML file at path (none
// when path is ""), then the MONITORD_ variables of env, then the flags of
// flags that were set explicitly and whose name is a key ("log.level",
// "nats.subject-prefix": "-" stands for "_"); other flags are ignored, so
// the caller's own flags (-c, --dry-run) may share the set. flags may be nil.
//
// env is passed in (os.Environ() in main) rather than read, so tests do not
// touch the process environment; it also supplies $STATE_DIRECTORY (the
// default state.path) and $CREDENTIALS_DIRECTORY (secrets by name).
//
// The result has its secrets read from *_file and credentials, derived
// defaults filled in, and is validated: the error, a Problems, lists every
// unknown key, wrong type, unreadable secret and invalid value at once.
func Load(path string, env []string, flags *pflag.FlagSet) (*Config, error) {
	return LoadPart(path, env, flags, PartDaemon)
}

// Part names the process a config is loaded for: each reads and validates
// only the secrets and sections it uses, so that the Alertmanager bridge
// needs no Twilio credential and the daemon no Alertmanager one.
type Part int

const (
	// PartDaemon is `monitord run`, `check`, `once`: every section but
	// alertmanager.
	PartDaemon Part = iota
	// PartAlertmanager is `monitord alertmanager`: instance, nats, log and
	// alertmanager (whose urls become required).
	PartAlertmanager
)

// LoadPart is Load for the given part.
func LoadPart(path string, env []string, flags *pflag.FlagSet, part Part) (*Config, error) {
	var (
		p       Problems
		sources []map[string]any
		only    Config // the decode of the only non-empty source
	)
	add := func(raw map[string]any, label func(string) string) {
		if len(raw) == 0 {
			return
		}
		normalize(raw, label, &p)
		// Check each source on its own first so that an error names the
		// variable or flag it came from, not only the merged key.
		scratch := Default()
		decodeConfig(&scratch, raw, label, &p)
		sources = append(sources, raw)
		only = scratch
	}

	if path != "" {
		b, err := file.Provider(path).ReadBytes()
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		raw, err := yaml.Parser().Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %s", path, yamlError(err))
		}
		add(raw, nil)
	}

	vars := map[string]string{} // key path -> variable name
	ek := koanf.New(".")
	err := ek.Load(envprovider.Provider(".", envprovider.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return env },
		TransformFunc: func(k, v string) (string, any) {
			key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, EnvPrefix)), "__", ".")
			if key == "" {
				return "", nil
			}
			vars[key] = k
			return key, v
		},
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	add(ek.Raw(), func(path string) string { return sourceLabel(path, vars, "") })

	flagNames := map[string]string{} // key path -> --flag
	if flags != nil {
		names := flagNames
		fk := koanf.New(".")
		err := fk.Load(posflag.ProviderWithFlag(flags, ".", nil, func(f *pflag.Flag) (string, any) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if !f.Changed || !(knownKey(key) || key == "nats.url") {
				return "", nil
			}
			names[key] = "--" + f.Name
			return key, posflag.FlagVal(flags, f)
		}), nil)
		if err != nil {
			return nil, fmt.Errorf("read flags: %w", err)
		}
		add(fk.Raw(), func(path string) string { return sourceLabel(path, names, "flag ") })
	}
	if len(p) > 0 {
		return nil, p
	}

	cfg, err := merge(sources, only, &p)
	if err != nil {
		return nil, err
	}
	cfg.resolveDerived(env)
	cfg.canonicalSIDs()
	if path != "" {
		cfg.resolvePaths(filepath.Dir(path))
	}
	cfg.resolveSecrets(lookupEnv(env, "CREDENTIALS_DIRECTORY"), part, &p)
	// Validate sees the merged value only: its problems name the variable
	// or flag the value came from, as the decode errors above do. Flags win.
	if len(vars)+len(flagNames) > 0 {
		cfg.setBy = make(map[string]string, len(vars)+len(flagNames))
		for k, v := range vars {
			cfg.setBy[k] = v
		}
		for k, v := range flagNames {
			cfg.setBy[k] = "flag " + v
		}
	}
	if err := cfg.validate(part); err != nil {
		for _, e := range err.(Problems) {
			p = append(p, cfg.labelProblem(e))
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return &cfg, nil
}

var (
	yamlQuotedRE = regexp.MustCompile("`[^`]*`|anchor '[^']*'")
	yamlMapKeyRE = regexp.MustCompile(`invalid map key: .*`)
)

// yamlError words a YAML parse error without the values it quotes. yaml
// quotes a scalar it cannot decode in backticks and an unknown anchor in
// single quotes (other single quotes hold its own punctuation), and which key they belong to is unknown once parsing
// failed: an auth_token written as *abc or !!int abc would be shown. Key
// names (double-quoted) and line numbers stay.
func yamlError(err error) string {
	msg := yamlQuotedRE.ReplaceAllStringFunc(err.Error(), func(q string) string {
		if q[0] == '`' {
			return "`" + redacted + "`"
		}
		return "anchor '" + redacted + "'"
	})
	return yamlMapKeyRE.ReplaceAllString(msg, "invalid map key")
}

// merge returns the configuration of the sources, later ones winning. With
// one source (the common case: a file and no overrides) that is its decode
// already made, only: merging with koanf deep-copies every map, which for
// a config of 10,000 targets costs more than parsing it, and start-up time
// counts under systemd's watchdog.
func merge(sources []map[string]any, only Config, p *Problems) (Config, error) {
	switch len(sources) {
	case 0:
		return Default(), nil
	case 1:
		return only, nil
	}
	merged := koanf.New(".")
	for _, raw := range sources {
		if err := merged.Load(confmap.Provider(raw, ""), nil); err != nil {
			return Config{}, fmt.Errorf("merge config sources: %w", err)
		}
	}
	cfg := Default()
	decodeConfig(&cfg, merged.Raw(), nil, p)
	return cfg, nil
}

// decodeConfig decodes raw onto cfg. accounts is decoded last because its
// items start from the top-level twilio base_url, messages_base_url and
// limits, which must be
// final by then (keys are otherwise decoded in sorted order).
func decodeConfig(cfg *Config, raw map[string]any, label func(string) string, p *Problems) {
	d := &decoder{p: p, label: label, protos: map[reflect.Type]func() reflect.Value{
		reflect.TypeFor[Target](): func() reflect.Value {
			return reflect.ValueOf(Target{Source: DefaultSource})
		},
		reflect.TypeFor[Discover](): func() reflect.Value {
			return reflect.ValueOf(Discover{Source: DefaultSource, Schedule: DefaultDiscoverSchedule,
				Grace: DefaultDiscoverGrace, ParticipantRefreshEvery: DefaultParticipantRefreshEvery})
		},
		reflect.TypeFor[Account](): func() reflect.Value {
			return reflect.ValueOf(Account{Twilio: Twilio{BaseURL: cfg.Twilio.BaseURL,
				MessagesBaseURL: cfg.Twilio.MessagesBaseURL, Limits: cfg.Twilio.Limits}})
		},
	}}
	rest := make(map[string]any, len(raw))
	for k, v := range raw {
		if k != "accounts" {
			rest[k] = v
		}
	}
	d.decode("", rest, reflect.ValueOf(cfg).Elem())
	if accounts, ok := raw["accounts"]; ok {
		d.decode("accounts", accounts, reflect.ValueOf(&cfg.Accounts).Elem())
	}
}

// normalize turns the alias nats.url into nats.urls within one source, so
// that a later source's url still overrides an earlier one's urls.
func normalize(raw map[string]any, label func(string) string, p *Problems) {
	n, ok := raw["nats"].(map[string]any)
	if !ok {
		return
	}
	u, ok := n["url"]
	if !ok {
		return
	}
	if _, both := n["urls"]; both {
		name := "nats.url"
		if label != nil {
			name = label(name)
		}
		p.addf("%s: set either nats.url or nats.urls, not both", name)
	}
	delete(n, "url")
	n["urls"] = u
}

// labeled is a problem of Validate whose key was set by a variable or
// flag: label ("MONITORD_LOG__LEVEL (log.level)") replaces the key.
type labeled struct {
	key, label string
	err        error
}

func (l labeled) Error() string { return l.label + l.err.Error()[len(l.key):] }
func (l labeled) Unwrap() error { return l.err }

// labelProblem names the variable or flag that set the key a problem starts
// with ("log.level: …"), if one did.
func (c *Config) labelProblem(e error) error {
	key, _, ok := strings.Cut(e.Error(), ": ")
	if !ok {
		return e
	}
	if label := c.Label(key); label != key {
		return labeled{key: key, label: label, err: e}
	}
	return e
}

// Label names a key path for an error about its value: the key itself, or,
// when an environment variable or a flag set it, that and the key
// ("MONITORD_LOG__LEVEL (log.level)", "flag --poll.schedule (poll.schedule)"),
// so that checks made outside this package name the source too.
func (c *Config) Label(key string) string {
	if len(c.setBy) == 0 {
		return key
	}
	return sourceLabel(key, c.setBy, "")
}

// sourceLabel names a key path by the variable or flag that set it.
func sourceLabel(path string, names map[string]string, kind string) string {
	for k := path; k != ""; {
		if name, ok := names[k]; ok {
			return kind + name + " (" + path + ")"
		}
		if k == "nats.urls" {
			k = "nats.url"
			continue
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return path
}

// resolveDerived fills the defaults that depend on the host or environment.
func (c *Config) resolveDerived(env []string) {
	if c.Instance == "" {
		c.Instance = defaultInstance()
	}
	if c.NATS.Name == "" {
		c.NATS.Name = "monitord/" + c.Instance
	}
	if c.State.Path == "" {
		c.State.Path = "monitord.db"
		// StateDirectory= may list several directories, colon-separated.
		if dir, _, _ := strings.Cut(lookupEnv(env, "STATE_DIRECTORY"), ":"); dir != "" {
			c.State.Path = filepath.Join(dir, "monitord.db")
		}
	}
}

// lookupEnv returns the last value of name in env, as os/exec does.
func lookupEnv(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// RegisterFlags adds the flags that override the most commonly changed keys
// without editing the file. Each flag's name is its key; Load applies only
// flags that were set.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("instance", "", "override instance (name in heartbeats)")
	fs.String("log.level", "", "override log.level: debug, info, warn or error")
	fs.String("log.format", "", "override log.format: auto, json or console")
	fs.String("admin.listen", "", "override admin.listen (host:port; empty disables)")
	fs.String("state.path", "", "override state.path (bbolt file)")
	fs.StringSlice("nats.urls", nil, "override nats.urls (comma-separated)")
	fs.String("poll.schedule", "", "override poll.schedule (cron spec)")
}
