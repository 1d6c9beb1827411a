package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Envelope is a monitord CloudEvent as its readers see it (`monitord
// tail`, `monitord alertmanager`): the envelope's fields and the union of
// every kind's data. It is the one decoder of the events contract, so that
// a field added to docs/events.md is read the same way everywhere.
type Envelope struct {
	ID      string    `json:"id"`
	Source  string    `json:"source"`
	Type    string    `json:"type"`
	Subject string    `json:"subject"`
	Time    time.Time `json:"time"`
	Data    Data      `json:"-"`
}

// Data is the union of the data fields of every kind (docs/events.md).
// Every field is optional: an older monitord never sends the newer ones
// (error_code, error_message), and a field of another kind stays zero.
type Data struct {
	ServiceSID          string `json:"service_sid"`
	SessionSID          string `json:"session_sid"`
	ParticipantSID      string `json:"participant_sid"`
	InteractionSID      string `json:"interaction_sid"`
	Leg                 string `json:"leg"`
	PreviousStatus      string `json:"previous_status"`
	Status              string `json:"status"`
	InboundResourceSID  string `json:"inbound_resource_sid"`
	OutboundResourceSID string `json:"outbound_resource_sid"`
	ErrorCode           int    `json:"error_code"`
	ErrorMessage        string `json:"error_message"`
	Baseline            bool   `json:"baseline"`

	// target_error, target_recovered
	Class      string `json:"class"`
	HTTPStatus int    `json:"http_status"`
	Code       int    `json:"code"`
	Message    string `json:"message"`
	Failures   int    `json:"failures"`

	// heartbeat
	Instance       string   `json:"instance"`
	TargetsHealthy int      `json:"targets_healthy"`
	TargetsFailing int      `json:"targets_failing"`
	OutboxDepth    int      `json:"outbox_depth"`
	OwnedServices  []string `json:"owned_services"` // ha.enabled: the Services the instance polls
}

// ErrData marks a Decode error in the data member only: the envelope was
// read, and a lenient reader (tail) may still show it.
var ErrData = errors.New("data of an unexpected shape")

// Decode reads a published event. Unknown fields are ignored, so a reader
// built from an older or newer monitord still reads what it knows. An
// error wrapping ErrData leaves the envelope's fields set and Data partly
// filled; any other error means the payload is not an event at all.
func Decode(payload []byte) (Envelope, error) {
	var raw struct {
		Envelope
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Envelope{}, fmt.Errorf("decode event: %w", err)
	}
	env := raw.Envelope
	if len(raw.Data) > 0 {
		if err := json.Unmarshal(raw.Data, &env.Data); err != nil {
			return env, fmt.Errorf("decode event %s: %w: %v", env.ID, ErrData, err)
		}
	}
	return env, nil
}

// Kind is the kind the envelope's type names ("io.monitord.interaction.
// failed" → Failed), and whether it names one of monitord's kinds.
func (e Envelope) Kind() (Kind, bool) {
	i := strings.LastIndexByte(e.Type, '.')
	if !strings.HasPrefix(e.Type, TypePrefix) || i < 0 {
		return "", false
	}
	k := Kind(e.Type[i+1:])
	return k, k.Valid()
}
