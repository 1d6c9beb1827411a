package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestHADaemonsDiscover runs three `monitord run` with ha.enabled and one
// discover entry, no configured target: every daemon polls-to-be the
// discovered targets (its /status lists them), a session opened is
// followed by all three, a failure on it is published once; the owner
// stops, another takes the refreshes over, and a session opened then is
// followed too.
func TestHADaemonsDiscover(t *testing.T) {
	noLeaks(t)
	cl := natstest.StartCluster(t, 3)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 9, Services: 1, Sessions: 2, Participants: 2, Interactions: 1})
	svc := sim.Services()[0]
	dir := t.TempDir()
	urls := strings.Split(cl.URLs(), ",")
	addrs, procs := map[string]string{}, map[string]*runProc{}
	for _, name := range []string{"a", "b", "c"} {
		addrs[name] = freePort(t)
		path := haDaemonConfig(t, dir, name, simURL, sim.Credentials(), urls, nil, addrs[name])
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("discover:\n  - {service_sid: " + svc + ", schedule: \"@every 1s\", grace: 1m}\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done, _ := startRun(t, ctx, path)
		procs[name] = &runProc{cancel: cancel, done: done}
		t.Cleanup(func() { procs[name].stop() })
	}
	following := func(what string, n int) {
		t.Helper()
		waitFor(t, what, 30*time.Second, func() bool {
			for name, addr := range addrs {
				if procs[name].exited() {
					t.Fatalf("%s: run returned %v", name, procs[name].stop())
				}
				if doc := haStatus(t, addr); doc.Targets != n {
					return false
				}
			}
			return true
		})
	}
	following("every daemon following the 4 discovered targets", 4)
	se := followStream(t, context.Background(), cl.URLs())
	opened, err := sim.OpenSession(svc, 2)
	if err != nil {
		t.Fatal(err)
	}
	following("every daemon following the opened session", 6)
	if _, err := sim.AddInteraction(opened[0], "undelivered"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed event", 20*time.Second, func() bool { return countKind(se, "failed") == 1 })

	var victim string
	waitFor(t, "an owner of "+svc, 10*time.Second, func() bool { victim = owner(t, addrs, svc); return victim != "" })
	if err := procs[victim].stop(); err != nil {
		t.Fatalf("%s: run = %v, want nil after a clean stop", victim, err)
	}
	delete(addrs, victim)
	waitFor(t, "another instance owning "+svc, 20*time.Second, func() bool { return owner(t, addrs, svc) != "" })
	if _, err := sim.OpenSession(svc, 2); err != nil {
		t.Fatal(err)
	}
	following("the other daemons following the session opened after the stop", 8)
	se.mu.Lock()
	defer se.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range se.events {
		if seen[e.ID] {
			t.Errorf("event %s (%s) twice", e.ID, e.Subject)
		}
		seen[e.ID] = true
	}
}
