package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestEndToEnd runs `monitord run` in process against the simulator and a
// real JetStream: statuses change in the simulator, the subscriber gets
// exactly the expected events, SIGHUP adds a target, and cancelling the
// context (what SIGTERM does in main) returns nil: exit 0. It runs with
// poll.mode schedule and again with activity: the events are the same.
func TestEndToEnd(t *testing.T) {
	for _, mode := range []string{"schedule", "activity"} {
		t.Run(mode, func(t *testing.T) { testEndToEnd(t, mode) })
	}
}

func testEndToEnd(t *testing.T, mode string) {
	noLeaks(t)
	ns := testNATS(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 42, Sessions: 2, Participants: 2, Interactions: 3})
	all := sim.Targets()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	adminAddr := freePort(t)
	cfg := e2eConfig{
		SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(),
		State: filepath.Join(dir, "state.db"), Admin: adminAddr, Targets: all[:2], Schedule: "@every 1s", Mode: mode,
	}
	cfg.write(t, cfgPath)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, logs := startRun(t, ctx, cfgPath)

	base := "http://" + adminAddr
	waitFor(t, "/readyz", 20*time.Second, func() bool { c, _ := httpGet(base + "/readyz"); return c == 200 })
	se := followStream(t, ctx, ns.ClientURL())
	waitFor(t, "a heartbeat", 10*time.Second, func() bool { return se.beats.Load() > 0 })
	if k := se.kinds(); len(k) != 0 {
		t.Fatalf("baseline published %v", k)
	}

	// A new undelivered message on target 0; target 1 loses its credentials.
	p0, p1, p2 := all[0].ParticipantSID, all[1].ParticipantSID, all[2].ParticipantSID
	if _, err := sim.AddInteraction(all[0], "undelivered"); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetTargetError(all[1], 401); err != nil {
		t.Fatal(err)
	}
	want := []string{"created/" + p0, "failed/" + p0, "target_error/" + p1}
	slices.Sort(want)
	waitFor(t, fmt.Sprint(want), 20*time.Second, func() bool { return slices.Equal(se.kinds(), want) })
	if c, body := httpGet(base + "/status"); c != 200 || !strings.Contains(body, `"error_class": "auth"`) {
		t.Errorf("/status: %d %s", c, body)
	}

	// An existing message on target 0 fails: its status change and the
	// failure. Target 1 recovers: one target_recovered, however many polls
	// failed.
	if err := sim.SetStatus(deliveredSID(t, ctx, simURL, sim.Credentials(), all[0]), proxysim.LegOutbound, "failed"); err != nil {
		t.Fatal(err)
	}
	sim.SetTargetError(all[1], 0)
	want = append(want, "status_changed/"+p0, "failed/"+p0, "target_recovered/"+p1)
	slices.Sort(want)
	waitFor(t, "target_recovered", 20*time.Second, func() bool { return slices.Equal(se.kinds(), want) })

	// SIGHUP with a third target: it is polled (baseline, silent), then
	// its new failure is published.
	cfg.Targets = all[:3]
	cfg.write(t, cfgPath)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the added target polled", 20*time.Second, func() bool {
		_, body := httpGet(base + "/status")
		var doc admin.StatusDoc
		return json.Unmarshal([]byte(body), &doc) == nil && doc.Targets == 3 && doc.Unknown == 0
	})
	if _, err := sim.AddInteraction(all[2], "failed"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "created/"+p2, "failed/"+p2)
	slices.Sort(want)
	waitFor(t, "the added target's events", 20*time.Second, func() bool { return slices.Equal(se.kinds(), want) })

	// An invalid config on SIGHUP is refused and the running one kept.
	if err := os.WriteFile(cfgPath, []byte("twilio: {account_sid: AC12}\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalid reload to be refused", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), "reload: config invalid, keeping the running one")
	})
	if _, body := httpGet(base + "/status"); !strings.Contains(body, `"targets": 3`) {
		t.Errorf("targets changed by an invalid reload: %.300s", body)
	}

	// SIGTERM: main cancels the context; run returns nil, exit 0.
	cancel()
	select {
	case err := <-done:
		if code := exitCode(err, io.Discard); code != exitOK {
			t.Fatalf("run returned %v (exit %d)", err, code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	// Exactly: the stream itself holds these events and no others (the
	// consumer saw each once), and no id twice.
	if k := se.kinds(); !slices.Equal(k, want) {
		t.Errorf("events %v, want exactly %v", k, want)
	}
	if n := storedEvents(t, ns.ClientURL()); n != len(want) {
		t.Errorf("stream holds %d events besides heartbeats, want %d", n, len(want))
	}
	ids := map[string]bool{}
	se.mu.Lock()
	for _, e := range se.events {
		if ids[e.ID] {
			t.Errorf("event id %s twice", e.ID)
		}
		ids[e.ID] = true
	}
	se.mu.Unlock()
}
