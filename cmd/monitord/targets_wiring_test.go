package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
)

// TestDiscoveryEndToEnd runs `monitord run` with a `discover` entry and no
// hand-listed participants (one configured target that discovery also
// finds): a session opening in the simulator is polled within one refresh
// and its failure reaches JetStream; once it closes, its targets stay for
// the grace period, then go, and so does their state.
func TestDiscoveryEndToEnd(t *testing.T) {
	ns := testNATS(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 8, Sessions: 1, Participants: 2, Interactions: 3})
	svc := sim.Services()[0]
	initial := sim.Targets()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	adminAddr := freePort(t)
	statePath := filepath.Join(dir, "state.db")
	const grace = 4 * time.Second
	writeDiscoveryConfig(t, cfgPath, e2eConfig{
		SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(), State: statePath,
		Admin: adminAddr, Targets: initial[:1], Schedule: "@every 1s",
	}, svc, grace)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, _ := startRun(t, ctx, cfgPath)
	base := "http://" + adminAddr
	status := func() admin.StatusDoc {
		var doc admin.StatusDoc
		_, body := httpGet(base + "/status")
		_ = json.Unmarshal([]byte(body), &doc)
		return doc
	}
	origins := func(doc admin.StatusDoc) map[string]string {
		m := map[string]string{}
		for _, s := range doc.Status {
			if s.Health != poller.HealthUnknown {
				m[s.ParticipantSID] = s.Origin
			}
		}
		return m
	}

	// The configured participant is also discovered: polled once, as
	// configured; its session's other participant is discovered.
	waitFor(t, "the initial session's participants polled", 20*time.Second, func() bool {
		o := origins(status())
		return len(o) == 2 && o[initial[0].ParticipantSID] == "configured" && o[initial[1].ParticipantSID] == "discovered"
	})
	se := followStream(t, ctx, ns.ClientURL())

	// A session opens: both participants polled after one refresh, and a
	// failure on one of them is published.
	opened, err := sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new session's participants polled", 20*time.Second, func() bool {
		o := origins(status())
		return o[opened[0].ParticipantSID] == "discovered" && o[opened[1].ParticipantSID] == "discovered"
	})
	if _, err := sim.AddInteraction(opened[0], "undelivered"); err != nil {
		t.Fatal(err)
	}
	want := []string{"created/" + opened[0].ParticipantSID, "failed/" + opened[0].ParticipantSID}
	slices.Sort(want)
	waitFor(t, fmt.Sprint(want), 20*time.Second, func() bool { return slices.Equal(se.kinds(), want) })
	if _, body := httpGet(base + "/metrics"); !strings.Contains(body, `monitord_targets_by_origin{origin="discovered"} 3`) ||
		!strings.Contains(body, `monitord_targets_by_origin{origin="configured"} 1`) {
		t.Errorf("/metrics lacks the targets by origin:\n%s", grepLines(body, "origin"))
	}

	// It closes: still polled through the grace period, then dropped.
	if err := sim.CloseSession(svc, opened[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	closedAt := time.Now()
	waitFor(t, "discovery to see the close", 20*time.Second, func() bool {
		_, body := httpGet(base + "/metrics")
		return strings.Contains(body, `monitord_discovery_sessions_closed_total{service="`+svc+`"} 1`)
	})
	if o := origins(status()); time.Since(closedAt) < grace && len(o) != 4 {
		t.Errorf("targets right after the close: %v, want all 4 (grace %s)", o, grace)
	}
	waitFor(t, "the closed session's targets dropped", 30*time.Second, func() bool {
		return status().Targets == 2
	})
	if took := time.Since(closedAt); took < grace {
		t.Errorf("closed session dropped after %s, before its grace of %s", took, grace)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	db, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := db.Keys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, opened[0].SessionSID) {
			t.Errorf("state of the dropped target %s kept", k)
		}
	}
	if len(keys) != 2 {
		t.Errorf("state keys %v, want the initial session's two", keys)
	}
}

// writeDiscoveryConfig writes c's config with a discover entry for svc.
func writeDiscoveryConfig(t *testing.T, path string, c e2eConfig, svc string, grace time.Duration) {
	t.Helper()
	c.write(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entry := fmt.Sprintf("discover:\n  - {service_sid: %s, schedule: \"@every 1s\", grace: %s}\n", svc, grace)
	if err := os.WriteFile(path, append(b, entry...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDemoDiscoveryConfigValid: the demo's discovery config passes the same
// validation as an operator's.
func TestDemoDiscoveryConfigValid(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 1, Services: 2})
	cfg := config.Default()
	creds := sim.Credentials()
	cfg.Twilio.BaseURL = "http://127.0.0.1:1"
	cfg.Twilio.AccountSID, cfg.Twilio.APIKeySID = creds.AccountSID, creds.APIKeySID
	cfg.Twilio.APIKeySecret = config.Secret(creds.APIKeySecret)
	cfg.State.Path = filepath.Join(t.TempDir(), "state.db")
	cfg.NATS.URLs = []string{"nats://127.0.0.1:1"}
	useDemoDiscovery(&cfg, sim.Services())
	if err := cfg.Validate(); err != nil {
		t.Fatalf("demo discovery config invalid: %v", err)
	}
	if len(cfg.Discover) != 2 || len(cfg.Targets) != 0 {
		t.Errorf("discover %d entries, targets %d; want 2 and 0", len(cfg.Discover), len(cfg.Targets))
	}
}

// TestDiscoverOnce: one refresh, merged with the configured targets, for
// `monitord once`; a failing API is a failure naming the Service.
func TestDiscoverOnce(t *testing.T) {
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 9, Sessions: 2, Participants: 2})
	svc := sim.Services()[0]
	all := sim.Targets()
	cfg := config.Default()
	creds := sim.Credentials()
	cfg.Twilio.BaseURL = simURL
	cfg.Twilio.AccountSID, cfg.Twilio.APIKeySID = creds.AccountSID, creds.APIKeySID
	cfg.Twilio.APIKeySecret = config.Secret(creds.APIKeySecret)
	cfg.Twilio.Limits.MaxAttempts = 1
	useDemoDiscovery(&cfg, []string{svc}) // clears cfg.Targets: set them after
	cfg.Targets = []config.Target{{Source: config.DefaultSource, ServiceSID: svc, SessionSID: all[0].SessionSID, ParticipantSID: all[0].ParticipantSID}}
	clients, err := buildClients(&cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range clients {
			c.client.Close()
		}
	}()
	specs, failures, err := discoverOnce(context.Background(), &cfg, clients, zap.NewNop())
	if err != nil || len(failures) != 0 {
		t.Fatal(err, failures)
	}
	origin := map[string]string{}
	for _, s := range specs {
		origin[s.Target.ParticipantSID] = s.Origin
	}
	if len(specs) != 4 || origin[all[0].ParticipantSID] != poller.OriginConfigured || origin[all[3].ParticipantSID] != poller.OriginDiscovered {
		t.Errorf("specs by participant: %v; want 4, the first configured", origin)
	}

	cfg.Twilio.BaseURL = "http://127.0.0.1:1" // nothing listens there
	bad, err := buildClients(&cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	specs, failures, err = discoverOnce(context.Background(), &cfg, bad, zap.NewNop())
	if err != nil || len(specs) != 1 || specs[0].Origin != poller.OriginConfigured || len(failures) != 1 || failures[0].ServiceSID != svc || failures[0].Err == nil {
		t.Errorf("against an unreachable API: specs %d, failures %v, err %v; want the configured target only and one failure naming %s", len(specs), failures, err, svc)
	}
}
