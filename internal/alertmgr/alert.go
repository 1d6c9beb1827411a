package alertmgr

import (
	"fmt"
	"strconv"
	"time"

	"github.com/monitord/monitord/internal/errcode"
	"github.com/monitord/monitord/internal/event"
)

// Alert is one alert of Alertmanager's v2 API (postableAlert).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Alert names, one per kind.
const (
	AlertFailed      = "MonitordMessageFailed"
	AlertStuck       = "MonitordMessageStuck"
	AlertTargetError = "MonitordTargetError"
)

// UnknownCode is the error_code label of an event that carries no code:
// Proxy listings have none, and the Message fetch may fail or be late.
const UnknownCode = "unknown"

// FromEvent turns one CloudEvents message of monitord into an alert that
// is firing from the event's time until now+resolveAfter. The labels are
// what Alertmanager groups and deduplicates on: alertname, service,
// error_code, kind, severity, plus what tells one message's alert from
// another's (interaction, or target for target_error), so that a burst of
// 500 failures is one group of 500 alerts rather than one alert. A
// redelivered event gives the same labels: Alertmanager merges it, no
// second page.
func FromEvent(data []byte, now time.Time, resolveAfter time.Duration) (Alert, error) {
	ce, err := event.Decode(data)
	if err != nil {
		return Alert{}, err
	}
	kind, ok := ce.Kind()
	if !ok || (kind != event.Failed && kind != event.Stuck && kind != event.TargetError) {
		return Alert{}, fmt.Errorf("event %s: type %q is not a failed, stuck or target_error event", ce.ID, ce.Type)
	}
	d := ce.Data
	if d.ServiceSID == "" {
		return Alert{}, fmt.Errorf("event %s: no data.service_sid", ce.ID)
	}
	start := ce.Time
	if start.IsZero() || start.After(now) {
		start = now
	}
	a := Alert{
		Labels: map[string]string{
			"service": d.ServiceSID,
			"kind":    string(kind),
		},
		Annotations: map[string]string{
			"event_id":    ce.ID,
			"service_sid": d.ServiceSID,
			"session_sid": d.SessionSID,
		},
		StartsAt: start.UTC(),
		EndsAt:   now.Add(resolveAfter).UTC(),
	}
	setOpt(a.Annotations, "participant_sid", d.ParticipantSID)
	code := d.ErrorCode
	switch kind {
	case event.Failed, event.Stuck:
		if d.InteractionSID == "" {
			return Alert{}, fmt.Errorf("event %s: no data.interaction_sid", ce.ID)
		}
		a.Labels["interaction"] = d.InteractionSID
		a.Annotations["interaction_sid"] = d.InteractionSID
		setOpt(a.Annotations, "status", d.Status)
		setOpt(a.Annotations, "previous_status", d.PreviousStatus)
		setOpt(a.Annotations, "leg", d.Leg)
		setOpt(a.Annotations, "inbound_resource_sid", d.InboundResourceSID)
		setOpt(a.Annotations, "outbound_resource_sid", d.OutboundResourceSID)
		msg := d.OutboundResourceSID
		if d.Leg == string(event.Inbound) {
			msg = d.InboundResourceSID
		}
		setOpt(a.Annotations, "message_sid", msg)
		if kind == event.Failed {
			a.Labels["alertname"] = AlertFailed
			a.Labels["severity"] = "page"
			a.Annotations["summary"] = fmt.Sprintf("message %s of interaction %s %s on Service %s%s",
				orDash(msg), d.InteractionSID, orDash(d.Status), d.ServiceSID, codeSuffix(code))
		} else {
			a.Labels["alertname"] = AlertStuck
			a.Labels["severity"] = "warning"
			a.Annotations["summary"] = fmt.Sprintf("message %s of interaction %s stuck in %s on Service %s",
				orDash(msg), d.InteractionSID, orDash(d.Status), d.ServiceSID)
		}
	case event.TargetError:
		code = d.Code
		a.Labels["alertname"] = AlertTargetError
		a.Labels["severity"] = "warning"
		a.Labels["target"] = ce.Subject
		setOpt(a.Annotations, "class", d.Class)
		if d.HTTPStatus != 0 {
			a.Annotations["http_status"] = strconv.Itoa(d.HTTPStatus)
		}
		setOpt(a.Annotations, "message", d.Message)
		a.Annotations["summary"] = fmt.Sprintf("monitord cannot poll %s (%s)", ce.Subject, orDash(d.Class))
	}
	if a.Labels["target"] == "" && kind == event.TargetError {
		return Alert{}, fmt.Errorf("event %s: no subject (target)", ce.ID)
	}
	a.Labels["error_code"] = UnknownCode
	if code != 0 {
		a.Labels["error_code"] = strconv.Itoa(code)
		a.Annotations["error_meaning"] = errcode.Describe(code)
		a.Annotations["error_url"] = errcode.URL(code)
		if kind != event.TargetError {
			a.Annotations["description"] = fmt.Sprintf("Twilio error %d: %s. %s", code, errcode.Describe(code), errcode.URL(code))
		}
	}
	setOpt(a.Annotations, "error_message", d.ErrorMessage)
	return a, nil
}

func setOpt(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func codeSuffix(code int) string {
	if code == 0 {
		return ""
	}
	return fmt.Sprintf(": %d %s", code, errcode.Describe(code))
}
