package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const creds = "twilio: {account_sid: AC00000000000000000000000000000000, auth_token: secret-token}\n"
	const target = "targets: [{service_sid: KS00000000000000000000000000000000, session_sid: KC00000000000000000000000000000000, participant_sid: KP00000000000000000000000000000000%s}]\n"
	tests := []struct {
		name, body string
		code       int
		want       []string // in stdout+stderr
	}{
		{"good", creds + strings.ReplaceAll(target, "%s", ""), exitOK, []string{"ok\n"}},
		{"unknown key", creds + "bogus: 1\n" + strings.ReplaceAll(target, "%s", ""), exitUsage, []string{"bogus: unknown key"}},
		{"bad values", "twilio: {account_sid: AC12, auth_token: secret-token}\nlog: {level: loud}\n" + strings.ReplaceAll(target, "%s", ""),
			exitUsage, []string{"twilio.account_sid", "log.level"}},
		{"insecure auth allowed", creds + strings.ReplaceAll(target, "%s", "") +
			"nats: {urls: [nats://nats.example.com:4222], user: u, password: secret-token, allow_insecure_auth: true}\n",
			exitOK, []string{"warning: nats.allow_insecure_auth: the password goes to nats://nats.example.com:4222 without TLS\n", "ok\n"}},
		{"insecure auth", creds + strings.ReplaceAll(target, "%s", "") +
			"nats: {urls: [\"nats://u:secret-token@[::1\", nats://nats.example.com:4222], user: u, password: secret-token}\n",
			exitUsage, []string{`nats.urls[0]: "nats://[redacted]@[::1" is not a URL`, "nats.urls[1]: nats://nats.example.com:4222 would get the password without TLS"}},
		{"state path under a file", creds + strings.ReplaceAll(target, "%s", "") + "state: {path: " + filepath.Join(dir, "good.yaml", "monitord.db") + "}\n",
			exitUsage, []string{"state.path: " + filepath.Join(dir, "good.yaml", "monitord.db") + ": " + filepath.Join(dir, "good.yaml") + " is not a directory"}},
		{"sub-second schedule", creds + strings.ReplaceAll(target, "%s", `, schedule: "@every 100ms"`),
			exitUsage, []string{"targets[0].schedule", "whole seconds"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := write(tc.name+".yaml", tc.body)
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"check", "-c", path}, &out, &errb)
			code := exitCode(err, &errb)
			all := out.String() + errb.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			if strings.Contains(all, "secret-token") {
				t.Error("secret in output")
			}
		})
	}
	var errb bytes.Buffer
	good := filepath.Join(dir, "good.yaml")
	if code := exitCode(run(context.Background(), []string{"check", "-c", good, "--poll.schedule", "@every 100ms"}, &errb, &errb), &errb); code != exitUsage ||
		!strings.Contains(errb.String(), "flag --poll.schedule (poll.schedule): ") {
		t.Errorf("sub-second schedule by flag: exit %d %s", code, errb.String())
	}
	errb.Reset()
	if code := exitCode(run(context.Background(), []string{"check"}, &errb, &errb), &errb); code != exitUsage ||
		!strings.Contains(errb.String(), "-c FILE is required") {
		t.Errorf("no -c: exit %d %s", code, errb.String())
	}
}

// TestCheckAlertmanager: `check --alertmanager` validates what the bridge
// reads (its unit's ExecStartPre), naming each bad key, and needs no
// Twilio section; plain `check` ignores the bridge's section.
func TestCheckAlertmanager(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "alertmanager: {urls: [http://127.0.0.1:9093]}\n")
	bad := write("bad.yaml", "alertmanager: {urls: [\"http://am.example.com:9093\"], bearer_token: secret-token, kinds: [created]}\n")
	for _, tc := range []struct {
		path string
		code int
		want []string
	}{
		{good, exitOK, []string{"ok\n"}},
		{bad, exitUsage, []string{"alertmanager.urls[0]", "must be https", "alertmanager.kinds"}},
	} {
		var out, errb bytes.Buffer
		code := exitCode(run(context.Background(), []string{"check", "--alertmanager", "-c", tc.path}, &out, &errb), &errb)
		all := out.String() + errb.String()
		if code != tc.code {
			t.Fatalf("%s: exit %d, want %d: %s", filepath.Base(tc.path), code, tc.code, all)
		}
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: output lacks %q:\n%s", filepath.Base(tc.path), w, all)
			}
		}
		if strings.Contains(all, "secret-token") {
			t.Error("secret in output")
		}
	}
}
