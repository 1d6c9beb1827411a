package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestDemo runs `monitord demo` as a user would, for a few seconds with a
// fast schedule, and checks every stage showed up: the banner with the
// URLs, polls, events received back from NATS (a failed one among them),
// the summary, a nil error, and no temp files left behind.
func TestDemo(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // os.MkdirTemp("") makes the demo's dir here

	var out, errb syncBuffer
	start := time.Now()
	err := run(context.Background(), []string{"demo", "--duration", "6s", "--schedule", "@every 1s", "--targets", "4", "--seed", "7"}, &out, &errb)
	if err != nil {
		t.Fatalf("demo returned %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("a 6s demo took %s to stop", took)
	}
	got := out.String()
	for _, want := range []string{"NATS       nats://127.0.0.1:", "simulator  http://127.0.0.1:", "tail --nats nats://", "polled", "summary:"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  failed  `).MatchString(got) {
		t.Errorf("no failed event line:\n%s", got)
	}
	// The backlog's recent failures come first: the banner says why, and
	// each says it is one (seed 7 has some).
	if !strings.Contains(got, "the first poll of a target is its baseline") ||
		!regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  failed  .*  \(baseline: already failed at the first poll\)$`).MatchString(got) {
		t.Errorf("baseline failures not explained or not marked:\n%s", got)
	}
	// A failure shows once: no status_changed line for a leg change that
	// also has its failed line.
	change := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  (status_changed|failed) +\S+ \S+ \S+  (KI\S+ \S+ +\S+ → \S+)`)
	failures := map[string]bool{}
	for _, m := range change.FindAllStringSubmatch(got, -1) {
		if m[1] == "failed" {
			failures[m[2]] = true
		}
	}
	for _, m := range change.FindAllStringSubmatch(got, -1) {
		if m[1] == "status_changed" && failures[m[2]] {
			t.Errorf("failure %q printed twice, as status_changed and failed", m[2])
		}
	}
	// The simulator serves the failed messages too: their code and its
	// meaning show on the failed lines ("undelivered  30007 message
	// filtered by the carrier").
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  failed  .*(failed|undelivered)  \d{5} [a-z]`).MatchString(got) {
		t.Errorf("no failed event line with a code and its meaning:\n%s", got)
	}
	m := regexp.MustCompile(`summary: (\d+) polls \((\d+) complete\); (\d+) events received back from NATS \(.*failed (\d+).*\); the stream holds (\d+)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("summary line missing or malformed:\n%s", got)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	if n(1) == 0 || n(2) == 0 {
		t.Errorf("no complete polls: %s", m[0])
	}
	if n(4) == 0 {
		t.Errorf("no failed events: %s", m[0])
	}
	if n(3) != n(5) {
		t.Errorf("received %d events but the stream holds %d: %s", n(3), n(5), m[0])
	}

	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("demo left %d entries in its temp dir, e.g. %s", len(left), left[0].Name())
	}
}

func TestDemoUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "-1s"}, "--duration must not be negative"},
		{[]string{"--targets", "0"}, "--targets must be between 1 and 200"},
		{[]string{"--failure-rate", "1.5"}, "--failure-rate must be between 0 and 1"},
		{[]string{"--failure-rate", "NaN"}, "--failure-rate must be between 0 and 1"},
		{[]string{"--schedule", "every day"}, `--schedule "every day"`},
		{[]string{"--seed", "x"}, `invalid value "x" for flag -seed`},
		{[]string{"extra"}, "takes no arguments"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"demo"}, tc.args...), &out, &errb)
		if code := exitCode(err, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// closedPipe is stdout after `monitord demo | head -3`: the reader is gone.
type closedPipe struct{}

func (closedPipe) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// TestDemoStopsWhenOutputCloses: a demo whose reader went away stops at
// once, cleanly (exit 0, temp dir removed), instead of polling into the
// void until Ctrl-C, or dying of SIGPIPE with its temp dir left behind.
func TestDemoStopsWhenOutputCloses(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	start := time.Now()
	if err := run(context.Background(), []string{"demo", "--duration", "5m"}, closedPipe{}, io.Discard); err != nil {
		t.Fatalf("demo with a closed stdout: %v, want nil", err)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("took %s to notice its output was gone", took)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("demo left %d entries in its temp dir", len(left))
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", 15 * time.Second: "15s", 90 * time.Second: "1m30s", time.Hour: "1h", 20 * time.Second: "20s",
		2*time.Hour + 30*time.Minute: "2h30m", 1500 * time.Millisecond: "1.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestDemoHA: `demo --ha` runs three instances on a 3-node cluster, stops
// the owner of the Services partway and shows another taking them over;
// every event reaches the stream once.
func TestDemoHA(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	var out, errb syncBuffer
	err := run(context.Background(), []string{"demo", "--ha", "--duration", "16s", "--schedule", "@every 1s", "--targets", "4", "--seed", "7"}, &out, &errb)
	if err != nil {
		t.Fatalf("demo --ha returned %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	got := out.String()
	for _, want := range []string{"three monitord instances", ">>> stopping demo-", " took over KS", "summary:"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	m := regexp.MustCompile(`ha: (\d+) distinct event ids, (\d+) of them received more than once`).FindStringSubmatch(got)
	if m == nil || m[1] == "0" || m[2] != "0" {
		t.Errorf("want events, none twice; got %q:\n%s", m, got)
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  failed  `).MatchString(got) {
		t.Errorf("no failed event line:\n%s", got)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "monitord-demo-*")); len(left) > 0 {
		t.Errorf("temp dirs left behind: %v", left)
	}
}
