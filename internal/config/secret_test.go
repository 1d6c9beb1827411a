package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSecretFileRelativeToConfig: under systemd the working directory is
// "/", so a relative *_file must mean next to the config file.
func TestSecretFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token.txt"), "rel-token\n")
	writeFile(t, filepath.Join(dir, "nats.pw"), "rel-pw\n")
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, withTwilio("auth_token_file: token.txt")+"nats:\n  user: u\n  password_file: ./nats.pw\n")
	cfg := mustLoad(t, path, nil, nil)
	if cfg.Twilio.AuthToken.Reveal() != "rel-token" || cfg.NATS.Password.Reveal() != "rel-pw" {
		t.Errorf("secrets %q, %q: want them read next to the config file", cfg.Twilio.AuthToken.Reveal(), cfg.NATS.Password.Reveal())
	}
	if want := filepath.Join(dir, "token.txt"); cfg.Twilio.AuthTokenFile != want {
		t.Errorf("twilio.auth_token_file = %q, want %q", cfg.Twilio.AuthTokenFile, want)
	}
}

// TestSecretFileBounded: a secret file is small; a large one, or a device
// that never ends, is an error naming the key, at once.
func TestSecretFileBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	writeFile(t, big, strings.Repeat("x", maxSecretBytes+1))
	path := writeConfig(t, minimal)
	for file, want := range map[string]string{
		big:         "twilio.auth_token_file: " + big + " is larger than 64 KiB",
		"/dev/zero": "twilio.auth_token_file: /dev/zero is not a regular file",
		dir:         "twilio.auth_token_file: " + dir + " is not a regular file",
	} {
		_, err := Load(path, []string{"MONITORD_TWILIO__AUTH_TOKEN_FILE=" + file}, nil)
		if err == nil || err.Error() != want {
			t.Errorf("auth_token_file %s: error %v, want %s", file, err, want)
		}
	}
	// Exactly the bound is fine.
	writeFile(t, big, strings.Repeat("x", maxSecretBytes))
	mustLoad(t, path, []string{"MONITORD_TWILIO__AUTH_TOKEN_FILE=" + big}, nil)
}

// TestSecretFileModeWarns: a secret others can read is a warning naming
// the key, from a *_file, a credential, or a file NATS reads itself.
func TestSecretFileModeWarns(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	seed := filepath.Join(dir, "seed")
	writeFile(t, token, "tok\n")
	writeFile(t, seed, "SUAAAA\n")
	path := writeConfig(t, withTwilio("auth_token_file: "+token)+"nats:\n  nkey_seed_file: "+seed+"\n")
	if w := mustLoad(t, path, nil, nil).Warnings(); len(w) > 0 {
		t.Errorf("mode 0600: warnings %q, want none", w)
	}
	for _, f := range []string{token, seed} {
		if err := os.Chmod(f, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"twilio.auth_token_file: " + token + " is readable by others than its owner (mode 0640); chmod 0600 it",
		"nats.nkey_seed_file: " + seed + " is readable by others than its owner (mode 0640); chmod 0600 it",
	}
	if got := mustLoad(t, path, nil, nil).Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", got, want)
	}

	creds := t.TempDir()
	writeFile(t, filepath.Join(creds, CredTwilioAuthToken), "cred\n")
	if err := os.Chmod(filepath.Join(creds, CredTwilioAuthToken), 0o604); err != nil {
		t.Fatal(err)
	}
	got := mustLoad(t, writeConfig(t, minimal), []string{"CREDENTIALS_DIRECTORY=" + creds}, nil).Warnings()
	want = []string{"twilio.auth_token: credential twilio_auth_token is readable by others than its owner (mode 0604); chmod 0600 it"}
	if !slices.Equal(got, want) {
		t.Errorf("credential warnings %q, want %q", got, want)
	}
}

// withTwilio is minimal with one more line under twilio:.
func withTwilio(line string) string {
	return strings.Replace(minimal, "twilio:\n", "twilio:\n  "+line+"\n", 1)
}
