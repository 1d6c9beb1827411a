package event

import (
	"errors"
	"fmt"
	"strings"
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
		data = appendInteraction(make([]byte, 0, 1536+len(e.Body)+len(e.ErrorMessage)), &e, o.IncludeBody)
	case TargetError, TargetRecovered:
		if err := e.Target.Validate(); err != nil {
			return Message{}, fmt.Errorf("render event %s: target: %w", e.ID, err)
		}
		subject = Subject(prefix, e.Kind, e.Target)
		msgLen := 0
		if e.Error != nil {
			msgLen = len(e.Error.Message)
		}
		data = appendTarget(make([]byte, 0, 768+msgLen), &e)
	case Heartbeat:
		if e.Beat == nil {
			return Message{}, fmt.Errorf("render event %s: heartbeat without heartbeat info", e.ID)
		}
		if err := CheckInstance(e.Beat.Instance); err != nil {
			return Message{}, fmt.Errorf("render event %s: %w", e.ID, err)
		}
		subject = HeartbeatSubject(prefix, e.Beat.Instance)
		data = appendHeartbeat(make([]byte, 0, 512), &e)
	default:
		return Message{}, fmt.Errorf("render event %s: unknown kind %q", e.ID, e.Kind)
	}
	return Message{ID: e.ID, Subject: subject, Data: data}, nil
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
			return fmt.Errorf("subject token may not hold %q", tok[i:i+1])
		}
	}
	return nil
}
