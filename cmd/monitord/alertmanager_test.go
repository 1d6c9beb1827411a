package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/alertmgr"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestAlertmanagerPipeline runs the real pipeline: simulator → monitord run
// → JetStream → monitord alertmanager → a real Alertmanager process. A
// burst of failures on one Service with one code is one alert group whose
// alerts carry the SIDs and the code; Alertmanager down for a while (and
// restarted empty, on the same port) loses nothing.
func TestAlertmanagerPipeline(t *testing.T) {
	noLeaks(t)
	amAddr := freePort(t)
	hook, hookURL := newPages(t)
	am := startAlertmanagerProcess(t, amAddr, hookURL)
	ns := testNATS(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 7, Sessions: 1, Participants: 1, Interactions: 2})
	tg := sim.Targets()[0]
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	adminAddr, bridgeAddr := freePort(t), freePort(t)
	e2eConfig{
		SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(),
		State: filepath.Join(dir, "state.db"), Admin: adminAddr, Targets: []proxysim.Target{tg}, Schedule: "@every 1s",
	}.write(t, cfgPath)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "alertmanager: {urls: [http://%s], timeout: 2s, min_backoff: 100ms, max_backoff: 500ms, ack_wait: 10s, "+
		"resend_interval: 1s, listen: %q}\n", amAddr, bridgeAddr)
	f.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, _ := startRun(t, ctx, cfgPath)
	bridgeLogs := &syncBuffer{}
	bridgeDone := make(chan error, 1)
	go func() { bridgeDone <- run(ctx, []string{"alertmanager", "-c", cfgPath}, io.Discard, bridgeLogs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", bridgeLogs.String())
		}
	})
	waitFor(t, "/readyz", 20*time.Second, func() bool { c, _ := httpGet("http://" + adminAddr + "/readyz"); return c == 200 })

	// The burst: 20 messages on one Service fail.
	var want []string
	add := func(n int) {
		for range n {
			sid, err := sim.AddInteraction(tg, "undelivered")
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, sid)
		}
		slices.Sort(want)
	}
	add(20)
	waitFor(t, "20 alerts in Alertmanager", 30*time.Second, func() bool { return slices.Equal(interactions(am.groups()), want) })
	gs := am.groups()
	codes := map[string]bool{}
	for _, g := range gs {
		if g.Labels["alertname"] != alertmgr.AlertFailed || g.Labels["service"] != tg.ServiceSID {
			t.Errorf("group %v: want alertname %s, service %s", g.Labels, alertmgr.AlertFailed, tg.ServiceSID)
		}
		code := g.Labels["error_code"]
		if code == "" || codes[code] {
			t.Errorf("group %v: error_code missing or grouped twice", g.Labels)
		}
		codes[code] = true
		for _, al := range g.Alerts {
			an := al.Annotations
			switch {
			case al.Labels["error_code"] != code:
				t.Errorf("alert %v in the group of code %s", al.Labels, code)
			case an["interaction_sid"] != al.Labels["interaction"] || !strings.HasPrefix(an["message_sid"], "SM") ||
				an["session_sid"] != tg.SessionSID || an["participant_sid"] != tg.ParticipantSID || an["summary"] == "":
				t.Errorf("alert %v lacks its SIDs: %v", al.Labels, an)
			case al.Status.State != "active":
				t.Errorf("alert %v is %s", al.Labels, al.Status.State)
			}
		}
	}
	// Today's simulator gives no error codes: the burst is one group
	// (error_code "unknown"); with codes, one group per code.
	if len(gs) != len(codes) || len(gs) == 0 {
		t.Errorf("%d groups for %d codes", len(gs), len(codes))
	}
	t.Logf("burst: %d alerts in %d group(s) %v", len(want), len(gs), codes)
	// What on-call gets: one notification group per code, whose latest
	// page lists every alert of the burst (a poll cycle may split the
	// burst over two notifications of the same group, never two groups).
	waitFor(t, "the burst paged as one group per code", 30*time.Second, func() bool {
		l := hook.latest()
		total := 0
		for _, n := range l {
			total += n
		}
		return len(l) == len(codes) && total == len(want)
	})

	// Alertmanager goes down; 15 more messages fail meanwhile, and the
	// bridge retries.
	am.stop()
	posted := func() map[string]float64 {
		resp, err := http.Get("http://" + bridgeAddr + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		m, _ := admin.ParseMetrics(resp.Body)
		return m
	}
	add(15)
	waitFor(t, "the bridge to fail posting", 30*time.Second, func() bool {
		return posted()["monitord_alertmanager_post_errors_total"] >= 3
	})
	// Back on the same port, empty (Alertmanager keeps alerts in memory):
	// the new alerts arrive from the stream, the older ones re-sent.
	am.start()
	waitFor(t, "all 35 alerts after the outage", 30*time.Second, func() bool {
		return slices.Equal(interactions(am.groups()), want)
	})
	// Each event was posted from the stream once (the rest were re-sends).
	waitFor(t, "35 events posted and acked", 10*time.Second, func() bool {
		return posted()["monitord_alertmanager_alerts_posted_total"] == 35
	})

	cancel()
	for name, ch := range map[string]<-chan error{"run": done, "alertmanager": bridgeDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s returned %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not return after cancel", name)
		}
	}
}
