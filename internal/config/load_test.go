package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const (
	testAC = "AC0123456789abcdef0123456789abcdef"
	testSK = "SK0123456789abcdef0123456789abcdef"
	testKS = "KS0123456789abcdef0123456789abcdef"
	testKC = "KC0123456789abcdef0123456789abcdef"
	testKP = "KP0123456789abcdef0123456789abcdef"
)

// writeConfig writes a config file into a temp dir and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, path, body)
	return path
}

// minimal is the smallest valid single-account config, minus credentials.
var minimal = fmt.Sprintf(`
twilio:
  account_sid: %s
targets:
  - {service_sid: %s, session_sid: %s, participant_sid: %s}
`, testAC, testKS, testKC, testKP)

func mustLoad(t *testing.T, path string, env []string, fs *pflag.FlagSet) *Config {
	t.Helper()
	cfg, err := Load(path, env, fs)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoadEnvironment(t *testing.T) {
	path := writeConfig(t, minimal+"nats:\n  urls: [nats://a:4222, nats://b:4222]\n")
	cfg := mustLoad(t, path, []string{
		"MONITORD_NATS__URL=nats://env:4222",
		"MONITORD_TWILIO__AUTH_TOKEN=env-token",
		"MONITORD_TWILIO__LIMITS__PAGE_SIZE=500",
		"MONITORD_POLL__SPREAD=false",
		"MONITORD_POLL__TIMEOUT=90s",
		"MONITORD_RULES__ALERT_STATUSES=failed, undelivered ,canceled",
		"MONITORD_NATS__SUBJECT_PREFIX=acme",
		"MONITORD_REASONS__METRIC_CODES=30003, 30007",
		"OTHER_VAR=ignored",
	}, nil)
	if got := cfg.Reasons.MetricCodes; len(got) != 2 || got[0] != 30003 || got[1] != 30007 {
		t.Errorf("reasons.metric_codes = %v, want [30003 30007]", got)
	}
	if got := cfg.NATS.URLs; len(got) != 1 || got[0] != "nats://env:4222" {
		t.Errorf("nats.urls = %q, want the environment's nats.url to replace the file's urls", got)
	}
	if cfg.Twilio.AuthToken.Reveal() != "env-token" {
		t.Errorf("twilio.auth_token not taken from MONITORD_TWILIO__AUTH_TOKEN")
	}
	if cfg.Twilio.Limits.PageSize != 500 || cfg.Poll.Spread || cfg.Poll.Timeout != 90*time.Second {
		t.Errorf("page_size %d, spread %v, timeout %s: environment not applied", cfg.Twilio.Limits.PageSize, cfg.Poll.Spread, cfg.Poll.Timeout)
	}
	if got := strings.Join(cfg.Rules.AlertStatuses, "|"); got != "failed|undelivered|canceled" {
		t.Errorf("alert_statuses = %q", got)
	}
	if cfg.NATS.SubjectPrefix != "acme" {
		t.Errorf("subject_prefix = %q", cfg.NATS.SubjectPrefix)
	}
}

func TestLoadEnvironmentErrorsNameTheVariable(t *testing.T) {
	_, err := Load("", []string{
		"MONITORD_NATS__SUBJET_PREFIX=x",
		"MONITORD_TWILIO__LIMITS__BURST=many",
		"MONITORD_TWILIO__AUTH_TOKEN=",
	}, nil)
	want := "MONITORD_NATS__SUBJET_PREFIX (nats.subjet_prefix): unknown key\n" +
		`MONITORD_TWILIO__LIMITS__BURST (twilio.limits.burst): expected an integer, got "many"`
	if err == nil || err.Error() != want {
		t.Errorf("Load error:\n%v\nwant:\n%s", err, want)
	}
}

// TestLoadValueErrorsNameTheSource: a value that decodes but is invalid
// (an empty log level, a bad cron spec) names the variable or flag it came
// from, as decode errors do.
func TestLoadValueErrorsNameTheSource(t *testing.T) {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--poll.schedule=sometimes", "--log.format=xml"}); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, minimal+"log:\n  format: json\n")
	_, err := Load(path, []string{
		"MONITORD_TWILIO__AUTH_TOKEN=t",
		"MONITORD_LOG__LEVEL=",
		"MONITORD_LOG__FORMAT=console",
		"MONITORD_RULES__ALERT_STATUSES=failed,failed",
		"MONITORD_NATS__URL=http://127.0.0.1:4222",
	}, fs)
	want := `flag --poll.schedule (poll.schedule): "sometimes" is not a cron spec: expected 5 to 6 fields, found 1: [sometimes]` + "\n" +
		`MONITORD_RULES__ALERT_STATUSES (rules.alert_statuses[1]): "failed" is listed twice` + "\n" +
		`MONITORD_NATS__URL (nats.urls[0]): scheme "http" is not nats, tls, ws or wss` + "\n" +
		`MONITORD_LOG__LEVEL (log.level): "" is not "debug", "info", "warn" or "error"` + "\n" +
		`flag --log.format (log.format): "xml" is not "auto", "json" or "console"`
	if err == nil || err.Error() != want {
		t.Errorf("Load error:\n%v\nwant:\n%s", err, want)
	}
}

// TestCheckStatePath: a state file in directories yet to be made passes,
// and checking it makes neither them nor the file; a path state.Open
// would fail on is an error naming state.path.
func TestCheckStatePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "")
	for path, want := range map[string]string{
		filepath.Join(dir, "new", "sub", "monitord.db"): "",
		file: "",
		dir:  "state.path: " + dir + " is not a regular file",
		filepath.Join(file, "sub", "monitord.db"): "state.path: " + filepath.Join(file, "sub", "monitord.db") + ": " + file + " is not a directory",
	} {
		cfg := Config{State: State{Path: path}}
		err := cfg.CheckStatePath()
		if got := fmt.Sprint(err); (err != nil || want != "") && got != want {
			t.Errorf("CheckStatePath(%s) = %v, want %q", path, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CheckStatePath made %s: %v", filepath.Join(dir, "new"), err)
	}
}

func TestLoadFlags(t *testing.T) {
	path := writeConfig(t, minimal+"  # x\nlog:\n  level: warn\n  format: console\n")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	RegisterFlags(fs)
	fs.StringP("config", "c", "", "the caller's own flag, not a key")
	fs.Duration("poll.timeout", 0, "a caller-defined key flag")
	if err := fs.Parse([]string{"-c", path, "--log.level=debug", "--poll.timeout=2m", "--nats.urls=nats://x:1,nats://y:2"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"MONITORD_TWILIO__AUTH_TOKEN=t", "MONITORD_LOG__LEVEL=error", "MONITORD_ADMIN__LISTEN=127.0.0.1:1"}
	cfg := mustLoad(t, path, env, fs)
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the flag to win over file and environment", cfg.Log.Level)
	}
	if cfg.Log.Format != "console" {
		t.Errorf("log.format = %q, want the file's value: an unset flag must not override", cfg.Log.Format)
	}
	if cfg.Admin.Listen != "127.0.0.1:1" {
		t.Errorf("admin.listen = %q, want the environment's: an unset flag must not override", cfg.Admin.Listen)
	}
	if cfg.Poll.Timeout != 2*time.Minute {
		t.Errorf("poll.timeout = %s", cfg.Poll.Timeout)
	}
	if got := strings.Join(cfg.NATS.URLs, " "); got != "nats://x:1 nats://y:2" {
		t.Errorf("nats.urls = %q", got)
	}
}

func TestLoadSecretFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secret"), "key-secret\n")
	writeFile(t, filepath.Join(dir, "nats-password"), "nats-pass\r\n")
	path := writeConfig(t, minimal+fmt.Sprintf(`  # x
nats:
  user: monitord
  password_file: %s
`, filepath.Join(dir, "nats-password")))
	env := []string{"MONITORD_TWILIO__API_KEY_SID=" + testSK, "MONITORD_TWILIO__API_KEY_SECRET_FILE=" + filepath.Join(dir, "secret")}
	cfg := mustLoad(t, path, env, nil)
	if cfg.Twilio.APIKeySecret.Reveal() != "key-secret" || cfg.NATS.Password.Reveal() != "nats-pass" {
		t.Errorf("secrets from files: %q, %q (want the trailing newline dropped)", cfg.Twilio.APIKeySecret.Reveal(), cfg.NATS.Password.Reveal())
	}

	writeFile(t, filepath.Join(dir, "empty"), "\n")
	_, err := Load(path, []string{"MONITORD_TWILIO__AUTH_TOKEN_FILE=" + filepath.Join(dir, "empty")}, nil)
	if want := "twilio.auth_token_file: " + filepath.Join(dir, "empty") + " is empty"; err == nil || err.Error() != want {
		t.Errorf("empty secret file: %v, want %s", err, want)
	}
}

func TestLoadCredentialsDirectory(t *testing.T) {
	creds := t.TempDir()
	writeFile(t, filepath.Join(creds, "twilio_auth_token"), "cred-token\n")
	writeFile(t, filepath.Join(creds, "twilio_api_key_secret"), "cred-key-secret\n")
	writeFile(t, filepath.Join(creds, "acme_twilio_auth_token"), "acme-token\n")
	writeFile(t, filepath.Join(creds, "nats_token"), "nats-token\n")
	stateDir := filepath.Join(t.TempDir(), "monitord")
	env := []string{"CREDENTIALS_DIRECTORY=" + creds, "STATE_DIRECTORY=" + stateDir + ":/var/lib/other"}

	// An auth token is looked up when no API key SID is set; a directory
	// holding both names therefore never yields both auth kinds.
	cfg := mustLoad(t, writeConfig(t, minimal), env, nil)
	if cfg.Twilio.AuthToken.Reveal() != "cred-token" || cfg.Twilio.APIKeySecret != "" {
		t.Errorf("auth token %q, key secret %q", cfg.Twilio.AuthToken.Reveal(), cfg.Twilio.APIKeySecret.Reveal())
	}
	if cfg.NATS.Token.Reveal() != "nats-token" {
		t.Errorf("nats.token = %q, want it from credential nats_token", cfg.NATS.Token.Reveal())
	}
	if cfg.State.Path != filepath.Join(stateDir, "monitord.db") {
		t.Errorf("state.path = %q, want it under the first $STATE_DIRECTORY", cfg.State.Path)
	}

	cfg = mustLoad(t, writeConfig(t, minimal), append(env, "MONITORD_TWILIO__API_KEY_SID="+testSK), nil)
	if cfg.Twilio.APIKeySecret.Reveal() != "cred-key-secret" || cfg.Twilio.AuthToken != "" {
		t.Errorf("with api_key_sid: key secret %q, auth token %q", cfg.Twilio.APIKeySecret.Reveal(), cfg.Twilio.AuthToken.Reveal())
	}

	// An inline value wins over the directory.
	cfg = mustLoad(t, writeConfig(t, minimal), append(env, "MONITORD_TWILIO__AUTH_TOKEN=inline"), nil)
	if cfg.Twilio.AuthToken.Reveal() != "inline" {
		t.Errorf("auth token %q, want the inline value", cfg.Twilio.AuthToken.Reveal())
	}

	// Accounts find theirs under <name>_…, and inherit base_url and limits.
	accounts := fmt.Sprintf(`
twilio:
  base_url: http://127.0.0.1:8080
  limits: {page_size: 50, burst: 5}
accounts:
  - name: acme
    twilio:
      account_sid: %s
      limits: {burst: 7}
    targets:
      - {service_sid: %s, session_sid: %s, participant_sid: %s}
`, testAC, testKS, testKC, testKP)
	cfg = mustLoad(t, writeConfig(t, accounts), env, nil)
	a := cfg.EffectiveAccounts()
	if len(a) != 1 || a[0].Name != "acme" || a[0].Twilio.AuthToken.Reveal() != "acme-token" {
		t.Fatalf("accounts = %+v", a)
	}
	if a[0].Twilio.BaseURL != "http://127.0.0.1:8080" || a[0].Twilio.Limits.PageSize != 50 ||
		a[0].Twilio.Limits.Burst != 7 || a[0].Twilio.Limits.MaxInFlight != 10 {
		t.Errorf("account twilio = %+v, want base_url and limits inherited, burst its own", a[0].Twilio)
	}
}

func TestEffectiveAccountsSingle(t *testing.T) {
	cfg := mustLoad(t, writeConfig(t, minimal), []string{"MONITORD_TWILIO__AUTH_TOKEN=x"}, nil)
	a := cfg.EffectiveAccounts()
	if len(a) != 1 || a[0].Name != SingleAccountName || len(a[0].Targets) != 1 || a[0].Twilio.AccountSID != testAC {
		t.Errorf("EffectiveAccounts = %+v", a)
	}
	if k := a[0].Targets[0].TwilioTarget().Key(); k != "participant/"+testKS+"/"+testKC+"/"+testKP {
		t.Errorf("target key %q", k)
	}
}

// TestSecretsNeverPrinted dumps a loaded Config every usual way and
// expects no secret in any of them.
func TestSecretsNeverPrinted(t *testing.T) {
	path := writeConfig(t, minimal+`  # x
nats:
  user: monitord
  password: nats-PASSWORD-1
`)
	cfg := mustLoad(t, path, []string{"MONITORD_TWILIO__AUTH_TOKEN=twilio-TOKEN-1"}, nil)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dumps := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", *cfg), "%#v": fmt.Sprintf("%#v", *cfg),
		"%s": fmt.Sprintf("%s", cfg.Twilio.AuthToken), "%q": fmt.Sprintf("%q", cfg.NATS.Password),
		"%x": fmt.Sprintf("%x", cfg.NATS.Password), "json": string(js),
	}
	for how, s := range dumps {
		for _, secret := range []string{"twilio-TOKEN-1", "nats-PASSWORD-1", hex("nats-PASSWORD-1")} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows a secret: %s", how, s)
			}
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("%s shows no [redacted]: %s", how, s)
		}
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("empty secret prints %q, want \"\"", got)
	}
	if cfg.Twilio.AuthToken.Reveal() != "twilio-TOKEN-1" {
		t.Errorf("Reveal lost the value")
	}
}

func hex(s string) string { return fmt.Sprintf("%x", []byte(s)) }

func TestLoadNATSURLAliasConflict(t *testing.T) {
	_, err := Load("", []string{"MONITORD_NATS__URL=nats://a:1", "MONITORD_NATS__URLS=nats://b:1"}, nil)
	want := "MONITORD_NATS__URL (nats.url): set either nats.url or nats.urls, not both"
	if err == nil || err.Error() != want {
		t.Errorf("Load error:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "read config: ") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load error = %v", err)
	}
}

func TestValidateDefaultNeedsOnlyCredentialsAndTargets(t *testing.T) {
	cfg := Default()
	cfg.Twilio.AccountSID = testAC
	cfg.Twilio.AuthToken = "x"
	if err := cfg.Validate(); err != nil {
		t.Errorf("Default() with credentials: %v", err)
	}
}

// TestYAMLErrorKeepsItsOwnQuotes: only quoted values are redacted, not the
// punctuation yaml names in single quotes, nor key names.
func TestYAMLErrorKeepsItsOwnQuotes(t *testing.T) {
	for body, want := range map[string]string{
		"twilio:\n  auth_token: [s3cr3t\n":            "yaml: line 1: did not find expected ',' or ']'",
		"twilio:\n  auth_token: a\n  auth_token: b\n": `mapping key "auth_token" already defined at line 2`,
	} {
		_, err := Load(writeConfig(t, body), nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: error %v, want it to contain %q", body, err, want)
		}
	}
}

// TestLoadCanonicalSIDs: SIDs written with upper-case hex are stored as
// Twilio writes them, so a configured target has the same state key as the
// same participant found by discovery, and the duplicate check sees
// through the case.
func TestLoadCanonicalSIDs(t *testing.T) {
	upper := func(sid string) string { return sid[:2] + strings.ToUpper(sid[2:]) }
	body := fmt.Sprintf("twilio:\n  account_sid: %s\n  auth_token: x\ntargets:\n  - {service_sid: %s, session_sid: %s, participant_sid: %s}\ndiscover:\n  - {service_sid: %s}\n",
		testAC, upper(testKS), upper(testKC), upper(testKP), upper(testKS))
	cfg := mustLoad(t, writeConfig(t, body), nil, nil)
	tg := cfg.Targets[0]
	if tg.ServiceSID != testKS || tg.SessionSID != testKC || tg.ParticipantSID != testKP || cfg.Discover[0].ServiceSID != testKS {
		t.Errorf("target %+v, discover %s: want lower-case hex", tg, cfg.Discover[0].ServiceSID)
	}
	dup := body[:strings.Index(body, "discover:")] + fmt.Sprintf("  - {service_sid: %s, session_sid: %s, participant_sid: %s}\n", testKS, testKC, testKP)
	_, err := Load(writeConfig(t, dup), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "duplicate of targets[0]") {
		t.Errorf("the same target in two cases: %v, want a duplicate", err)
	}
}

// TestLoadKeyFilesBounded: a key, credentials or certificate file must be
// a regular file of at most 1 MiB: nats.go and crypto/tls read them whole.
func TestLoadKeyFilesBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.creds")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxKeyFile + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	body := fmt.Sprintf("twilio:\n  account_sid: %s\n  auth_token: x\ntargets:\n  - {service_sid: %s, session_sid: %s, participant_sid: %s}\n"+
		"nats:\n  urls: [tls://127.0.0.1:4222]\n  creds_file: %s\n  tls: {ca_file: %s}\n", testAC, testKS, testKC, testKP, big, dir)
	_, err = Load(writeConfig(t, body), nil, nil)
	for _, want := range []string{
		fmt.Sprintf("nats.creds_file: %s is %d bytes", big, maxKeyFile+1),
		fmt.Sprintf("nats.tls.ca_file: %s is not a regular file", dir),
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
