package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
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
			not:  []string{"\x1b[", "(error", "baseline", "  300"},
		},
		{
			name:    "failed at the baseline",
			subject: "monitord.failed." + ks + "." + kc + "." + kp,
			payload: `{"type":"io.monitord.interaction.failed","data":{"interaction_sid":"` + ki + `","leg":"outbound","status":"failed","baseline":true}}`,
			want:    []string{"failed ", "KI…000456 outbound  failed  (baseline: already failed at the first poll)"},
			not:     []string{"→"},
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

// TestFormatRenderedEvents formats every kind as event.Render writes it, so
// the readable format follows the event contract rather than a copy of it.
func TestFormatRenderedEvents(t *testing.T) {
	tg := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: sid("KS", 0xa1), SessionSID: sid("KC", 0xb2), ParticipantSID: sid("KP", 0xc3)}
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
		{withBaseline(withKind(base, event.Failed, "", "failed")), []string{"failed", "outbound  failed  (baseline: already failed at the first poll)"}},
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

func withBaseline(e event.Event) event.Event {
	e.Baseline = true
	return e
}

// TestEventPrinterShowsAFailureOnce: the status_changed of a leg change
// that also comes as failed is not printed; other held status_changed
// lines come out before the next event of another kind, after their hold,
// or on close; JSON output prints everything.
func TestEventPrinterShowsAFailureOnce(t *testing.T) {
	tg := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: sid("KS", 1), SessionSID: sid("KC", 2), ParticipantSID: sid("KP", 3)}
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	ev := func(n int, k event.Kind, leg event.Leg, prev, status string) event.Message {
		e := withKind(event.Event{Target: tg, Time: now, InteractionSID: sid("KI", n), Leg: leg}, k, prev, status)
		m, err := event.Render(e, event.RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// One commit's order (internal/diff): status_changed inbound, outbound,
	// then failed inbound, outbound. Here only the inbound leg failed.
	commit := []event.Message{
		ev(1, event.StatusChanged, event.Inbound, "received", "failed"),
		ev(1, event.StatusChanged, event.Outbound, "queued", "sent"),
		ev(1, event.Failed, event.Inbound, "received", "failed"),
		ev(2, event.Created, event.NoLeg, "", "queued"),
	}
	lines := func(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

	t.Run("readable", func(t *testing.T) {
		var out syncBuffer
		p := newEventPrinter(&out, false)
		p.holdFor = time.Hour // released by the next event, not by time
		for _, m := range commit {
			p.print(m.Subject, m.Data)
		}
		got := lines(out.String())
		const tgt = "KS…000001 KC…000002 KP…000003  "
		want := []string{
			fmt.Sprintf("%-16s  %s", "failed", tgt+"KI…000001 inbound   received → failed"),
			fmt.Sprintf("%-16s  %s", "status_changed", tgt+"KI…000001 outbound  queued → sent"),
			fmt.Sprintf("%-16s  %s", "created", tgt+"KI…000002  queued"),
		}
		if len(got) != len(want) {
			t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), out.String())
		}
		for i := range want {
			if !strings.HasSuffix(got[i], want[i]) {
				t.Errorf("line %d: %q\nwant it to end %q", i, got[i], want[i])
			}
		}

		// Alone, a status_changed comes out after its hold, or on close.
		p.holdFor = time.Millisecond
		m := ev(3, event.StatusChanged, event.Outbound, "sent", "delivered")
		p.print(m.Subject, m.Data)
		waitFor(t, "the held line after its hold", 10*time.Second, func() bool { return strings.Contains(out.String(), "KI…000003") })
		p.holdFor = time.Hour
		m = ev(4, event.StatusChanged, event.Outbound, "sent", "delivered")
		p.print(m.Subject, m.Data)
		p.close()
		if !strings.Contains(out.String(), "KI…000004") {
			t.Errorf("close left a held line unprinted:\n%s", out.String())
		}
	})

	t.Run("json", func(t *testing.T) {
		var out syncBuffer
		p := newEventPrinter(&out, true)
		for _, m := range commit {
			p.print(m.Subject, m.Data)
		}
		p.close()
		if got := lines(out.String()); len(got) != len(commit) {
			t.Errorf("--json printed %d events, want all %d:\n%s", len(got), len(commit), out.String())
		}
	})
}
