package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAlertmanagerInvalid: every bad key of the alertmanager section is
// named at once, and no secret shows in the message.
func TestAlertmanagerInvalid(t *testing.T) {
	_, err := LoadPart("testdata/alertmanager-invalid.yaml", nil, nil, PartAlertmanager)
	if err == nil {
		t.Fatal("loaded")
	}
	want := []string{
		`alertmanager.urls[0]: must not contain credentials; use alertmanager.user/password or bearer_token`,
		`alertmanager.urls[1]: "ftp://am.example" is not an http or https URL such as http://127.0.0.1:9093`,
		`alertmanager.urls[2]: must not have a query or fragment`,
		`alertmanager.urls[3]: "http://am.example:9093" must be https when alertmanager.user or bearer_token is set (http only to a loopback host)`,
		`alertmanager.urls[4]: "https://[redacted]@[::1" is not an http or https URL such as http://127.0.0.1:9093`,
		`alertmanager.timeout: must be positive, got 0s`,
		`alertmanager.password: required with alertmanager.user (or password_file, or credential alertmanager_password)`,
		`alertmanager: set either user/password or bearer_token, not both`,
		`alertmanager.consumer: "has.dot" must be letters, digits, "_" or "-"`,
		`alertmanager.kinds[1]: "created" is not failed, stuck or target_error`,
		`alertmanager.kinds[2]: "failed" is listed twice`,
		`alertmanager.resolve_after: must be positive, got -1h0m0s`,
		`alertmanager.batch_size: must be between 1 and 10000, got 0`,
		`alertmanager.max_backoff: 1s is shorter than alertmanager.min_backoff 10s`,
		`alertmanager.ack_wait: 1s must be longer than max_backoff + timeout (1s), or JetStream redelivers a batch while it is being retried`,
		`alertmanager.listen: "9095" is not host:port`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	for _, secret := range []string{"s3cr3t-in-url", "tok-never-shown"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows secret %q", secret)
		}
	}
}

// TestAlertmanagerPart: the bridge needs no Twilio credential and reads
// its own secrets from files or systemd credentials; the daemon needs no
// alertmanager section.
func TestAlertmanagerPart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, "alertmanager: {urls: [http://127.0.0.1:9093], user: pager}\n")
	if _, err := LoadPart(path, nil, nil, PartAlertmanager); err == nil ||
		err.Error() != "alertmanager.password: required with alertmanager.user (or password_file, or credential alertmanager_password)" {
		t.Fatalf("without password: %v", err)
	}
	creds := t.TempDir()
	writeFile(t, filepath.Join(creds, CredAlertmanagerPassword), "pw\n")
	cfg, err := LoadPart(path, []string{"CREDENTIALS_DIRECTORY=" + creds}, nil, PartAlertmanager)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alertmanager.Password.Reveal() != "pw" {
		t.Errorf("password %q from the credential", cfg.Alertmanager.Password.Reveal())
	}
	writeFile(t, path, "alertmanager: {}\n")
	if _, err := LoadPart(path, nil, nil, PartAlertmanager); err == nil ||
		!strings.HasPrefix(err.Error(), "alertmanager.urls: must list at least one Alertmanager") {
		t.Errorf("no urls: %v", err)
	}
}
