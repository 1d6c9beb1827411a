package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer runs a Server on a loopback port until the test ends.
func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestErrorCodeLabelsBounded: only the configured codes are label values.
func TestErrorCodeLabelsBounded(t *testing.T) {
	m := NewMetrics()
	m.SetErrorCodes([]int{30003})
	for code, want := range map[int]string{30003: "30003", 30007: "other", 0: "unknown", -1: "other"} {
		if got := m.ErrorCodeLabel(code); got != want {
			t.Errorf("ErrorCodeLabel(%d) = %q, want %q", code, got, want)
		}
	}
	m.SetErrorCodes(nil)
	if got := m.ErrorCodeLabel(30007); got != "30007" {
		t.Errorf("default set: ErrorCodeLabel(30007) = %q", got)
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.Request(200, 20*time.Millisecond)
	m.Request(429, time.Millisecond)
	m.Request(0, time.Second)
	m.Retry("rate_limited")
	m.Listing(3)
	m.PollDone("ok", time.Millisecond, 50*time.Millisecond)
	m.PollDone("error", 0, time.Second)
	m.PollSkipped()
	m.EventsQueued(event.Failed, 2)
	m.FailedQueued("KS1", 30007)
	m.FailedQueued("KS1", 30007)
	m.FailedQueued("KS1", 0)
	m.FailedQueued("KS2", 39999) // not in errcode's table
	m.ReasonFetched("ok")
	m.Published(2)
	m.Connected(true)
	oldest := time.Now().Add(-time.Minute)
	m.SetSources(Sources{
		Outbox:    func() (int, int64, time.Time, error) { return 4, 1000, oldest, nil },
		Targets:   func() map[string]int { return map[string]int{"healthy": 7, "failing": 1} },
		LastCycle: func() time.Time { return time.Unix(1700000000, 0) },
		LastTick:  time.Now,
	})
	base := startServer(t, Config{Metrics: m})
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`monitord_api_requests_total{code="200"} 1`,
		`monitord_api_requests_total{code="429"} 1`,
		`monitord_api_requests_total{code="error"} 1`,
		`monitord_api_rate_limited_total 1`,
		`monitord_api_retries_total{reason="rate_limited"} 1`,
		`monitord_poll_pages_count 1`,
		`monitord_polls_total{result="ok"} 1`,
		`monitord_polls_total{result="error"} 1`,
		`monitord_polls_total{result="panic"} 0`,
		`monitord_polls_skipped_total 1`,
		`monitord_poll_duration_seconds_count 2`,
		`monitord_poll_schedule_lag_seconds_count 2`,
		`monitord_events_total{kind="failed"} 2`,
		`monitord_events_total{kind="deleted"} 0`,
		`monitord_failed_events_total{error_code="30007",service="KS1"} 2`,
		`monitord_failed_events_total{error_code="unknown",service="KS1"} 1`,
		`monitord_failed_events_total{error_code="other",service="KS2"} 1`,
		`monitord_reason_fetches_total{result="ok"} 1`,
		`monitord_reason_fetches_total{result="timeout"} 0`,
		`monitord_events_published_total 2`,
		`monitord_nats_connected 1`,
		`monitord_outbox_events 4`,
		`monitord_outbox_bytes 1000`,
		`monitord_targets{health="healthy"} 7`,
		`monitord_targets{health="failing"} 1`,
		`monitord_last_complete_cycle_timestamp_seconds 1.7e+09`,
		`monitord_scheduler_last_tick_timestamp_seconds`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// ParseMetrics, which the harnesses read these figures with, reads the
	// same exposition back into values.
	parsed, err := ParseMetrics(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{
		`monitord_api_requests_total{code="429"}`:        1,
		`monitord_events_total{kind="failed"}`:           2,
		`monitord_targets{health="healthy"}`:             7,
		`monitord_last_complete_cycle_timestamp_seconds`: 1.7e9,
	} {
		if got, ok := parsed[key]; !ok || got != want {
			t.Errorf("ParseMetrics: %s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if !strings.Contains(body, "monitord_outbox_oldest_age_seconds 6") {
		t.Errorf("oldest age not about 60s:\n%s", grep(body, "oldest"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestChecksAndStatus(t *testing.T) {
	var natsUp atomic.Bool
	tick := time.Now()
	base := startServer(t, Config{
		Metrics: NewMetrics(),
		Live:    []Check{{"scheduler", Recent("scheduler tick", func() time.Time { return tick }, 10*time.Second)}},
		Ready: []Check{
			{"nats", func() error {
				if !natsUp.Load() {
					return errors.New("not connected")
				}
				return nil
			}},
			{"cycle", Recent("complete poll cycle", func() time.Time { return time.Time{} }, 0)},
		},
		Status: func() any { return map[string]any{"targets": []string{"participant/KS1"}} },
	})

	if code, body := get(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"scheduler": "ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with NATS down: %d", code)
	}
	var res checkResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Checks["nats"] != "not connected" || res.Checks["cycle"] != "no complete poll cycle yet" {
		t.Errorf("/readyz body: %s", body)
	}
	natsUp.Store(true)
	if _, body := get(t, base+"/readyz"); !strings.Contains(body, `"nats": "ok"`) {
		t.Errorf("/readyz after connect: %s", body)
	}
	if code, body := get(t, base+"/status"); code != http.StatusOK || !strings.Contains(body, "participant/KS1") {
		t.Errorf("/status: %d %s", code, body)
	}
}

func TestRecent(t *testing.T) {
	old := time.Now().Add(-time.Minute)
	if err := Recent("tick", func() time.Time { return old }, 10*time.Second)(); err == nil ||
		!strings.Contains(err.Error(), "last tick 1m0s ago (limit 10s)") {
		t.Errorf("stale: %v", err)
	}
	if err := Recent("tick", time.Now, 10*time.Second)(); err != nil {
		t.Errorf("fresh: %v", err)
	}
}

func TestListenError(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Metrics: NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := New(Config{Addr: s.Addr().String(), Metrics: NewMetrics()}); err == nil ||
		!strings.HasPrefix(err.Error(), "admin listen: ") {
		t.Fatalf("second listen on %s: %v", s.Addr(), err)
	}
}

// TestPprof: /debug/pprof/ is absent by default (a profile is not for
// whoever can reach the port) and served when admin.pprof is on, with a
// write timeout that lets pprof's default 30-second profile through.
func TestPprof(t *testing.T) {
	off := startServer(t, Config{Metrics: NewMetrics()})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine", "/debug/pprof/profile?seconds=1"} {
		if code, _ := get(t, off+path); code != http.StatusNotFound {
			t.Errorf("pprof off: %s answered %d, want 404", path, code)
		}
	}

	cfg := Config{Metrics: NewMetrics(), Pprof: true, Addr: "127.0.0.1:0"}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s.srv.WriteTimeout <= 30*time.Second {
		t.Errorf("write timeout %s: pprof refuses its default 30 s profile", s.srv.WriteTimeout)
	}
	on := startServer(t, cfg)
	if code, body := get(t, on+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof on: index answered %d: %.200s", code, body)
	}
	if code, body := get(t, on+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof on: goroutine answered %d: %.200s", code, body)
	}
	if code, body := get(t, on+"/debug/pprof/profile?seconds=1"); code != http.StatusOK || len(body) == 0 {
		t.Errorf("pprof on: profile answered %d with %d bytes", code, len(body))
	}
	if code, _ := get(t, on+"/metrics"); code != http.StatusOK {
		t.Errorf("pprof on: /metrics answered %d", code)
	}
}
