package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/poller"
)

// fixedTargets is a TargetsView with fixed answers.
type fixedTargets struct {
	sum poller.Summary
	st  []poller.TargetStatus
}

func (f fixedTargets) Summary() poller.Summary       { return f.sum }
func (f fixedTargets) Status() []poller.TargetStatus { return f.st }

func TestStatusDocuments(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := Status{
		Instance: func() string { return "host-a" },
		Targets: fixedTargets{
			sum: poller.Summary{Targets: 3, Healthy: 1, Failing: 1, Unknown: 1, LastCycle: now.Add(-42 * time.Second)},
			st:  []poller.TargetStatus{{Key: "session/KSa/KCb", Health: poller.HealthFailing, Origin: poller.OriginConfigured}},
		},
		Outbox: func() (int, int64, time.Time, error) { return 7, 700, now, nil },
		NATS:   func() bool { return false },
	}
	if got, want := st.Line(now), "3 targets (1 healthy, 1 failing); outbox 7; nats disconnected; last cycle 42s ago"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if got := st.ByHealth(); got[poller.HealthHealthy] != 1 || got[poller.HealthFailing] != 1 || got[poller.HealthUnknown] != 1 {
		t.Errorf("ByHealth = %v", got)
	}

	// Served as /status, with the field names operators' tools read.
	base := startServer(t, Config{Metrics: NewMetrics(), Status: func() any { return st.Doc() }})
	code, rec := get(t, base+"/status")
	if code != http.StatusOK {
		t.Fatalf("/status: %d", code)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(rec), &doc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"instance": "host-a", "targets": 3.0, "healthy": 1.0, "failing": 1.0,
		"unknown": 1.0, "nats_connected": false, "outbox_events": 7.0, "last_complete_cycle": "2026-03-01T11:59:18Z"} {
		if doc[k] != want {
			t.Errorf("/status %s = %v, want %v", k, doc[k], want)
		}
	}
	if s, _ := doc["status"].([]any); len(s) != 1 || !strings.Contains(rec, `"health": "failing"`) {
		t.Errorf("/status targets: %v", doc["status"])
	}

	st.NATS = func() bool { return true }
	st.Targets = fixedTargets{sum: poller.Summary{}}
	if got, want := st.Line(now), "0 targets (0 healthy, 0 failing); outbox 7; nats connected; no complete cycle yet"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}
