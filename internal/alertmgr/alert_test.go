package alertmgr

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	svc = "KS2b2e4d7f6c0a4d3e9b1f5a8c7d6e5f40"
	ses = "KC9a8b7c6d5e4f30211f2e3d4c5b6a7980"
	par = "KP0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	ki  = "KI5d6c7b8a9f0e1d2c3b4a5968778695a4"
	smI = "SM1a2b3c4d5e6f708192a3b4c5d6e7f801"
	smO = "SM8f7e6d5c4b3a29180f1e2d3c4b5a6978"
)

// failedEvent is a failed event as monitord renders it (docs/events.md),
// with extra data fields spliced in.
func failedEvent(extra string) string {
	return `{"specversion":"1.0","id":"e1","source":"/v1/Services/` + svc + `","type":"io.monitord.interaction.failed",` +
		`"subject":"` + ki + `","time":"2026-11-26T20:15:04.512Z","datacontenttype":"application/json","data":{` +
		`"target_source":"participant","service_sid":"` + svc + `","session_sid":"` + ses + `","participant_sid":"` + par + `",` +
		`"interaction_sid":"` + ki + `","leg":"outbound","previous_status":"sent","status":"undelivered",` +
		`"inbound_resource_sid":"` + smI + `","outbound_resource_sid":"` + smO + `"` + extra + `}}`
}

func TestFromEvent(t *testing.T) {
	now := time.Date(2026, 11, 26, 20, 16, 0, 0, time.UTC)
	base := map[string]string{
		"event_id": "e1", "service_sid": svc, "session_sid": ses, "participant_sid": par, "interaction_sid": ki,
		"status": "undelivered", "previous_status": "sent", "leg": "outbound",
		"inbound_resource_sid": smI, "outbound_resource_sid": smO, "message_sid": smO,
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name   string
		in     string
		labels map[string]string
		annots map[string]string
	}{
		{
			name: "no code yet: today's events",
			in:   failedEvent(""),
			labels: map[string]string{"alertname": AlertFailed, "service": svc, "kind": "failed", "severity": "page",
				"interaction": ki, "error_code": "unknown"},
			annots: with(base, "summary", "message "+smO+" of interaction "+ki+" undelivered on Service "+svc),
		},
		{
			name: "code and message",
			in:   failedEvent(`,"error_code":30007,"error_message":"Carrier violation"`),
			labels: map[string]string{"alertname": AlertFailed, "service": svc, "kind": "failed", "severity": "page",
				"interaction": ki, "error_code": "30007"},
			annots: with(base,
				"summary", "message "+smO+" of interaction "+ki+" undelivered on Service "+svc+": 30007 message filtered by the carrier",
				"error_meaning", "message filtered by the carrier",
				"error_url", "https://www.twilio.com/docs/api/errors/30007",
				"description", "Twilio error 30007: message filtered by the carrier. https://www.twilio.com/docs/api/errors/30007",
				"error_message", "Carrier violation"),
		},
		{
			name: "inbound leg names the inbound message",
			in:   strings.Replace(failedEvent(""), `"leg":"outbound"`, `"leg":"inbound"`, 1),
			labels: map[string]string{"alertname": AlertFailed, "service": svc, "kind": "failed", "severity": "page",
				"interaction": ki, "error_code": "unknown"},
			annots: with(base, "leg", "inbound", "message_sid", smI,
				"summary", "message "+smI+" of interaction "+ki+" undelivered on Service "+svc),
		},
		{
			name: "target_error",
			in: `{"id":"e2","type":"io.monitord.target.target_error","subject":"participant/` + svc + `/` + ses + `/` + par + `",` +
				`"time":"2026-11-26T20:15:04Z","data":{"service_sid":"` + svc + `","session_sid":"` + ses + `","participant_sid":"` + par + `",` +
				`"class":"auth","http_status":401,"code":20003,"message":"Authenticate","failures":1,"outage":1}}`,
			labels: map[string]string{"alertname": AlertTargetError, "service": svc, "kind": "target_error", "severity": "warning",
				"target": "participant/" + svc + "/" + ses + "/" + par, "error_code": "20003"},
			annots: map[string]string{"event_id": "e2", "service_sid": svc, "session_sid": ses, "participant_sid": par,
				"class": "auth", "http_status": "401", "message": "Authenticate",
				"summary":       "monitord cannot poll participant/" + svc + "/" + ses + "/" + par + " (auth)",
				"error_meaning": "Twilio error 20003", "error_url": "https://www.twilio.com/docs/api/errors/20003"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := FromEvent([]byte(tc.in), now, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.labels, a.Labels); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.annots, a.Annotations); d != "" {
				t.Errorf("annotations (-want +got):\n%s", d)
			}
			if want := now.Add(time.Hour); !a.EndsAt.Equal(want) {
				t.Errorf("endsAt %s, want %s", a.EndsAt, want)
			}
			if want := time.Date(2026, 11, 26, 20, 15, 4, 0, time.UTC); a.StartsAt.Truncate(time.Second) != want {
				t.Errorf("startsAt %s, want the event's time %s", a.StartsAt, want)
			}
		})
	}
}

func TestFromEventRejects(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"not json":       {`{"id":`, "decode event: unexpected end of JSON input"},
		"created":        {strings.Replace(failedEvent(""), "interaction.failed", "interaction.created", 1), `event e1: type "io.monitord.interaction.created" is not a failed, stuck or target_error event`},
		"no service":     {strings.Replace(failedEvent(""), `"service_sid":"`+svc+`",`, "", 1), "event e1: no data.service_sid"},
		"no interaction": {strings.Replace(failedEvent(""), `"interaction_sid":"`+ki+`",`, "", 1), "event e1: no data.interaction_sid"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEvent([]byte(tc.in), time.Now(), time.Hour)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestBackoff: capped, and never below half the step.
func TestBackoff(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := backoff(n, time.Second, 30*time.Second)
		step := min(time.Second<<min(n-1, 10), 30*time.Second)
		if d < step/2 || d > step {
			t.Errorf("attempt %d: %s outside [%s, %s]", n, d, step/2, step)
		}
	}
}
