package config

import (
	"slices"
	"strings"
	"testing"
)

// TestLoopbackMayBePlain: the simulator and a local NATS server are
// reached in clear text without a word; nothing crosses a network.
func TestLoopbackMayBePlain(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:8080", "http://localhost:8080", "https://proxy.twilio.com"} {
		path := writeConfig(t, minimal+"  # x\nnats:\n  urls: [nats://127.0.0.1:4222, nats://localhost:4222, \"ws://[::1]:80\", tls://nats.example.com:4222]\n  token: t0ken\n")
		cfg := mustLoad(t, path, []string{"MONITORD_TWILIO__AUTH_TOKEN=t", "MONITORD_TWILIO__BASE_URL=" + base}, nil)
		if w := cfg.Warnings(); len(w) > 0 {
			t.Errorf("base_url %s: warnings %q, want none", base, w)
		}
	}
}

// TestNATSTLSMakesAuthSafe: any nats.tls file makes nats.go require TLS of
// every server, so credentials may go to another host.
func TestNATSTLSMakesAuthSafe(t *testing.T) {
	dir := t.TempDir()
	ca := dir + "/ca.pem"
	writeFile(t, ca, "not checked here")
	path := writeConfig(t, minimal+"  # x\nnats:\n  urls: [nats://nats.example.com:4222]\n  user: u\n  password: p\n  tls:\n    ca_file: "+ca+"\n")
	cfg := mustLoad(t, path, []string{"MONITORD_TWILIO__AUTH_TOKEN=t"}, nil)
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("warnings %q, want none", w)
	}
}

// TestAllowInsecureAuthWarns: the opt-out loads, and says what is exposed
// where, without the secret.
func TestAllowInsecureAuthWarns(t *testing.T) {
	path := writeConfig(t, minimal+"  # x\nnats:\n  urls: [nats://nats.example.com:4222, nats://127.0.0.1:4222]\n  token: s3cr3t\n  allow_insecure_auth: true\n")
	cfg := mustLoad(t, path, []string{"MONITORD_TWILIO__AUTH_TOKEN=t"}, nil)
	want := []string{"nats.allow_insecure_auth: the token goes to nats://nats.example.com:4222 without TLS"}
	if got := cfg.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	if strings.Contains(strings.Join(cfg.Warnings(), " "), "s3cr3t") {
		t.Error("warning shows the token")
	}
}
