package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// waitForOutput waits until buf holds every one of wants, failing the test
// with what it holds at the deadline.
func waitForOutput(t *testing.T, buf *syncBuffer, timeout time.Duration, wants ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s := buf.String()
		missing := ""
		for _, w := range wants {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, output lacks %q:\n%s", timeout, missing, s)
		}
		<-tick.C
	}
}

// testNATSServer starts an embedded nats-server (JetStream on when js) and
// returns its URL; it is shut down when the test ends.
func testNATSServer(t *testing.T, js bool) string {
	t.Helper()
	dir := ""
	if js {
		dir = t.TempDir()
	}
	s, err := startEmbeddedNATS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// testStream creates the stream monitord's publisher would: every subject
// under the prefix.
func testStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MONITORD", Subjects: []string{"monitord.>"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

// sid makes a well-formed SID whose last hex digits show n.
func sid(prefix string, n int) string {
	return fmt.Sprintf("%s%032x", prefix, n)
}

type testEvent struct {
	kind, leg, prev, status string
	n                       int // distinguishes interactions
}

func (e testEvent) subject() string {
	return fmt.Sprintf("monitord.%s.%s.%s.%s", e.kind, sid("KS", 1), sid("KC", 2), sid("KP", 3))
}

// payload is a CloudEvent as docs/events.md describes it, plus a field tail
// does not know, which it must ignore.
func (e testEvent) payload() []byte {
	b, _ := json.Marshal(map[string]any{
		"specversion":     "1.0",
		"id":              fmt.Sprintf("%032x", e.n),
		"source":          "monitord/test",
		"type":            "io.monitord.interaction." + e.kind,
		"subject":         sid("KI", e.n),
		"time":            time.Date(2026, 11, 26, 21, 0, e.n, 0, time.UTC),
		"datacontenttype": "application/json",
		"future_field":    map[string]int{"x": 1},
		"data": map[string]any{
			"service_sid":     sid("KS", 1),
			"session_sid":     sid("KC", 2),
			"participant_sid": sid("KP", 3),
			"interaction_sid": sid("KI", e.n),
			"leg":             e.leg,
			"previous_status": e.prev,
			"status":          e.status,
			"error_code":      30003,
		},
	})
	return b
}

func publish(t *testing.T, js jetstream.JetStream, evs ...testEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range evs {
		if _, err := js.Publish(ctx, e.subject(), e.payload()); err != nil {
			t.Fatal(err)
		}
	}
}

// startTail runs cmdTail until the test ends, returning its stdout and
// stderr and a channel with its result.
func startTail(t *testing.T, args ...string) (stdout, stderr *syncBuffer, stop func() error) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmdTail(ctx, args, stdout, stderr) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("tail did not return within 10s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stdout, stderr, stop
}

func TestTailJetStreamNewEvents(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	url := testNATSServer(t, true)
	js := testStream(t, url)
	old := testEvent{kind: "status_changed", leg: "outbound", prev: "queued", status: "sent", n: 0xa1}
	publish(t, js, old)

	out, errb, stop := startTail(t, "--nats", url)
	waitForOutput(t, errb, 10*time.Second, "following monitord.>", "JetStream stream MONITORD")
	failed := testEvent{kind: "failed", leg: "outbound", prev: "sending", status: "undelivered", n: 0xb2}
	created := testEvent{kind: "created", leg: "inbound", status: "received", n: 0xc3}
	publish(t, js, failed, created)

	got := waitForOutput(t, out, 10*time.Second, "KI…0000c3")
	if err := stop(); err != nil {
		t.Fatalf("tail returned %v, want nil on cancel", err)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (new events only), got %d:\n%s", len(lines), got)
	}
	for _, want := range []string{"failed", "KS…000001 KC…000002 KP…000003", "KI…0000b2", "outbound", "sending → undelivered", "30003 the destination handset is unreachable"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("failed line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "created") || !strings.Contains(lines[1], "received") {
		t.Errorf("created line %q", lines[1])
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("colour codes written to a buffer: %q", got)
	}
}

func TestTailJSONLines(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	url := testNATSServer(t, true)
	js := testStream(t, url)
	out, errb, stop := startTail(t, "--nats", url, "--json", "--subject", "monitord.failed.>")
	waitForOutput(t, errb, 10*time.Second, "following monitord.failed.>")
	evs := []testEvent{
		{kind: "status_changed", leg: "outbound", prev: "queued", status: "sent", n: 1},
		{kind: "failed", leg: "outbound", prev: "sent", status: "failed", n: 2},
		{kind: "failed", leg: "inbound", prev: "", status: "undelivered", n: 3},
	}
	publish(t, js, evs...)
	got := waitForOutput(t, out, 10*time.Second, sid("KI", 3))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the 2 failed events, got %d lines:\n%s", len(lines), got)
	}
	for i, line := range lines {
		want := evs[i+1].payload()
		if line != string(want) {
			t.Errorf("line %d:\n got %s\nwant %s", i, line, want)
		}
	}
}

func TestTailSinceReplays(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	url := testNATSServer(t, true)
	js := testStream(t, url)
	publish(t, js,
		testEvent{kind: "failed", leg: "outbound", prev: "sent", status: "undelivered", n: 0x11},
		testEvent{kind: "stuck", leg: "outbound", status: "queued", n: 0x12},
	)
	out, _, stop := startTail(t, "--nats", url, "--since", "1h")
	waitForOutput(t, out, 10*time.Second, "KI…000011", "KI…000012")
	// And it keeps following after the replay.
	publish(t, js, testEvent{kind: "deleted", n: 0x13})
	got := waitForOutput(t, out, 10*time.Second, "KI…000013")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	i1, i2, i3 := strings.Index(got, "KI…000011"), strings.Index(got, "KI…000012"), strings.Index(got, "KI…000013")
	if !(i1 < i2 && i2 < i3) {
		t.Errorf("events out of order:\n%s", got)
	}
}

func TestTailCoreNATSWithoutStream(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	for _, js := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%v", js), func(t *testing.T) {
			url := testNATSServer(t, js)
			out, errb, stop := startTail(t, "--nats", url, "monitord.>")
			waitForOutput(t, errb, 10*time.Second, "core NATS")
			nc, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			e := testEvent{kind: "failed", leg: "outbound", prev: "sending", status: "failed", n: 0x77}
			if err := nc.Publish(e.subject(), e.payload()); err != nil {
				t.Fatal(err)
			}
			waitForOutput(t, out, 10*time.Second, "KI…000077", "sending → failed")
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			// --since needs a stream: say so rather than silently print nothing.
			err = cmdTail(context.Background(), []string{"--nats", url, "--since", "5m"}, &syncBuffer{}, &syncBuffer{})
			if err == nil || !strings.Contains(err.Error(), "--since replays from a JetStream stream") {
				t.Fatalf("--since without a stream: err %v", err)
			}
		})
	}
}

func TestTailUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--since", "-5m"}, "--since must be positive"},
		{[]string{"--since", "yesterday"}, "invalid value \"yesterday\""},
		{[]string{"a.b", "c.d"}, "at most one subject argument"},
		{[]string{"--subject", "a.>", "b.>"}, "either as --subject or as an argument"},
		{[]string{"--subject", "a..b"}, "empty token"},
		{[]string{"--subject", "a.>.b"}, "'>' must be the last token"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"tail"}, tc.args...), &out, &errb)
		if code := exitCode(err, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

func TestTailConnectErrorHidesPassword(t *testing.T) {
	err := cmdTail(context.Background(), []string{"--nats", "nats://user:s3cret@127.0.0.1:1"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("connect to a closed port: want an error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error does not name the server: %v", err)
	}
}

// TestTailShowsAFailureOnce: a leg entering an alert status gives a
// status_changed and a failed with the same statuses; the readable output
// shows the failed line only, other status changes still print, and --json
// prints every event.
func TestTailShowsAFailureOnce(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	url := testNATSServer(t, true)
	js := testStream(t, url)
	out, errb, stop := startTail(t, "--nats", url)
	jsonOut, jsonErr, stopJSON := startTail(t, "--nats", url, "--json")
	waitForOutput(t, errb, 10*time.Second, "following monitord.>")
	waitForOutput(t, jsonErr, 10*time.Second, "following monitord.>")
	evs := []testEvent{
		{kind: "status_changed", leg: "outbound", prev: "sending", status: "undelivered", n: 5},
		{kind: "failed", leg: "outbound", prev: "sending", status: "undelivered", n: 5},
		{kind: "status_changed", leg: "outbound", prev: "queued", status: "sent", n: 6},
		{kind: "deleted", n: 7},
	}
	publish(t, js, evs...)
	got := waitForOutput(t, out, 10*time.Second, "KI…000007")
	gotJSON := waitForOutput(t, jsonOut, 10*time.Second, sid("KI", 7))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stopJSON(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "failed") || !strings.Contains(lines[0], "KI…000005") ||
		!strings.Contains(lines[1], "status_changed") || !strings.Contains(lines[1], "KI…000006") {
		t.Errorf("want the failed of KI…000005, the status_changed of KI…000006 and the deleted, got:\n%s", got)
	}
	if n := strings.Count(strings.TrimSpace(gotJSON), "\n") + 1; n != len(evs) {
		t.Errorf("--json printed %d events, want every one of the %d:\n%s", n, len(evs), gotJSON)
	}
}

// TestTailAllTLS: tail keeps a cluster's advertised servers for a creds
// login only when every server it was given is dialled with TLS.
func TestTailAllTLS(t *testing.T) {
	for url, want := range map[string]bool{
		"tls://a:4222":                 true,
		"tls://a:4222, wss://b:443":    true,
		"nats://127.0.0.1:4222":        false,
		"tls://a:4222,nats://b:4222":   false,
		"127.0.0.1:4222":               false,
		"ws://a:80,tls://b:4222":       false,
		" wss://a:443 , tls://b:4222 ": true,
	} {
		if got := allTLS(url); got != want {
			t.Errorf("allTLS(%q) = %v, want %v", url, got, want)
		}
	}
}
