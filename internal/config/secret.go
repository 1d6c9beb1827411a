package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// redacted is what a non-empty Secret prints as, everywhere.
	redacted = "[redacted]"
	// unreadable stands in for a secret whose file could not be read.
	unreadable Secret = "\x00unreadable"
)

// Secret is a credential. It prints as "[redacted]" with every fmt verb,
// in JSON, text and YAML, so a Config can be logged or dumped whole without
// leaking it; an empty Secret prints as "" so that "unset" stays visible.
// Reveal returns the value for the one place that needs it.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" when unset.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts %#v too.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format redacts every verb, %q, %x and %d included.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			_, _ = f.Write([]byte(s.GoString()))
			return
		}
	case 'q':
		_, _ = fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// MarshalJSON redacts the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText redacts the value (encoding/xml, map keys, and yaml.v3).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML redacts the value for YAML encoders.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Credential names looked up in $CREDENTIALS_DIRECTORY (systemd
// LoadCredential=) for a secret that is set neither inline nor by *_file.
// For an entry of accounts, the account name and "_" are prepended to the
// Twilio names: acme_twilio_auth_token.
const (
	CredTwilioAPIKeySecret = "twilio_api_key_secret"
	CredTwilioAuthToken    = "twilio_auth_token"
	CredNATSPassword       = "nats_password"
	CredNATSToken          = "nats_token"
	CredNATSNKeySeed       = "nats_nkey_seed"
	CredNATSCreds          = "nats_creds"

	CredAlertmanagerPassword    = "alertmanager_password"
	CredAlertmanagerBearerToken = "alertmanager_bearer_token"
)

// maxSecretBytes bounds a secret file: keys, tokens and .creds files are a
// few hundred bytes, and a path to something endless must fail at once.
const maxSecretBytes = 64 << 10

// resolvePaths makes every relative *_file path relative to dir, the config
// file's directory: under systemd the working directory is "/", so a path
// written next to the config must not depend on where monitord starts.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	twilio := func(t *Twilio) {
		abs(&t.APIKeySecretFile)
		abs(&t.AuthTokenFile)
	}
	twilio(&c.Twilio)
	for i := range c.Accounts {
		twilio(&c.Accounts[i].Twilio)
	}
	n := &c.NATS
	a := &c.Alertmanager
	for _, p := range []*string{&n.PasswordFile, &n.TokenFile, &n.NKeySeedFile, &n.CredsFile, &n.TLS.CAFile, &n.TLS.CertFile, &n.TLS.KeyFile,
		&a.PasswordFile, &a.BearerTokenFile, &a.TLS.CAFile, &a.TLS.CertFile, &a.TLS.KeyFile} {
		abs(p)
	}
}

// resolveSecrets fills every secret from its *_file or, failing that, from
// the credentials directory. Problems are appended to p; the *_file path and
// the credential name may appear in errors, the secret never does. A secret
// file others can read is a warning (c.fileWarnings): it works, but
// another user or service of the host could take the credential.
func (c *Config) resolveSecrets(credDir string, part Part, p *Problems) {
	c.fileWarnings = nil
	if part == PartAlertmanager {
		a := &c.Alertmanager
		c.resolveSecret(&a.Password, a.PasswordFile, "alertmanager.password", credDir, CredAlertmanagerPassword, a.User != "", p)
		c.resolveSecret(&a.BearerToken, a.BearerTokenFile, "alertmanager.bearer_token", credDir, CredAlertmanagerBearerToken, a.User == "", p)
	} else if len(c.Accounts) == 0 {
		c.resolveTwilio(&c.Twilio, "twilio", "", credDir, p)
	} else {
		// Top-level credentials are rejected by Validate when accounts
		// are set; their files are still read so errors stay complete.
		c.resolveTwilio(&c.Twilio, "twilio", "-", "", p)
		for i := range c.Accounts {
			a := &c.Accounts[i]
			prefix := ""
			if a.Name != "" {
				prefix = a.Name + "_"
			}
			c.resolveTwilio(&a.Twilio, fmt.Sprintf("accounts[%d].twilio", i), prefix, credDir, p)
		}
	}
	n := &c.NATS
	// NATS reads these two itself, when it connects.
	c.checkSecretMode("nats.nkey_seed_file", n.NKeySeedFile, n.NKeySeedFile)
	c.checkSecretMode("nats.creds_file", n.CredsFile, n.CredsFile)
	c.checkSecretMode("nats.tls.key_file", n.TLS.KeyFile, n.TLS.KeyFile)
	resolveSecret := c.resolveSecret
	resolveSecret(&n.Password, n.PasswordFile, "nats.password", credDir, CredNATSPassword, n.User != "", p)
	tokenWanted := n.User == "" && n.NKeySeedFile == "" && n.CredsFile == ""
	resolveSecret(&n.Token, n.TokenFile, "nats.token", credDir, CredNATSToken, tokenWanted, p)
	if credDir != "" && n.User == "" && n.Token == "" {
		if n.NKeySeedFile == "" && n.CredsFile == "" && exists(filepath.Join(credDir, CredNATSNKeySeed)) {
			n.NKeySeedFile = filepath.Join(credDir, CredNATSNKeySeed)
		}
		if n.NKeySeedFile == "" && n.CredsFile == "" && exists(filepath.Join(credDir, CredNATSCreds)) {
			n.CredsFile = filepath.Join(credDir, CredNATSCreds)
		}
	}
}

// resolveTwilio looks up the API key secret when an API key SID is set,
// otherwise the auth token, so a credentials directory holding both never
// produces "both auth kinds". credPrefix "-" disables the directory.
func (c *Config) resolveTwilio(t *Twilio, key, credPrefix, credDir string, p *Problems) {
	if credPrefix == "-" {
		credDir = ""
	}
	resolveSecret := c.resolveSecret
	resolveSecret(&t.APIKeySecret, t.APIKeySecretFile, key+".api_key_secret", credDir, credPrefix+CredTwilioAPIKeySecret, t.APIKeySID != "", p)
	resolveSecret(&t.AuthToken, t.AuthTokenFile, key+".auth_token", credDir, credPrefix+CredTwilioAuthToken, t.APIKeySID == "", p)
}

// resolveSecret sets *s from file, or from credDir/cred when wanted and
// that credential exists. A value given both inline and by file is an error:
// which one wins would be a guess.
func (c *Config) resolveSecret(s *Secret, file, key, credDir, cred string, wanted bool, p *Problems) {
	if file != "" {
		if *s != "" {
			p.addf("%s: set either %s or %s_file, not both", key, lastKey(key), lastKey(key))
			return
		}
		v, err := readSecretFile(file)
		if err != nil {
			p.addf("%s_file: %v", key, err)
			// Reported here; a stand-in value keeps Validate from also
			// saying "no credentials". Load returns no Config on errors.
			*s = unreadable
			return
		}
		*s = v
		c.checkSecretMode(key+"_file", file, file)
		return
	}
	if *s != "" || credDir == "" || !wanted {
		return
	}
	path := filepath.Join(credDir, cred)
	v, err := readSecretFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		p.addf("%s: credential %s: %v", key, cred, err)
		*s = unreadable
	default:
		*s = v
		c.checkSecretMode(key, "credential "+cred, path)
	}
}

// checkSecretMode warns when the file at path, shown as what, is readable
// by its group or by everyone. A missing file is reported elsewhere.
func (c *Config) checkSecretMode(key, what, path string) {
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o044 == 0 {
		return
	}
	c.fileWarnings = append(c.fileWarnings, fmt.Sprintf("%s: %s is readable by others than its owner (mode %#o); chmod 0600 it",
		key, what, fi.Mode().Perm()))
}

// readSecretFile reads a secret, dropping the trailing newline editors and
// `echo` add. The error names the path, never the content. Only a regular
// file is read (opening a FIFO would wait for a writer, /dev/zero never
// ends), and at most maxSecretBytes of it.
func readSecretFile(path string) (Secret, error) {
	b, err := readRegular(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("%s: %w", pe.Path, pe.Err)
		}
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return Secret(v), nil
}

func readRegular(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretBytes {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxSecretBytes>>10)
	}
	return b, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func lastKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}
