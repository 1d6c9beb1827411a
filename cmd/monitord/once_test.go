package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
)

// startSimulate runs `monitord simulate --write-config` in process and
// returns the written config's path once it exists.
func startSimulate(t *testing.T, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sim.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"simulate", "--listen", "127.0.0.1:0", "--write-config", path}, args...), out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("simulate: %v", err)
		}
	})
	waitFor(t, "simulate to write its config", 10*time.Second, func() bool { return strings.Contains(out.String(), "written to") })
	return path
}

// TestOnceDryRunChangesNothing: `once --dry-run -c <config written by
// simulate>` prints the events of a first poll as CloudEvents JSON lines,
// creates no state file and publishes nothing.
func TestOnceDryRunChangesNothing(t *testing.T) {
	noLeaks(t)
	ns := testNATS(t)
	cfgPath := startSimulate(t, "--seed", "3", "--sessions", "2", "--targets", "4", "--failure-rate", "0.5")
	statePath := filepath.Join(t.TempDir(), "state.db")
	t.Setenv("MONITORD_STATE__PATH", statePath)
	t.Setenv("MONITORD_NATS__URLS", ns.ClientURL())

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"once", "--dry-run", "-c", cfgPath}, &stdout, &stderr); err != nil {
		t.Fatalf("once --dry-run: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no events printed; stderr:\n%s", stderr.String())
	}
	for _, l := range lines {
		var ce struct {
			SpecVersion string `json:"specversion"`
			Type        string `json:"type"`
			Subject     string `json:"subject"`
			Data        struct {
				ErrorCode int `json:"error_code"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &ce); err != nil || ce.SpecVersion != "1.0" || !strings.HasSuffix(ce.Type, ".failed") {
			t.Errorf("line %.120q: %+v %v (a first poll raises only recent failures)", l, ce, err)
		}
		// simulate's config points messages_base_url at it too: every
		// failure's reason arrives.
		if ce.Data.ErrorCode == 0 {
			t.Errorf("failed event without error_code: %.300s", l)
		}
	}
	if strings.Contains(stderr.String(), `"specversion"`) {
		t.Error("events leaked to stderr")
	}
	if _, err := os.Stat(statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file touched: %v", err)
	}
	nc.Flush()
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("published %s", m.Subject)
	}
	if info, err := jsStreams(ns.ClientURL()); err != nil || info != 0 {
		t.Errorf("streams after dry run: %d %v", info, err)
	}
}

// TestOnceCommitsAndDelivers: without --dry-run, once commits to the state
// file, prints the events, and drains them to JetStream; a second once
// prints nothing (nothing changed) and delivers nothing new.
func TestOnceCommitsAndDelivers(t *testing.T) {
	noLeaks(t)
	ns := testNATS(t)
	cfgPath := startSimulate(t, "--seed", "3", "--sessions", "2", "--targets", "4", "--failure-rate", "0.5",
		"--interaction-every", "0")
	statePath := filepath.Join(t.TempDir(), "state.db")
	t.Setenv("MONITORD_STATE__PATH", statePath)
	t.Setenv("MONITORD_NATS__URLS", ns.ClientURL())

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"once", "-c", cfgPath}, &stdout, &stderr); err != nil {
		t.Fatalf("once: %v\n%s", err, stderr.String())
	}
	printed := strings.Count(stdout.String(), "\n")
	if printed == 0 {
		t.Fatalf("no events printed; stderr:\n%s", stderr.String())
	}
	if _, err := os.Stat(statePath); err != nil {
		t.Fatalf("no state file: %v", err)
	}
	if n := storedEvents(t, ns.ClientURL()); n != printed {
		t.Errorf("stream holds %d events, once printed %d", n, printed)
	}
}

// jsStreams counts the JetStream streams of the server's account.
func jsStreams(url string) (int, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return 0, err
	}
	info, err := js.AccountInfo()
	if err != nil {
		return 0, err
	}
	return info.Streams, nil
}

// TestOncePollsWhatItCan: a Service whose discovery fails (here one the API
// does not know) does not stop once: the configured target and the other
// Service's discovered targets are polled, and the last line says so in
// words, naming the Service, with exit 1.
func TestOncePollsWhatItCan(t *testing.T) {
	noLeaks(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 5, Services: 2, Sessions: 1, Participants: 2, Interactions: 2})
	svcs := sim.Services()
	var configured, discovered []proxysim.Target
	for _, tg := range sim.Targets() {
		switch tg.ServiceSID {
		case svcs[0]:
			configured = append(configured, tg)
		case svcs[1]:
			discovered = append(discovered, tg)
		}
	}
	missing := "KS" + strings.Repeat("0", 31) + "1"
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	e2eConfig{SimURL: simURL, Creds: sim.Credentials(), NATSURL: "nats://127.0.0.1:1", State: filepath.Join(dir, "state.db"),
		Admin: "127.0.0.1:0", Targets: configured[:1], Schedule: "@every 1m"}.write(t, cfgPath)
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	b = fmt.Appendf(b, "discover:\n  - {service_sid: %s}\n  - {service_sid: %s}\n", missing, svcs[1])
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"once", "--dry-run", "-c", cfgPath}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("once succeeded with a Service it could not list; stderr:\n%s", stderr.String())
	}
	if code := exitCode(err, io.Discard); code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	n := 1 + len(discovered)
	want := fmt.Sprintf("once: polled %d targets: %d ok; discovery of %s failed: ", n, n, missing)
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q\nwant it to start %q", err, want)
	}
	if strings.Contains(err.Error(), "map[") || strings.Count(err.Error(), "discovery of") != 1 {
		t.Errorf("error %q: a Go map, or the failure said twice", err)
	}
	if strings.Contains(stderr.String(), "keeping the previous target set") {
		t.Errorf("the log claims a previous target set once does not have:\n%s", stderr.String())
	}
	for _, tg := range append(configured[:1], discovered...) {
		if !strings.Contains(stderr.String(), tg.ParticipantSID) && !strings.Contains(stdout.String(), tg.ParticipantSID) {
			// Not every target has an event; the poll's debug log names each.
			t.Errorf("target %s not polled; stderr:\n%s", tg.ParticipantSID, stderr.String())
		}
	}
}

// TestCorruptStateExits3: a state file cut short (`head -c <half>`) is
// refused with the corrupt-file message naming it, exit 3, no panic, and
// the file is left as it was.
func TestCorruptStateExits3(t *testing.T) {
	noLeaks(t)
	cfgPath := startSimulate(t, "--seed", "3", "--sessions", "1", "--targets", "1")
	statePath := filepath.Join(t.TempDir(), "monitord.db")
	db, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	half := whole[:len(whole)/2]
	if err := os.WriteFile(statePath, half, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err = run(context.Background(), []string{"once", "-c", cfgPath, "--state.path", statePath}, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != exitCorrupt {
		t.Fatalf("exit %d, want %d: %s", code, exitCorrupt, stderr.String())
	}
	for _, want := range []string{statePath, "corrupt file, left untouched"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, stderr.String())
		}
	}
	if after, _ := os.ReadFile(statePath); !bytes.Equal(after, half) {
		t.Error("corrupt state file was modified")
	}
}
