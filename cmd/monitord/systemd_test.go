package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/proxysim"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET; it collects every datagram.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ns := &notifySocket{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	t.Setenv("NOTIFY_SOCKET", path)
	return ns
}

func (ns *notifySocket) count(sub string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := 0
	for _, m := range ns.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

func (ns *notifySocket) has(sub string) bool {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, m := range ns.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// TestSystemdNotify runs `monitord run` under a fake NOTIFY_SOCKET with a
// 2 s watchdog: READY=1 with a STATUS= line, WATCHDOG=1 from the scheduler
// tick, RELOADING=1 then READY=1 around a reload, STOPPING=1 at the end.
func TestSystemdNotify(t *testing.T) {
	noLeaks(t)
	ns := testNATS(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 5, Participants: 1})
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "2000000")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	e2eConfig{SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(), State: filepath.Join(dir, "state.db"),
		Targets: sim.Targets(), Schedule: "@every 1s"}.write(t, cfgPath)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfgPath}, io.Discard, io.Discard) }()
	waitFor(t, "READY=1 with STATUS=", 20*time.Second, func() bool { return sock.has("READY=1\nSTATUS=1 targets") })
	waitFor(t, "WATCHDOG=1", 10*time.Second, func() bool { return sock.has("WATCHDOG=1") })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "RELOADING=1 then READY=1", 10*time.Second, func() bool {
		return sock.has("RELOADING=1") && sock.count("READY=1") >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	// Sent before run returned; the reader may not have picked it up yet.
	waitFor(t, "STOPPING=1", 10*time.Second, func() bool { return sock.has("STOPPING=1") })
}

// TestSystemdTickDoesNotWaitForStatus: the scheduler's tick never waits
// for the STATUS= line (with ha.enabled it reads the bucket over NATS):
// a line that takes long to build leaves the tick returning at once, the
// watchdog fed, and no second build started meanwhile.
func TestSystemdTickDoesNotWaitForStatus(t *testing.T) {
	ns := listenNotify(t)
	s := newSystemd(true, zap.NewNop())
	s.watchdog = 2 * time.Second
	release := make(chan struct{})
	var builds atomic.Int32
	slow := func() string { builds.Add(1); <-release; return "slow line" }
	ticked := make(chan struct{})
	go func() {
		now := time.Now()
		s.tick(now, slow)
		s.tick(now.Add(statusEvery+time.Second), slow) // due again, but one is being built
		close(ticked)
	}()
	select {
	case <-ticked:
	case <-time.After(10 * time.Second):
		t.Fatal("tick waited for the STATUS= line")
	}
	close(release)
	waitFor(t, "the slow STATUS= line sent", 5*time.Second, func() bool { return ns.has("STATUS=slow line") })
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds of the line, want 1 while the first was under way", n)
	}
	if !ns.has("WATCHDOG=1") {
		t.Error("watchdog not fed")
	}
}
