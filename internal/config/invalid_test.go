package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalid loads each testdata/invalid-*.yaml and expects its exact
// error: every problem of the file, one per line, each naming its key. Each
// file sets secrets to values that must never show in the message.
func TestInvalid(t *testing.T) {
	const (
		sid     = "KS0123456789abcdef0123456789abcdef"
		tgtID   = "participant/KS0123456789abcdef0123456789abcdef/KC0123456789abcdef0123456789abcdef/KP0123456789abcdef0123456789abcdef"
		noCreds = `twilio: no credentials: set api_key_sid and api_key_secret (recommended) or auth_token, ` +
			`each secret inline, as *_file or as systemd credential twilio_api_key_secret / twilio_auth_token`
	)
	tests := map[string][]string{
		"account-sid": {`twilio.account_sid: "AB0123456789abcdef0123456789abcdef" does not match ^AC[0-9a-fA-F]{32}$`},
		"accounts": {
			`accounts[1].name: "acme" is already the name of accounts[0]`,
			`accounts[1].twilio: no credentials: set api_key_sid and api_key_secret (recommended) or auth_token, ` +
				`each secret inline, as *_file or as systemd credential acme_twilio_api_key_secret / acme_twilio_auth_token`,
			`accounts[1].targets[0]: duplicate of accounts[0].targets[0] (` + tgtID + `)`,
			`accounts[2].name: required`,
		},
		"admin-listen":           {`admin.listen: "9464" is not host:port`},
		"api-key-without-secret": {`twilio.api_key_secret: required with api_key_sid (or api_key_secret_file, or systemd credential twilio_api_key_secret)`},
		"base-url":               {`twilio.base_url: "proxy.twilio.com" is not an http or https URL`},
		"base-url-http":          {`twilio.base_url: "http://proxy.twilio.com" must be https (http only to a loopback host such as the simulator): Basic auth would cross the network in clear text`},
		"base-url-unparseable":   {`twilio.base_url: "https://[redacted]@[::1" is not an http or https URL`},
		"both-auth":              {`twilio: both an API key (api_key_sid, api_key_secret) and auth_token are set; use one`},
		"activity": {
			`twilio.limits.scope: "route" is not "service" or "endpoint"`,
			`poll.activity.index_every: must be at least 1s, got 500ms`,
			`poll.activity.hot_max: 30s is shorter than hot_min 1m0s`,
			`poll.activity.cold_every: 20s is shorter than hot_max 30s: a quiet target would be polled more often than a busy one`,
		},
		// The activity keys are not checked in schedule mode, nor in an
		// unknown one: the mode is the problem.
		"poll-mode": {`poll.mode: "adaptive" is not "schedule" or "activity"`},
		"cron":      {`poll.schedule: "every minute" is not a cron spec: expected 5 to 6 fields, found 2: [every minute]`},
		"reasons": {
			`twilio.messages_base_url: must not contain credentials`,
			`reasons.rate: must be positive, got 0`,
			`reasons.concurrency: must be at least 1, got 0`,
			`reasons.timeout: must be positive, got 0s`,
			`reasons.metric_codes[1]: 0 is not a Twilio error code`,
			`reasons.metric_codes[2]: 30007 is listed twice`,
		},
		"discover": {
			`discover[0].session_status[1]: "active" is not "open", "in-progress", "closed", "failed" or "unknown"`,
			`discover[0].schedule: "@every" is not a cron spec: unrecognized descriptor: @every`,
			`discover[1].service_sid: ` + sid + ` is already discovered by discover[0]`,
		},
		"duplicate-target": {`targets[2]: duplicate of targets[0] (` + tgtID + `)`},
		"ha": {
			`ha.enabled: needs nats.mode jetstream (state and poll tasks live in JetStream), got nats.mode "core"`,
			`ha.bucket: "monitord.state" must be a non-empty bucket name without ".", "*", ">", slashes or spaces`,
			`ha.replicas: must be between 1 and 5, got 0`,
			`ha.tasks.stream: "MONITORD" is nats.stream.name too; the tasks need a stream of their own`,
			`ha.tasks.subject_prefix: "monitord" is nats.subject_prefix too; the events stream would capture the tasks`,
			`ha.tasks.duplicates: must be positive, got 0s`,
			`ha.tasks.pinned_ttl: 4s is under twice ha.tasks.pull_expiry 3s; a live owner would lose its Services`,
			`ha.tasks.ack_wait: 1s is under 1.5s (a running poll renews it every third)`,
			`ha.tasks.concurrency: must be at least 1, got 0`,
			`ha.enabled: poll.mode activity is not supported with ha yet; use poll.mode schedule`,
		},
		"log": {
			`log.level: "verbose" is not "debug", "info", "warn" or "error"`,
			`log.format: "text" is not "auto", "json" or "console"`,
		},
		"missing-sids": {
			`targets[0].service_sid: required (KS followed by 32 hex digits)`,
			`targets[0].session_sid: required (KC followed by 32 hex digits)`,
		},
		"mixed-accounts": {
			`targets: not allowed with accounts; set it in each accounts[].targets`,
			`twilio.account_sid: not allowed with accounts; set it in each accounts[].twilio.account_sid (only base_url and limits are shared)`,
			`twilio.auth_token: not allowed with accounts; set it in each accounts[].twilio.auth_token (only base_url and limits are shared)`,
		},
		"nats-auth": {
			`nats: set only one of user/password, token, nkey_seed_file and creds_file`,
			`nats.password: required with nats.user (or password_file, or credential nats_password)`,
			`nats.tls.cert_file: testdata/does-not-exist.pem: no such file or directory`,
			`nats.tls.key_file: required with nats.tls.cert_file`,
		},
		"nats-insecure-auth": {
			`nats.urls[0]: nats://nats.example.com:4222 would get the password without TLS: use tls://, set nats.tls, or accept the risk with nats.allow_insecure_auth: true`,
			`nats.urls[5]: ws://10.0.0.7:8080 would get the password without TLS: use tls://, set nats.tls, or accept the risk with nats.allow_insecure_auth: true`,
		},
		"nats-url-unparseable": {
			`nats.urls[0]: "nats://[redacted]@[::1" is not a URL such as nats://127.0.0.1:4222`,
			`nats.urls[1]: "nats:" is not a URL such as nats://127.0.0.1:4222`,
		},
		"nats-url": {
			`nats.urls[0]: scheme "http" is not nats, tls, ws or wss`,
			`nats.urls[1]: must not contain credentials; use nats.user/password or nats.token`,
		},
		"negative-durations": {
			`discover[0].grace: must not be negative, got -1h0m0s`,
			`poll.timeout: must be positive, got -5s`,
			`rules.baseline.alert_recent: must not be negative, got -1m0s`,
		},
		"no-credentials":           {noCreds},
		"page-size-0":              {`twilio.limits.page_size: must be between 1 and 1000, got 0`},
		"page-size-1001":           {`twilio.limits.page_size: must be between 1 and 1000, got 1001`},
		"participant-sid":          {`targets[3].participant_sid: "KP12" does not match ^KP[0-9a-fA-F]{32}$`},
		"publish-kind":             {`rules.publish_kinds[1]: "failure" is not an event kind (created, status_changed, failed, stuck, deleted, target_error, target_recovered, heartbeat)`},
		"secret-inline-and-file":   {`twilio.auth_token: set either auth_token or auth_token_file, not both`},
		"secret-type":              {`twilio.auth_token: expected a string, got a number`},
		"service-sid":              {`targets[0].service_sid: "KSxyz" does not match ^KS[0-9a-fA-F]{32}$`},
		"session-with-participant": {`targets[0].participant_sid: must be empty for source "session" (it lists the whole session)`},
		"source":                   {`targets[0].source: "sms" is not "participant" or "session"`},
		"stream": {
			`nats.mode: "push" is not "jetstream" or "core"`,
			`nats.stream.name: "MONITORD.EVENTS" must not contain ".", "*", ">", slashes or spaces`,
			`nats.stream.storage: "disk" is not "file" or "memory"`,
			`nats.stream.duplicates: 2h0m0s is longer than nats.stream.max_age 1h0m0s`,
			`nats.stream.replicas: must be between 1 and 5, got 7`,
		},
		"subject-prefix":         {`nats.subject_prefix: "monitord.events" must be one subject token (no ".", "*", ">" or spaces)`},
		"target-cron":            {`targets[0].schedule: "61 * * * *" is not a cron spec: end of range (61) above maximum (59): 61`},
		"timezone":               {`poll.timezone: unknown time zone "Mars/Olympus_Mons"`},
		"unknown-key":            {`pol: unknown key`},
		"unknown-target-key":     {`targets[0].participant: unknown key`},
		"unreadable-secret-file": {`twilio.auth_token_file: testdata/does-not-exist.txt: no such file or directory`},
		"wrong-type-bool":        {`poll.spread: expected true or false, got "maybe"`},
		"wrong-type-duration": {
			`poll.timeout: expected a duration such as "30s", got 30`,
			`rules.stuck_after: "15 minutes" is not a duration such as "30s" or "1h30m"`,
		},
		"wrong-type-int": {
			`twilio.limits.page_size: expected an integer, got "lots"`,
			`twilio.limits.requests_per_second: expected a number, got "fast"`,
		},
		"wrong-type-list":    {`targets: expected a list, got "` + sid + `"`},
		"yaml-secret-anchor": {"parse testdata/invalid-yaml-secret-anchor.yaml: yaml: unknown anchor '[redacted]' referenced"},
		"yaml-secret-tag":    {"parse testdata/invalid-yaml-secret-tag.yaml: yaml: cannot decode !!str `[redacted]` as a !!int"},
		"yaml-syntax":        {`parse testdata/invalid-yaml-syntax.yaml: yaml: line 9: found unexpected end of stream`},
	}

	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("%d testdata/invalid-*.yaml files but %d cases: every file needs its expected error", len(files), len(tests))
	}
	for _, file := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "invalid-"), ".yaml")
		t.Run(name, func(t *testing.T) {
			want, ok := tests[name]
			if !ok {
				t.Fatalf("no expected error for %s", file)
			}
			cfg, err := Load(file, nil, nil)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", file, cfg)
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("Load(%s) error:\n%s\nwant:\n%s", file, got, strings.Join(want, "\n"))
			}
			var p Problems
			if !strings.HasPrefix(name, "yaml-") && (!errors.As(err, &p) || len(p) != len(want)) {
				t.Errorf("error is not a Problems of %d: %#v", len(want), err)
			}
			for _, secret := range []string{"s3cr3t", "hunter2", "987654321"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows secret %q:\n%s", secret, err)
				}
			}
		})
	}
}
