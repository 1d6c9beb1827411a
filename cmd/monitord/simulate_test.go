package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/config"
)

func TestSimulateServesAndWritesConfig(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "monitord.yaml")
	// An older file readable by all: the token must not inherit its mode.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"simulate", "--listen", "127.0.0.1:0", "--seed", "7",
			"--sessions", "3", "--targets", "4", "--write-config", path}, &out, &errb)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "written to") {
		if time.Now().After(deadline) {
			t.Fatalf("no config written; stdout %q stderr %q", out.String(), errb.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}

	// The daemon's own loader accepts it, port and all.
	cfg, err := config.Load(path, nil, nil)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if !strings.HasPrefix(cfg.Twilio.BaseURL, "http://127.0.0.1:") || strings.HasSuffix(cfg.Twilio.BaseURL, ":0") {
		t.Fatalf("base_url %q", cfg.Twilio.BaseURL)
	}
	if !strings.Contains(out.String(), cfg.Twilio.BaseURL) {
		t.Errorf("stdout %q does not name %s", out.String(), cfg.Twilio.BaseURL)
	}
	if len(cfg.Targets) != 4 {
		t.Fatalf("%d targets, want 4", len(cfg.Targets))
	}

	// And the simulator serves its targets with its credentials.
	tg := cfg.Targets[3]
	req, _ := http.NewRequest(http.MethodGet, cfg.Twilio.BaseURL+"/v1/Services/"+tg.ServiceSID+"/Sessions/"+
		tg.SessionSID+"/Participants/"+tg.ParticipantSID+"/MessageInteractions", nil)
	req.SetBasicAuth(cfg.Twilio.AccountSID, cfg.Twilio.AuthToken.Reveal())
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"interactions":[{`) {
		t.Fatalf("listing: %d %.200s", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("simulate after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("simulate did not stop")
	}
}

func TestSimulateBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--failure-rate", "2"},
		{"--participants", "0"},
		{"--latency", "-1s"},
		{"--nope"},
		{"extra"},
		{"--failure-rate", "0.7", "--stuck-rate", "0.5"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"simulate"}, args...), &out, &errb)
		if code := exitCode(err, &errb); code != exitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args, code, err, exitUsage)
		}
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"simulate", "-h"}, &out, &errb); err != nil || !strings.Contains(errb.String(), "--write-config") {
		t.Errorf("-h: %v %q", err, errb.String())
	}
}
