package twilio

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/monitord/monitord/internal/proxy"
)

// FuzzDecodePage holds the hand-written scanner to encoding/json: on any
// input both accept with the same result, or both refuse. It also proves
// the decoder never panics. Run it with
//
//	go test -run '^$' -fuzz FuzzDecodePage ./internal/twilio/
func FuzzDecodePage(f *testing.F) {
	files, err := filepath.Glob("testdata/spec_*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(pageJSON(0, 3, "https://proxy.twilio.com/v1/x?PageToken=PT1")))
	f.Add([]byte(`{"interactions":[{"data":"\ud83d\ude00\u00e9\"","sid":"","date_created":"2015-07-30T20:00:00.5+01:00"}],"meta":{"next_page_url":""}}`))
	f.Add([]byte(`{"interactions":[{"x":{"y":[1,-0.5e3,true,null,"z"]}}],"meta":{"next_page_url":null,"page":0}}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		next, got, err := decodePage(string(body), "interactions", nil, decodeInteraction)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if len(got) != 0 {
				t.Fatalf("%d items returned with an error", len(got))
			}
		}
		if !utf8.Valid(body) {
			// encoding/json replaces invalid UTF-8; the decoder refuses it.
			if err == nil {
				t.Fatal("accepted invalid UTF-8")
			}
			return
		}
		wantNext, want, wantErr := referenceDecodePage(body)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decoder err %v, reference err %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if next != wantNext {
			t.Fatalf("next %q, reference %q", next, wantNext)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("items differ from the reference (-reference +decoder):\n%s", d)
		}
	})
}

// referenceDecodePage decodes a page with encoding/json and the rules of
// decode.go, slowly and plainly.
func referenceDecodePage(body []byte) (string, []proxy.Interaction, error) {
	if !json.Valid(body) {
		return "", nil, errors.New("invalid JSON")
	}
	top, err := members(body)
	if err != nil {
		return "", nil, err
	}
	var items []proxy.Interaction
	var next string
	var haveItems, haveNext bool
	seen := map[string]bool{}
	for _, m := range top {
		if m.key != "interactions" && m.key != "meta" {
			continue
		}
		if seen[m.key] {
			return "", nil, errors.New("duplicate " + m.key)
		}
		seen[m.key] = true
		if m.key == "meta" {
			meta, err := members(m.val)
			if err != nil {
				return "", nil, err
			}
			for _, mm := range meta {
				if mm.key != "next_page_url" {
					continue
				}
				if haveNext {
					return "", nil, errors.New("duplicate next_page_url")
				}
				haveNext = true
				if err := json.Unmarshal(mm.val, &next); err != nil {
					return "", nil, err
				}
			}
			continue
		}
		haveItems = true
		if bytes.TrimSpace(m.val)[0] != '[' {
			return "", nil, errors.New("interactions: not an array")
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(m.val, &raws); err != nil {
			return "", nil, err
		}
		for _, raw := range raws {
			it, err := referenceInteraction(raw)
			if err != nil {
				return "", nil, err
			}
			items = append(items, it)
		}
	}
	if !haveItems || !haveNext {
		return "", nil, errors.New("not a list page")
	}
	return next, items, nil
}

func referenceInteraction(raw []byte) (proxy.Interaction, error) {
	var it proxy.Interaction
	ms, err := members(raw)
	if err != nil {
		return it, err
	}
	type field struct {
		dst    *string
		date   *time.Time
		prefix string // "-" for no SID
	}
	fields := map[string]field{
		"sid": {dst: &it.SID, prefix: "KI"}, "account_sid": {dst: &it.AccountSID, prefix: "AC"},
		"service_sid": {dst: &it.ServiceSID, prefix: "KS"}, "session_sid": {dst: &it.SessionSID, prefix: "KC"},
		"participant_sid": {dst: &it.ParticipantSID, prefix: "KP"}, "data": {dst: &it.Data, prefix: "-"},
		"type": {dst: &it.Type, prefix: "-"}, "inbound_participant_sid": {dst: &it.InboundParticipantSID, prefix: "KP"},
		"inbound_resource_sid": {dst: &it.InboundResourceSID}, "inbound_resource_status": {dst: &it.InboundResourceStatus, prefix: "-"},
		"inbound_resource_type": {dst: &it.InboundResourceType, prefix: "-"}, "inbound_resource_url": {dst: &it.InboundResourceURL, prefix: "-"},
		"outbound_participant_sid": {dst: &it.OutboundParticipantSID, prefix: "KP"}, "outbound_resource_sid": {dst: &it.OutboundResourceSID},
		"outbound_resource_status": {dst: &it.OutboundResourceStatus, prefix: "-"}, "outbound_resource_type": {dst: &it.OutboundResourceType, prefix: "-"},
		"outbound_resource_url": {dst: &it.OutboundResourceURL, prefix: "-"}, "date_created": {date: &it.DateCreated},
		"date_updated": {date: &it.DateUpdated}, "url": {dst: &it.URL, prefix: "-"},
	}
	seen := map[string]bool{}
	for _, m := range ms {
		f, known := fields[m.key]
		if !known {
			continue
		}
		if seen[m.key] {
			return it, errors.New("duplicate " + m.key)
		}
		seen[m.key] = true
		var s string
		if err := json.Unmarshal(m.val, &s); err != nil {
			return it, err
		}
		switch {
		case f.date != nil:
			if s != "" {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return it, err
				}
				*f.date = t.UTC()
			}
		case f.prefix != "-" && s != "" && !proxy.ValidSID(f.prefix, s):
			return it, errors.New("bad SID in " + m.key)
		case f.prefix != "-" && s != "":
			*f.dst = s[:2] + strings.ToLower(s[2:]) // lower-case hex, as Twilio writes
		default:
			*f.dst = s
		}
	}
	return it, nil
}

type member struct {
	key string
	val json.RawMessage
}

// members lists an object's members in order, duplicates included (which
// json.Unmarshal into a map would hide).
func members(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var m member
		m.key = tok.(string)
		if err := dec.Decode(&m.val); err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}
