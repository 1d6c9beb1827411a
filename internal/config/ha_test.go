package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestHAEnabledWithDefaults: `ha: {enabled: true}` alone is a valid
// config; every other key of the section has a working default.
func TestHAEnabledWithDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ha.yaml")
	writeFile(t, path, `twilio:
  account_sid: AC0123456789abcdef0123456789abcdef
  auth_token: tok
targets:
  - service_sid: KS0123456789abcdef0123456789abcdef
    session_sid: KC0123456789abcdef0123456789abcdef
    participant_sid: KP0123456789abcdef0123456789abcdef
ha:
  enabled: true
`)
	cfg, err := Load(path, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := DefaultHA()
	want.Enabled = true
	if cfg.HA != want {
		t.Errorf("ha = %+v, want %+v", cfg.HA, want)
	}
}

// TestHAEmptySubjectPrefix: an empty tasks prefix is refused by check, not
// at start by the work queue.
func TestHAEmptySubjectPrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ha.yaml")
	writeFile(t, path, `twilio:
  account_sid: AC0123456789abcdef0123456789abcdef
  auth_token: tok
targets:
  - service_sid: KS0123456789abcdef0123456789abcdef
    session_sid: KC0123456789abcdef0123456789abcdef
    participant_sid: KP0123456789abcdef0123456789abcdef
ha:
  enabled: true
  tasks: {subject_prefix: ""}
`)
	_, err := Load(path, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `ha.tasks.subject_prefix: "" must be one subject token`) {
		t.Errorf("Load: %v, want the empty prefix refused", err)
	}
}

// TestHABalance: ha.balance is on by default (TestHAEnabledWithDefaults),
// false turns it off, and a value that is not a bool is refused naming
// the key.
func TestHABalance(t *testing.T) {
	const head = `twilio:
  account_sid: AC0123456789abcdef0123456789abcdef
  auth_token: tok
targets:
  - service_sid: KS0123456789abcdef0123456789abcdef
    session_sid: KC0123456789abcdef0123456789abcdef
    participant_sid: KP0123456789abcdef0123456789abcdef
ha:
  enabled: true
`
	path := filepath.Join(t.TempDir(), "ha.yaml")
	writeFile(t, path, head+"  balance: false\n")
	cfg, err := Load(path, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.HA.Balance {
		t.Error("ha.balance: false loaded as true")
	}
	writeFile(t, path, head+"  balance: maybe\n")
	_, err = Load(path, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `ha.balance: expected true or false, got "maybe"`) {
		t.Errorf("Load: %v, want ha.balance named", err)
	}
}
