package main

import (
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/twilio"
)

func TestFormatEvent(t *testing.T) {
	ks, kc, kp, ki := sid("KS", 0xabc), sid("KC", 0xdef), sid("KP", 0x123), sid("KI", 0x456)
	tests := []struct {
		name, subject, payload string
		color                  bool
		want                   []string
		not                    []string
	}{
		{
			name:    "failed, plain",
			subject: "monitord.failed." + ks + "." + kc + "." + kp,
			payload: `{"specversion":"1.0","type":"io.monitord.interaction.failed","time":"2026-11-26T21:00:00Z",
				"data":{"service_sid":"` + ks + `","session_sid":"` + kc + `","participant_sid":"` + kp + `",
				"interaction_sid":"` + ki + `","leg":"outbound","previous_status":"sending","status":"undelivered"}}`,
			want: []string{"failed ", "KS…000abc KC…000def KP…000123", "KI…000456 outbound", "sending → undelivered"},
			not:  []string{"\x1b[", "  300"},
		},
		{
			name:    "failed, colour",
			subject: "monitord.failed.x",
			payload: `{"type":"io.monitord.interaction.failed","data":{"status":"failed","error_code":30008}}`,
			color:   true,
			want:    []string{ansiBold + ansiRed + "failed", ansiReset, "failed  30008 the carrier reported an unknown error"},
		},
		{
			name:    "failed with a reason",
			subject: "monitord.failed.x",
			payload: `{"type":"io.monitord.interaction.failed","data":{"previous_status":"sent","status":"undelivered",` +
				`"error_code":30007,"error_message":"Carrier violation"}}`,
			want: []string{"sent → undelivered  30007 message filtered by the carrier"},
			not:  []string{"Carrier violation"},
		},
		{
			name:    "failed with a code monitord cannot explain",
			subject: "monitord.failed.x",
			payload: `{"type":"io.monitord.interaction.failed","data":{"status":"failed","error_code":63016,"error_message":"Outside the allowed window"}}`,
			want:    []string{"failed  63016 Outside the allowed window"},
		},
		{
			name:    "created, colour leaves routine kinds plain",
			subject: "monitord.created.x",
			payload: `{"type":"io.monitord.interaction.created","data":{"session_sid":"` + kc + `","leg":"inbound","status":"received"}}`,
			color:   true,
			want:    []string{"created", "KC…000def", "received"},
			not:     []string{"\x1b[", "→"},
		},
		{
			name:    "target_error",
			subject: "monitord.target_error." + ks + "." + kc + "._",
			payload: `{"type":"io.monitord.target.target_error","data":{"service_sid":"` + ks + `","session_sid":"` + kc + `",
				"class":"auth","http_status":401,"code":20003,"message":"Authenticate","failures":1,"outage":3}}`,
			want: []string{"target_error", "KS…000abc KC…000def  auth, HTTP 401, code 20003, 1 failed polls: Authenticate"},
		},
		{
			name:    "target_recovered",
			subject: "monitord.target_recovered.a.b._",
			payload: `{"type":"io.monitord.target.target_recovered","data":{"service_sid":"` + ks + `","failures":4}}`,
			want:    []string{"target_recovered", "recovered after 4 failed polls"},
		},
		{
			name:    "heartbeat",
			subject: "monitord.heartbeat.host1",
			payload: `{"type":"io.monitord.heartbeat","data":{"instance":"host1","seq":7,"targets_healthy":5,"targets_failing":1,"outbox_depth":0}}`,
			want:    []string{"heartbeat", "instance host1  5 healthy, 1 failing, outbox 0"},
		},
		{
			name:    "kind from the subject when the type is foreign",
			subject: "acme.monitord.stuck.a.b.c",
			payload: `{"type":"com.example.other","data":{"status":"queued"}}`,
			want:    []string{"stuck", "queued"},
		},
		{
			name:    "not JSON",
			subject: "monitord.failed.a.b.c",
			payload: `oops`,
			want:    []string{"failed", "monitord.failed.a.b.c", "undecodable payload, 4 bytes"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := formatEvent(tc.subject, []byte(tc.payload), tc.color)
			if strings.Contains(got, "\n") {
				t.Errorf("line holds a newline: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%q holds %q", got, n)
				}
			}
		})
	}
}

func TestShortSID(t *testing.T) {
	for in, want := range map[string]string{
		sid("KS", 0xc0ffee): "KS…c0ffee",
		"KS12":              "KS12",
		"":                  "",
	} {
		if got := shortSID(in); got != want {
			t.Errorf("shortSID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://u:pw@a:4222, nats://tok@b:4222,nats://c:4222")
	if strings.Contains(got, "pw") || strings.Contains(got, "tok") {
		t.Fatalf("secret left in %q", got)
	}
	for _, w := range []string{"a:4222", "b:4222", "nats://c:4222"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q lacks %q", got, w)
		}
	}
}

// TestFormatRenderedEvents formats every kind as event.Render writes it, so
// the readable format follows the event contract rather than a copy of it.
func TestFormatRenderedEvents(t *testing.T) {
	tg := twilio.Target{Source: twilio.SourceParticipant, ServiceSID: sid("KS", 0xa1), SessionSID: sid("KC", 0xb2), ParticipantSID: sid("KP", 0xc3)}
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	ki := sid("KI", 0xd4)
	base := event.Event{Target: tg, Time: now, InteractionSID: ki, Leg: event.Outbound}
	cases := []struct {
		e    event.Event
		want []string
	}{
		{withKind(base, event.Created, "", "queued"), []string{"created", "KI…0000d4", "queued"}},
		{withKind(base, event.StatusChanged, "sending", "sent"), []string{"status_changed", "sending → sent"}},
		{withKind(base, event.Failed, "sent", "undelivered"), []string{"failed", "KS…0000a1 KC…0000b2 KP…0000c3", "outbound", "sent → undelivered"}},
		{withKind(base, event.Stuck, "", "sending"), []string{"stuck", "sending"}},
		{withKind(base, event.Deleted, "", ""), []string{"deleted", "KI…0000d4"}},
		{event.Event{ID: "e1", Kind: event.TargetError, Target: tg, Time: now,
			Error: &event.TargetErrorInfo{Class: "auth", HTTPStatus: 401, Code: 20003, Message: "Authenticate", Failures: 1, Since: now, Outage: 1}},
			[]string{"target_error", "auth, HTTP 401, code 20003, 1 failed polls: Authenticate"}},
		{event.Event{ID: "e2", Kind: event.TargetRecovered, Target: tg, Time: now,
			Error: &event.TargetErrorInfo{Class: "auth", Failures: 3, Since: now, Outage: 1}},
			[]string{"target_recovered", "recovered after 3 failed polls"}},
		{event.Event{ID: "e3", Kind: event.Heartbeat, Time: now,
			Beat: &event.HeartbeatInfo{Instance: "host1", TargetsHealthy: 4, TargetsFailing: 1, OutboxDepth: 2, Seq: 1}},
			[]string{"heartbeat", "instance host1  4 healthy, 1 failing, outbox 2"}},
	}
	seen := map[event.Kind]bool{}
	for _, tc := range cases {
		seen[tc.e.Kind] = true
		m, err := event.Render(tc.e, event.RenderOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.e.Kind, err)
		}
		got := formatEvent(m.Subject, m.Data, false)
		if !strings.HasPrefix(got, now.Local().Format("15:04:05")+"  "+string(tc.e.Kind)+" ") {
			t.Errorf("%s: line %q does not start with its time and kind", tc.e.Kind, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.e.Kind, got, w)
			}
		}
	}
	for _, k := range event.Kinds {
		if !seen[k] {
			t.Errorf("kind %s not covered", k)
		}
	}
}

func withKind(e event.Event, k event.Kind, prev, status string) event.Event {
	e.Kind, e.PrevStatus, e.Status = k, prev, status
	e.ID = event.InteractionID(e.InteractionSID, k, e.Leg, status)
	return e
}
