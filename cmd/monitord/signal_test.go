package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// TestRunStopsOnSIGTERM: `run` stops on SIGTERM through the daemon's own
// signal handler (oklog/run's), not only through main's context, and exits
// cleanly after the ordered shutdown. The test's context is never
// cancelled, so only the handler can stop it. The test registers for
// SIGTERM itself first, so that a missing handler fails the test instead
// of killing the test binary.
func TestRunStopsOnSIGTERM(t *testing.T) {
	noLeaks(t)
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGTERM)
	defer signal.Stop(guard)

	ns := testNATS(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 5, Participants: 1})
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "2000000")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	e2eConfig{SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(), State: filepath.Join(dir, "state.db"),
		Targets: sim.Targets(), Schedule: "@every 1s"}.write(t, cfgPath)

	done, logs := startRun(t, context.Background(), cfgPath)
	// WATCHDOG=1 comes from the running scheduler: every actor has started,
	// the signal handler among them.
	waitFor(t, "WATCHDOG=1", 20*time.Second, func() bool { return sock.has("WATCHDOG=1") })
	waitStream(t, ns.ClientURL())
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30s of SIGTERM")
	}
	for _, want := range []string{"stopping", "stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
}
