package config

import (
	"errors"
	"fmt"
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

// resolveSecrets fills every secret from its *_file or, failing that, from
// the credentials directory. Problems are appended to p; the *_file path and
// the credential name may appear in errors, the secret never does.
func (c *Config) resolveSecrets(credDir string, part Part, p *Problems) {
	if part == PartAlertmanager {
		a := &c.Alertmanager
		resolveSecret(&a.Password, a.PasswordFile, "alertmanager.password", credDir, CredAlertmanagerPassword, a.User != "", p)
		resolveSecret(&a.BearerToken, a.BearerTokenFile, "alertmanager.bearer_token", credDir, CredAlertmanagerBearerToken, a.User == "", p)
	} else if len(c.Accounts) == 0 {
		resolveTwilio(&c.Twilio, "twilio", "", credDir, p)
	} else {
		// Top-level credentials are rejected by Validate when accounts
		// are set; their files are still read so errors stay complete.
		resolveTwilio(&c.Twilio, "twilio", "-", "", p)
		for i := range c.Accounts {
			a := &c.Accounts[i]
			prefix := ""
			if a.Name != "" {
				prefix = a.Name + "_"
			}
			resolveTwilio(&a.Twilio, fmt.Sprintf("accounts[%d].twilio", i), prefix, credDir, p)
		}
	}
	n := &c.NATS
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
func resolveTwilio(t *Twilio, key, credPrefix, credDir string, p *Problems) {
	if credPrefix == "-" {
		credDir = ""
	}
	resolveSecret(&t.APIKeySecret, t.APIKeySecretFile, key+".api_key_secret", credDir, credPrefix+CredTwilioAPIKeySecret, t.APIKeySID != "", p)
	resolveSecret(&t.AuthToken, t.AuthTokenFile, key+".auth_token", credDir, credPrefix+CredTwilioAuthToken, t.APIKeySID == "", p)
}

// resolveSecret sets *s from file, or from credDir/cred when wanted and
// that credential exists. A value given both inline and by file is an error:
// which one wins would be a guess.
func resolveSecret(s *Secret, file, key, credDir, cred string, wanted bool, p *Problems) {
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
	}
}

// readSecretFile reads a secret, dropping the trailing newline editors and
// `echo` add. The error names the path, never the content.
func readSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
		}
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return Secret(v), nil
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
