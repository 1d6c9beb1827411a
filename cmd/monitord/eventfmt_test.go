package main

import (
	"strings"
	"testing"
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
			not:  []string{"\x1b[", "(error"},
		},
		{
			name:    "failed, colour",
			subject: "monitord.failed.x",
			payload: `{"type":"io.monitord.interaction.failed","data":{"status":"failed","error_code":30008}}`,
			color:   true,
			want:    []string{ansiBold + ansiRed + "failed", ansiReset, "(error 30008)"},
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
