package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/twilio"
)

// ContentType is the Content-Type header of every published event: the
// CloudEvents 1.0 structured JSON mode.
const ContentType = "application/cloudevents+json"

// TypePrefix starts every CloudEvents type monitord emits.
const TypePrefix = "io.monitord."

// RenderOptions are the parts of rendering that come from the config.
type RenderOptions struct {
	// Prefix is the first subject token(s); "" means DefaultPrefix.
	Prefix string
	// IncludeBody copies the message body (personal data) into the event.
	// Off by default: subscribers rarely need it and it spreads PII.
	IncludeBody bool
}

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
	Instance          string `json:"instance"`
	Seq               uint64 `json:"seq"`
	TargetsHealthy    int    `json:"targets_healthy"`
	TargetsFailing    int    `json:"targets_failing"`
	OutboxDepth       int    `json:"outbox_depth"`
	LastCompleteCycle string `json:"last_complete_cycle,omitempty"`
}

// Render turns e into the Message the outbox stores: its id, its NATS
// subject and its CloudEvents 1.0 JSON. It refuses events whose subject
// tokens would not be safe (a target that fails Validate, an instance name
// holding '.', '*', '>' or white space), so API data never shapes a subject.
func Render(e Event, o RenderOptions) (Message, error) {
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := CheckPrefix(prefix); err != nil {
		return Message{}, fmt.Errorf("render event: %w", err)
	}
	if e.ID == "" {
		return Message{}, errors.New("render event: empty id")
	}
	if e.Time.IsZero() {
		return Message{}, fmt.Errorf("render event %s: zero time", e.ID)
	}
	var (
		subject string
		data    []byte
		err     error
	)
	switch e.Kind {
	case Created, StatusChanged, Failed, Stuck, Deleted:
		if err := e.Target.Validate(); err != nil {
			return Message{}, fmt.Errorf("render event %s: target: %w", e.ID, err)
		}
		if e.InteractionSID == "" {
			return Message{}, fmt.Errorf("render event %s: %s without interaction sid", e.ID, e.Kind)
		}
		subject = Subject(prefix, e.Kind, e.Target)
		data, err = json.Marshal(ceEnvelope[interactionData]{
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
		if err := e.Target.Validate(); err != nil {
			return Message{}, fmt.Errorf("render event %s: target: %w", e.ID, err)
		}
		subject = Subject(prefix, e.Kind, e.Target)
		data, err = json.Marshal(ceEnvelope[targetData]{
			SpecVersion:     "1.0",
			ID:              e.ID,
			Source:          targetSource(e.Target),
			Type:            TypePrefix + "target." + string(e.Kind),
			Subject:         e.Target.Key(),
			Time:            formatTime(e.Time),
			DataContentType: "application/json",
			Data:            newTargetData(e),
		})
	case Heartbeat:
		if e.Beat == nil {
			return Message{}, fmt.Errorf("render event %s: heartbeat without heartbeat info", e.ID)
		}
		if err := CheckInstance(e.Beat.Instance); err != nil {
			return Message{}, fmt.Errorf("render event %s: %w", e.ID, err)
		}
		subject = HeartbeatSubject(prefix, e.Beat.Instance)
		b := e.Beat
		data, err = json.Marshal(ceEnvelope[heartbeatData]{
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
			},
		})
	default:
		return Message{}, fmt.Errorf("render event %s: unknown kind %q", e.ID, e.Kind)
	}
	if err != nil {
		return Message{}, fmt.Errorf("render event %s: %w", e.ID, err)
	}
	return Message{ID: e.ID, Subject: subject, Data: data}, nil
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
func targetSource(t twilio.Target) string {
	s := "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID
	if t.Source == twilio.SourceParticipant {
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

// CheckPrefix reports whether p can start a NATS subject: one or more
// dot-separated tokens of printable ASCII without '*' or '>'.
func CheckPrefix(p string) error {
	if p == "" {
		return errors.New("subject prefix is empty")
	}
	for _, tok := range strings.Split(p, ".") {
		if err := checkToken(tok); err != nil {
			return fmt.Errorf("subject prefix %q: %w", p, err)
		}
	}
	return nil
}

// CheckInstance reports whether name can be the single subject token that
// names an instance in heartbeat subjects.
func CheckInstance(name string) error {
	if err := checkToken(name); err != nil {
		return fmt.Errorf("instance name %q: %w", name, err)
	}
	return nil
}

func checkToken(tok string) error {
	if tok == "" {
		return errors.New("empty subject token")
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return fmt.Errorf("subject token may not hold %q", c)
		}
	}
	return nil
}
