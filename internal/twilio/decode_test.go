package twilio

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/monitord/monitord/internal/proxy"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeSpecExamples(t *testing.T) {
	for file, key := range map[string]string{
		"spec_interactions_read_empty.json":         "interactions",
		"spec_message_interactions_read_empty.json": "interactions",
		"spec_sessions_read_empty.json":             "sessions",
		"spec_participants_read_empty.json":         "participants",
	} {
		next, items, err := decodePage(readTestdata(t, file), key, []struct{}(nil), func(d *scanner, _ *struct{}) error { return d.skip(0) })
		if err != nil || next != "" || len(items) != 0 {
			t.Errorf("%s: next %q, %d items, err %v", file, next, len(items), err)
		}
	}

	next, items, err := decodePage(readTestdata(t, "spec_interactions_page.json"), "interactions", nil, decodeInteraction)
	if err != nil || next != "" || len(items) != 3 {
		t.Fatalf("next %q, %d items, err %v", next, len(items), err)
	}
	day := time.Date(2015, 7, 30, 20, 0, 0, 0, time.UTC)
	want := proxy.Interaction{
		SID:                    "KIaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		AccountSID:             "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		ServiceSID:             "KSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		SessionSID:             "KCaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		Data:                   `{"body":"some message"}`,
		Type:                   "message",
		InboundParticipantSID:  "KPaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		InboundResourceSID:     "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		InboundResourceStatus:  "sent",
		InboundResourceType:    "Message",
		OutboundParticipantSID: "KPbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		OutboundResourceSID:    "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		OutboundResourceStatus: "sent",
		OutboundResourceType:   "Message",
		DateCreated:            day,
		DateUpdated:            day,
		URL:                    "https://proxy.twilio.com/v1/Services/KSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Sessions/KCaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Interactions/KIaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	}
	if d := cmp.Diff(want, items[0]); d != "" {
		t.Errorf("session interaction (-want +got):\n%s", d)
	}
	if it := items[1]; it.ParticipantSID != "KPaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || it.InboundResourceSID != "" ||
		it.InboundResourceStatus != "" || it.OutboundResourceStatus != "sent" {
		t.Errorf("message interaction: %+v", it)
	}

	for _, file := range []string{"spec_interaction_fetch.json", "spec_message_interaction_fetch.json", "spec_message_interaction_create.json"} {
		var it proxy.Interaction
		if err := decodeOne(readTestdata(t, file), &it, decodeInteraction); err != nil || it.SID == "" || !it.DateCreated.Equal(day) {
			t.Errorf("%s: err %v, %+v", file, err, it)
		}
	}
}

// TestDecodeNullInEveryField: every field of every resource may be null,
// and "" counts as null for SIDs and dates.
func TestDecodeNullInEveryField(t *testing.T) {
	fields := map[string][]string{
		"interactions": {"sid", "account_sid", "service_sid", "session_sid", "participant_sid", "data", "type",
			"inbound_participant_sid", "inbound_resource_sid", "inbound_resource_status", "inbound_resource_type", "inbound_resource_url",
			"outbound_participant_sid", "outbound_resource_sid", "outbound_resource_status", "outbound_resource_type", "outbound_resource_url",
			"date_created", "date_updated", "url"},
		"sessions": {"sid", "service_sid", "account_sid", "date_started", "date_ended", "date_last_interaction", "date_expiry",
			"unique_name", "status", "closed_reason", "ttl", "mode", "date_created", "date_updated", "url", "links"},
		"participants": {"sid", "session_sid", "service_sid", "account_sid", "friendly_name", "identifier", "proxy_identifier",
			"proxy_identifier_sid", "date_deleted", "date_created", "date_updated", "url", "links"},
	}
	item := func(key, value string) string {
		var parts []string
		for _, f := range fields[key] {
			parts = append(parts, `"`+f+`":`+value)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	for _, value := range []string{"null", `""`} {
		for key := range fields {
			if value == `""` && key != "interactions" {
				continue // ttl and links are not strings
			}
			body := `{"` + key + `":[` + item(key, value) + `],"meta":{"next_page_url":null}}`
			var err error
			var n int
			switch key {
			case "interactions":
				var items []proxy.Interaction
				_, items, err = decodePage(body, key, nil, decodeInteraction)
				if n = len(items); n == 1 && items[0] != (proxy.Interaction{}) {
					t.Errorf("%s %s: %+v, want the zero proxy.Interaction", key, value, items[0])
				}
			case "sessions":
				var items []proxy.Session
				_, items, err = decodePage(body, key, nil, decodeSession)
				if n = len(items); n == 1 && items[0] != (proxy.Session{}) {
					t.Errorf("%s: %+v", key, items[0])
				}
			case "participants":
				var items []proxy.Participant
				_, items, err = decodePage(body, key, nil, decodeParticipant)
				if n = len(items); n == 1 && items[0] != (proxy.Participant{}) {
					t.Errorf("%s: %+v", key, items[0])
				}
			}
			if err != nil || n != 1 {
				t.Errorf("%s all %s: %d items, err %v", key, value, n, err)
			}
		}
	}
}

func TestDecodeUnknownEnumValuesAndKeys(t *testing.T) {
	body := `{"meta":{"next_page_url":null,"extra":[1,{"a":[]}]},"future":{"x":[true,false,null,-1.5e+3,"\u00e9"]},` +
		`"interactions":[{"type":"carrier-pigeon","inbound_resource_status":"teleported","outbound_resource_status":"read",` +
		`"new_field":{"nested":[[{}],{"k":"v\"}"}]},"another":12345678901234567890}]}`
	_, items, err := decodePage(body, "interactions", nil, decodeInteraction)
	if err != nil || len(items) != 1 {
		t.Fatalf("%d items, err %v", len(items), err)
	}
	if it := items[0]; it.Type != "carrier-pigeon" || it.InboundResourceStatus != "teleported" || it.OutboundResourceStatus != "read" {
		t.Errorf("%+v", it)
	}
}

func TestDecodeEscapesLikeEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`plain`, `{\"body\":\"hi\"}`, `tab\there`, `\u00e9t\u00E9`, `\ud83d\ude00 smile`, `lone \ud800 surrogate`,
		`\ud800\u0041 broken pair`, `\/\\\b\f\n\r`, `\udc00\ud800`, `end \ud83d`,
	} {
		body := `{"interactions":[{"data":"` + s + `"}],"meta":{"next_page_url":null}}`
		_, items, err := decodePage(body, "interactions", nil, decodeInteraction)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			t.Fatal(err)
		}
		if items[0].Data != want {
			t.Errorf("%s: got %q, encoding/json %q", s, items[0].Data, want)
		}
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	ok := interactionJSON(1)
	cases := []struct {
		name, body, want string
	}{
		{"bad sid", `{"interactions":[` + ok + `,{"sid":"KX0123456789abcdef0123456789abcdef"}],"meta":{"next_page_url":null}}`,
			`interactions[1].sid: "KX0123456789abcdef0123456789abcdef" does not match ^KI[0-9a-fA-F]{32}$`},
		{"bad resource sid", `{"interactions":[{"outbound_resource_sid":"S1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}],"meta":{"next_page_url":null}}`,
			`interactions[0].outbound_resource_sid: "S1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" does not match ^[a-zA-Z]{2}[0-9a-fA-F]{32}$`},
		{"number for a string", `{"interactions":[{"data":5}],"meta":{"next_page_url":null}}`, `interactions[0].data: expected a string or null`},
		{"bad date", `{"interactions":[{"date_updated":"30/07/2015"}],"meta":{"next_page_url":null}}`, `interactions[0].date_updated: "30/07/2015" is not an RFC 3339`},
		{"duplicate key", `{"interactions":[{"sid":null,"sid":null}],"meta":{"next_page_url":null}}`, `interactions[0].sid: duplicate key`},
		{"item not an object", `{"interactions":[null],"meta":{"next_page_url":null}}`, `interactions[0]: expected an object`},
		{"items null", `{"interactions":null,"meta":{"next_page_url":null}}`, `interactions: expected an array`},
		{"next_page_url a number", `{"interactions":[],"meta":{"next_page_url":1}}`, `meta.next_page_url: expected a string or null`},
		{"bad unknown value", `{"interactions":[{"x":[1,]}],"meta":{"next_page_url":null}}`, `interactions[0].x: expected a value`},
		{"invalid UTF-8", "{\"interactions\":[{\"data\":\"\xff\"}],\"meta\":{\"next_page_url\":null}}", `not valid UTF-8`},
		{"control character", "{\"interactions\":[{\"data\":\"a\nb\"}],\"meta\":{\"next_page_url\":null}}", `interactions[0].data: control character`},
		{"truncated", `{"interactions":[{"data":"abc`, `unexpected end of JSON`},
		{"empty", ``, `unexpected end of JSON`},
		{"trailing garbage", `{"interactions":[],"meta":{"next_page_url":null}} x`, `unexpected data after the top-level value`},
		{"deep nesting", `{"interactions":[],"x":` + strings.Repeat("[", maxDepth+5) + `,"meta":{"next_page_url":null}}`, `x: nesting too deep`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, items, err := decodePage(tc.body, "interactions", nil, decodeInteraction)
			if err == nil || len(items) != 0 {
				t.Fatalf("%d items, err %v", len(items), err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeDatesLikeTimeParse(t *testing.T) {
	for _, s := range []string{
		"2015-07-30T20:00:00Z", "2016-02-29T23:59:59Z", "2015-02-29T00:00:00Z", "2015-07-30T24:00:00Z",
		"2015-07-30T20:00:60Z", "2015-07-30T20:00:00.123Z", "2015-07-30T20:00:00+02:00", "2015-13-01T00:00:00Z",
		"0000-01-01T00:00:00Z", "2015-07-30t20:00:00z", "2015-07-30 20:00:00Z",
	} {
		want, wantErr := time.Parse(time.RFC3339, s)
		d := scanner{s: `"` + s + `"`}
		var got time.Time
		err := d.date(&got)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Errorf("%s: got %v, %v; time.Parse %v, %v", s, got, err, want, wantErr)
		}
	}
}

// TestDecodeAllocations holds the hot path to a few allocations per page:
// what items keep is copied into shared chunks (the unescaped data string
// too), not allocated string by string. Counting allocations is exact,
// unlike timing, so it can be a test; speed is in the benchmarks.
func TestDecodeAllocations(t *testing.T) {
	body := pageJSON(0, 1000, "")
	out := make([]proxy.Interaction, 0, 1000)
	allocs := testing.AllocsPerRun(20, func() {
		var err error
		if _, out, err = decodePage(body, "interactions", out[:0], decodeInteraction); err != nil || len(out) != 1000 {
			t.Fatal(err)
		}
	})
	if allocs > 50 {
		t.Errorf("%.0f allocations for 1000 interactions", allocs)
	}
}

// TestSIDFastPathLikeGeneralPath: the one-pass read of a canonical SID
// (quotedSID) and the general path (string, pattern, case) give the same
// value or error for SIDs at and around the fast path's shape.
func TestSIDFastPathLikeGeneralPath(t *testing.T) {
	hex := "0123456789abcdef0123456789abcdef"
	cases := []struct{ field, prefix, raw string }{
		{"sid", "KI", `"KI` + hex + `"`},
		{"sid", "KI", ` "KI` + hex + `" `},
		{"sid", "KI", `"KI` + strings.ToUpper(hex) + `"`},
		{"sid", "KI", `"KX` + hex + `"`},
		{"sid", "KI", `"ki` + hex + `"`},
		{"sid", "KI", `"KI` + hex[1:] + `"`},
		{"sid", "KI", `"KI` + hex + `0"`},
		{"sid", "KI", `"KI\u0030` + hex[1:] + `"`},
		{"sid", "KI", `"KI\"` + hex[2:] + `"`},
		{"sid", "KI", `"KI` + hex[:31] + `g"`},
		{"sid", "KI", `null`},
		{"outbound_resource_sid", "", `"SM` + hex + `"`},
		{"outbound_resource_sid", "", `"sm` + hex + `"`},
		{"outbound_resource_sid", "", `"S1` + hex + `"`},
		{"outbound_resource_sid", "", `"MM` + hex[:16] + strings.ToUpper(hex[16:]) + `"`},
	}
	for _, tc := range cases {
		body := `{"interactions":[{"` + tc.field + `":` + tc.raw + `}],"meta":{"next_page_url":null}}`
		_, items, err := decodePage(body, "interactions", nil, decodeInteraction)
		var s *string
		if err := json.Unmarshal([]byte(tc.raw), &s); err != nil {
			t.Fatal(err)
		}
		want, wantOK := "", true
		if s != nil {
			want, wantOK = proxy.CanonicalSID(*s), proxy.ValidSID(tc.prefix, *s)
		}
		switch {
		case !wantOK && err == nil:
			t.Errorf("%s: %s accepted", tc.field, tc.raw)
		case wantOK && err != nil:
			t.Errorf("%s: %s: %v", tc.field, tc.raw, err)
		case wantOK:
			got := items[0].SID
			if tc.field != "sid" {
				got = items[0].OutboundResourceSID
			}
			if got != want {
				t.Errorf("%s: %s decoded as %q, want %q", tc.field, tc.raw, got, want)
			}
		}
	}
}
