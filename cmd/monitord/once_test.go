package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
