package discover

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/monitord/monitord/internal/proxysim"
)

// metricValue returns the value of the series name{labels} in reg, or fails.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestMetrics(t *testing.T) {
	w := newWorld(t, proxysim.Options{Seed: 8, Sessions: 3, Participants: 2})
	svc := w.sim.Services()[0]
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	d, err := New(Config{Entries: []Entry{rec.entry(time.Hour, Entry{ServiceSID: svc})}, Lister: w.client, Observer: m, Now: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, d)
	ts := participantTargets(w.sim.Targets())
	if err := w.sim.CloseSession(svc, ts[0].SessionSID); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, d)
	w.fault("/Sessions", http.StatusInternalServerError)
	if err := d.Refresh(context.Background()); err == nil {
		t.Fatal("refresh succeeded against a failing sessions list")
	}
	m.TargetsByOrigin(1, 5) // what internal/targets' merge counts for ts[:1] configured, ts discovered

	s := map[string]string{"service": svc}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"monitord_discovery_refreshes_total", map[string]string{"service": svc, "result": "ok"}, 2},
		{"monitord_discovery_refreshes_total", map[string]string{"service": svc, "result": "error"}, 1},
		{"monitord_discovery_refresh_duration_seconds", s, 3},
		{"monitord_discovery_sessions", s, 2},
		{"monitord_discovery_sessions_closed_total", s, 1},
		{"monitord_discovery_targets", map[string]string{"service": svc, "state": "live"}, 4},
		{"monitord_discovery_targets", map[string]string{"service": svc, "state": "grace"}, 2},
		{"monitord_discovery_participant_lists_total", s, 3},
		{"monitord_targets_by_origin", map[string]string{"origin": "configured"}, 1},
		{"monitord_targets_by_origin", map[string]string{"origin": "discovered"}, 5},
	} {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
