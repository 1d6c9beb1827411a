package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// This file is the reference encoding: the event as encoding/json renders
// purpose-built structs. Render's append-based encoders must produce the
// same bytes (TestRenderMatchesReference, FuzzRenderMatchesReference).

// ceEnvelope is the CloudEvents 1.0 structured-mode envelope. It is a
// purpose-built struct (not a map) so encoding/json walks a cached field
// list: rendering runs once per event inside the poll's commit.
type ceEnvelope[T any] struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	Data            T      `json:"data"`
}

// interactionData is the data of created, status_changed, failed, stuck and
// deleted. Fields the API left null are omitted.
type interactionData struct {
	TargetSource        string `json:"target_source"`
	ServiceSID          string `json:"service_sid"`
	SessionSID          string `json:"session_sid"`
	ParticipantSID      string `json:"participant_sid,omitempty"`
	InteractionSID      string `json:"interaction_sid"`
	Leg                 string `json:"leg,omitempty"`
	PreviousStatus      string `json:"previous_status,omitempty"`
	Status              string `json:"status,omitempty"`
	InteractionType     string `json:"interaction_type,omitempty"`
	DateCreated         string `json:"date_created,omitempty"`
	DateUpdated         string `json:"date_updated,omitempty"`
	InboundResourceSID  string `json:"inbound_resource_sid,omitempty"`
	OutboundResourceSID string `json:"outbound_resource_sid,omitempty"`
	OutboundResourceURL string `json:"outbound_resource_url,omitempty"`
	ErrorCode           int    `json:"error_code,omitempty"`
	ErrorMessage        string `json:"error_message,omitempty"`
	Baseline            bool   `json:"baseline,omitempty"`
	Body                string `json:"body,omitempty"`
}

// targetData is the data of target_error and target_recovered.
type targetData struct {
	TargetSource   string `json:"target_source"`
	ServiceSID     string `json:"service_sid"`
	SessionSID     string `json:"session_sid"`
	ParticipantSID string `json:"participant_sid,omitempty"`
	Class          string `json:"class,omitempty"`
	HTTPStatus     int    `json:"http_status,omitempty"`
	Code           int    `json:"code,omitempty"`
	Message        string `json:"message,omitempty"`
	Since          string `json:"since,omitempty"`
	Failures       int    `json:"failures"`
	Outage         uint64 `json:"outage"`
}

// heartbeatData is the data of heartbeat.
type heartbeatData struct {
	Instance          string    `json:"instance"`
	Seq               uint64    `json:"seq"`
	TargetsHealthy    int       `json:"targets_healthy"`
	TargetsFailing    int       `json:"targets_failing"`
	OutboxDepth       int       `json:"outbox_depth"`
	LastCompleteCycle string    `json:"last_complete_cycle,omitempty"`
	OwnedServices     *[]string `json:"owned_services,omitempty"` // nil: single instance; [] a standby
}

func newInteractionData(e Event, includeBody bool) interactionData {
	d := interactionData{
		TargetSource:        string(e.Target.Source),
		ServiceSID:          e.Target.ServiceSID,
		SessionSID:          e.Target.SessionSID,
		ParticipantSID:      e.Target.ParticipantSID,
		InteractionSID:      e.InteractionSID,
		Leg:                 string(e.Leg),
		PreviousStatus:      e.PrevStatus,
		Status:              e.Status,
		InteractionType:     e.Type,
		DateCreated:         formatTime(e.DateCreated),
		DateUpdated:         formatTime(e.DateUpdated),
		InboundResourceSID:  e.InboundResourceSID,
		OutboundResourceSID: e.OutboundResourceSID,
		OutboundResourceURL: e.OutboundResourceURL,
		ErrorCode:           e.ErrorCode,
		ErrorMessage:        e.ErrorMessage,
		Baseline:            e.Baseline,
	}
	if includeBody {
		d.Body = e.Body
	}
	return d
}

func newTargetData(e Event) targetData {
	d := targetData{
		TargetSource:   string(e.Target.Source),
		ServiceSID:     e.Target.ServiceSID,
		SessionSID:     e.Target.SessionSID,
		ParticipantSID: e.Target.ParticipantSID,
	}
	if x := e.Error; x != nil {
		d.Class = x.Class
		d.HTTPStatus = x.HTTPStatus
		d.Code = x.Code
		d.Message = x.Message
		d.Since = formatTime(x.Since)
		d.Failures = x.Failures
		d.Outage = x.Outage
	}
	return d
}

// targetSource is the CloudEvents source of a target's events: the Twilio
// resource path the target lists, the same on every instance, so two
// instances' copies of an event are identical.
func targetSource(t proxy.Target) string {
	s := "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID
	if t.Source == proxy.SourceParticipant {
		s += "/Participants/" + t.ParticipantSID
	}
	return s
}

// formatTime is RFC 3339 with nanoseconds in UTC, or "" for the zero time
// (a null in the API), which the data structs omit.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// renderReference is the data Render must produce for e.
func renderReference(e Event, o RenderOptions) ([]byte, error) {
	switch e.Kind {
	case Created, StatusChanged, Failed, Stuck, Deleted:
		return json.Marshal(ceEnvelope[interactionData]{
			SpecVersion:     "1.0",
			ID:              e.ID,
			Source:          targetSource(e.Target),
			Type:            TypePrefix + "interaction." + string(e.Kind),
			Subject:         e.InteractionSID,
			Time:            formatTime(e.Time),
			DataContentType: "application/json",
			Data:            newInteractionData(e, o.IncludeBody),
		})
	case TargetError, TargetRecovered:
		return json.Marshal(ceEnvelope[targetData]{
			SpecVersion:     "1.0",
			ID:              e.ID,
			Source:          targetSource(e.Target),
			Type:            TypePrefix + "target." + string(e.Kind),
			Subject:         e.Target.Key(),
			Time:            formatTime(e.Time),
			DataContentType: "application/json",
			Data:            newTargetData(e),
		})
	default:
		b := e.Beat
		return json.Marshal(ceEnvelope[heartbeatData]{
			SpecVersion:     "1.0",
			ID:              e.ID,
			Source:          "monitord/" + b.Instance,
			Type:            TypePrefix + string(Heartbeat),
			Subject:         b.Instance,
			Time:            formatTime(e.Time),
			DataContentType: "application/json",
			Data: heartbeatData{
				Instance:          b.Instance,
				Seq:               b.Seq,
				TargetsHealthy:    b.TargetsHealthy,
				TargetsFailing:    b.TargetsFailing,
				OutboxDepth:       b.OutboxDepth,
				LastCompleteCycle: formatTime(b.LastCompleteCycle),
				OwnedServices:     ownedRef(b.OwnedServices),
			},
		})
	}
}

func TestRenderMatchesReference(t *testing.T) {
	cases := variants()
	nasty := examples()[2]
	nasty.Body = "quote\" backslash\\ nl\n cr\r tab\t bs\b ff\f nul\x00 esc\x1b <b>&amp;</b> \u2028\u2029 é 🚀 bad\xff\xfe utf8"
	nasty.Status = "<undelivered>"
	nasty.ErrorMessage = "quote\" nl\n <&> \u2028 bad\xff"
	cases["nasty"] = nasty
	te := examples()[5]
	te.Error = &TargetErrorInfo{Class: "other", Message: "bad \"gateway\"\n<html>", Since: exTime}
	cases["nasty target"] = te
	hb := examples()[7]
	hb.Beat = &HeartbeatInfo{Instance: "host<&", Seq: 1<<64 - 1, TargetsHealthy: -1}
	cases["nasty heartbeat"] = hb
	ha := examples()[7]
	ha.Beat = &HeartbeatInfo{Instance: "mon-a", Seq: 7, OwnedServices: []string{"KS0123456789abcdef0123456789abcdef", "KS\"<&>"}}
	cases["ha heartbeat"] = ha
	for name, e := range cases {
		for _, o := range []RenderOptions{{}, {IncludeBody: true}} {
			m, err := Render(e, o)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			want, err := renderReference(e, o)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Data, want) {
				t.Errorf("%s (body %v):\n got %s\nwant %s", name, o.IncludeBody, m.Data, want)
			}
		}
	}
}

// FuzzRenderMatchesReference feeds arbitrary strings (API data) and
// numbers through every field they reach and compares with encoding/json.
func FuzzRenderMatchesReference(f *testing.F) {
	f.Add("undelivered", "message", `{"body": "hi <3"}`, "Authenticate", int64(401), int64(20003), int64(1764188104512000000))
	f.Add("\x00\u2028", "\xff", "a\"b\\c", "", int64(0), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, status, typ, body, msg string, n1, n2, nanos int64) {
		at := time.Unix(0, nanos)
		for _, e := range examples() {
			e.Status, e.PrevStatus, e.Type, e.Body = status, typ, body, msg
			e.OutboundResourceURL = body
			e.ErrorCode, e.ErrorMessage = int(n1), msg
			e.Baseline = n2%2 == 0
			e.DateUpdated = at
			if e.Error != nil {
				e.Error = &TargetErrorInfo{Class: typ, HTTPStatus: int(n1), Code: int(n2), Message: msg, Since: at, Failures: int(n2)}
			}
			if e.Beat != nil {
				e.Beat = &HeartbeatInfo{Instance: "i", Seq: uint64(n1), TargetsHealthy: int(n2), LastCompleteCycle: at}
			}
			o := RenderOptions{IncludeBody: true}
			m, err := Render(e, o)
			if err != nil {
				t.Fatalf("%s: %v", e.Kind, err)
			}
			want, err := renderReference(e, o)
			if err != nil {
				// encoding/json refuses years outside 0..9999; so must we
				// not emit garbage: such times never come from the API.
				return
			}
			if !bytes.Equal(m.Data, want) {
				t.Fatalf("%s:\n got %s\nwant %s", e.Kind, m.Data, want)
			}
		}
	})
}

// BenchmarkRenderReference is encoding/json on the equivalent structs,
// for the ratio with BenchmarkRender.
func BenchmarkRenderReference(b *testing.B) {
	e := examples()[2]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := renderReference(e, RenderOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func ownedRef(s []string) *[]string {
	if s == nil {
		return nil
	}
	return &s
}
