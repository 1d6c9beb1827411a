package poller

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

func apiErr(status, code int) error {
	return fmt.Errorf("list interactions: %w", &twilio.APIError{HTTPStatus: status, Code: code, Message: "msg"})
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err       error
		class     string
		immediate bool
	}{
		{apiErr(401, 20003), ClassAuth, true},
		{apiErr(403, 20003), ClassAuth, true},
		{apiErr(404, 20404), ClassNotFound, true},
		{apiErr(400, 21211), ClassOther, true},
		{apiErr(429, 20429), ClassRateLimited, false},
		{apiErr(503, 0), ClassUnavailable, false},
		{&twilio.TransportError{URL: "u", Err: errors.New("connection reset")}, ClassUnavailable, false},
		{fmt.Errorf("list: %w", context.DeadlineExceeded), ClassUnavailable, false},
		{&twilio.DecodeError{URL: "u", Reason: "bad", Offset: -1}, ClassInvalidResponse, false},
		{fmt.Errorf("list: %w", twilio.ErrPageLoop), ClassInvalidResponse, false},
		{fmt.Errorf("list: %w", twilio.ErrForeignHost), ClassOther, true},
		{fmt.Errorf("list: %w", twilio.ErrTooManyPages), ClassOther, true},
	}
	for _, tc := range tests {
		f, imm := classify(tc.err)
		if f.class != tc.class || imm != tc.immediate {
			t.Errorf("%v: class %s immediate %v, want %s %v", tc.err, f.class, imm, tc.class, tc.immediate)
		}
	}
}

// TestHealthTransitions runs sequences of poll outcomes (nil: success)
// through failed/succeeded and checks the events, and that ids repeat for
// the same outage and differ between outages.
func TestHealthTransitions(t *testing.T) {
	tg := proxy.Target{Source: proxy.SourceSession, ServiceSID: "KS" + zeros, SessionSID: "KC" + zeros}
	e5 := apiErr(500, 0)
	tests := []struct {
		name  string
		polls []error
		want  []event.Kind // one entry per poll, "" for no event
	}{
		{"ok stays quiet", []error{nil, nil}, []event.Kind{"", ""}},
		{"auth at once", []error{apiErr(401, 0), apiErr(401, 0), nil}, []event.Kind{event.TargetError, "", event.TargetRecovered}},
		{"404 at once", []error{apiErr(404, 0), nil}, []event.Kind{event.TargetError, event.TargetRecovered}},
		{"5xx below threshold", []error{e5, e5, nil, e5}, []event.Kind{"", "", "", ""}},
		{"5xx at threshold", []error{e5, e5, e5, e5, nil}, []event.Kind{"", "", event.TargetError, "", event.TargetRecovered}},
		{"class changes mid-outage", []error{e5, e5, e5, apiErr(401, 0), nil}, []event.Kind{"", "", event.TargetError, "", event.TargetRecovered}},
		{"two outages", []error{apiErr(401, 0), nil, apiErr(401, 0), nil},
			[]event.Kind{event.TargetError, event.TargetRecovered, event.TargetError, event.TargetRecovered}},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h state.Health
			ids := map[string]bool{}
			for i, err := range tc.polls {
				now := t0.Add(time.Duration(i) * time.Minute)
				var ev *event.Event
				if err == nil {
					h, ev = succeeded(tg, h, now)
				} else {
					h, ev = failed(tg, h, err, now, 3)
				}
				var got event.Kind
				if ev != nil {
					got = ev.Kind
					if ids[ev.ID] {
						t.Errorf("poll %d: id %s reused", i, ev.ID)
					}
					ids[ev.ID] = true
					if ev.Error == nil || ev.Error.Outage != h.Outage || ev.Target != tg || !ev.Time.Equal(now) {
						t.Errorf("poll %d: event %+v", i, ev)
					}
				}
				if got != tc.want[i] {
					t.Errorf("poll %d (%v): event %q, want %q", i, err, got, tc.want[i])
				}
				if err == nil && (h.Failing || h.ConsecutiveFailures != 0 || !h.LastSuccess.Equal(now)) {
					t.Errorf("poll %d: health after success %+v", i, h)
				}
			}
		})
	}
}

func TestTargetErrorFields(t *testing.T) {
	tg := proxy.Target{Source: proxy.SourceSession, ServiceSID: "KS" + zeros, SessionSID: "KC" + zeros}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h, _ := failed(tg, state.Health{Outage: 4}, apiErr(503, 20500), t0, 2)
	h, ev := failed(tg, h, apiErr(503, 20500), t0.Add(time.Minute), 2)
	want := event.TargetErrorInfo{Class: ClassUnavailable, HTTPStatus: 503, Code: 20500, Message: "msg",
		Since: t0, Failures: 2, Outage: 5}
	if ev == nil || *ev.Error != want {
		t.Fatalf("target_error %+v, want %+v", ev, want)
	}
	if ev.ID != event.TargetID(tg, event.TargetError, 5) {
		t.Error("id is not TargetID of the outage")
	}
	_, rec := succeeded(tg, h, t0.Add(2*time.Minute))
	if rec == nil || rec.ID != event.TargetID(tg, event.TargetRecovered, 5) || !rec.Error.Since.Equal(t0) {
		t.Fatalf("target_recovered %+v", rec)
	}
}

const zeros = "00000000000000000000000000000000"
