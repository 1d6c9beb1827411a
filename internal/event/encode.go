package event

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/monitord/monitord/internal/proxy"
)

// The encoders below write the CloudEvents JSON by appending to one
// buffer: Render runs for every event inside the poll's commit, and this
// is several times cheaper than encoding/json's reflection. Their output is
// byte for byte what encoding/json gives for the equivalent structs (with
// omitempty on the optional fields); render_ref_test.go holds those structs
// and a test and a fuzz target compare the two.

// appendHead writes the envelope up to the source's opening quote.
func appendHead(b []byte, id string) []byte {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, id)
	return append(b, `,"source":"`...)
}

// appendMid closes the source and writes type, subject, time and the
// start of data. typ is made of validated tokens: no escaping needed.
func appendMid(b []byte, typeGroup string, k Kind, subject string, at time.Time) []byte {
	b = append(b, `","type":"`+TypePrefix...)
	b = append(b, typeGroup...)
	b = append(b, k...)
	b = append(b, `","subject":`...)
	b = appendString(b, subject)
	b = append(b, `,"time":`...)
	b = appendTime(b, at)
	return append(b, `,"datacontenttype":"application/json","data":{`...)
}

func appendTargetFields(b []byte, t proxy.Target) []byte {
	b = append(b, `"target_source":`...)
	b = appendString(b, string(t.Source))
	b = append(b, `,"service_sid":`...)
	b = appendString(b, t.ServiceSID)
	b = append(b, `,"session_sid":`...)
	b = appendString(b, t.SessionSID)
	return appendOptString(b, "participant_sid", t.ParticipantSID)
}

// appendSource writes the CloudEvents source of a target's events: the
// Twilio resource path the target lists, the same on every instance, so
// two instances' copies of an event are identical. The SIDs were
// validated: no escaping needed.
func appendSource(b []byte, t proxy.Target) []byte {
	b = append(b, "/v1/Services/"...)
	b = append(b, t.ServiceSID...)
	b = append(b, "/Sessions/"...)
	b = append(b, t.SessionSID...)
	if t.Source == proxy.SourceParticipant {
		b = append(b, "/Participants/"...)
		b = append(b, t.ParticipantSID...)
	}
	return b
}

func appendInteraction(b []byte, e *Event, includeBody bool) []byte {
	b = appendSource(appendHead(b, e.ID), e.Target)
	b = appendMid(b, "interaction.", e.Kind, e.InteractionSID, e.Time)
	b = appendTargetFields(b, e.Target)
	b = append(b, `,"interaction_sid":`...)
	b = appendString(b, e.InteractionSID)
	b = appendOptString(b, "leg", string(e.Leg))
	b = appendOptString(b, "previous_status", e.PrevStatus)
	b = appendOptString(b, "status", e.Status)
	b = appendOptString(b, "interaction_type", e.Type)
	b = appendOptTime(b, "date_created", e.DateCreated)
	b = appendOptTime(b, "date_updated", e.DateUpdated)
	b = appendOptString(b, "inbound_resource_sid", e.InboundResourceSID)
	b = appendOptString(b, "outbound_resource_sid", e.OutboundResourceSID)
	b = appendOptString(b, "outbound_resource_url", e.OutboundResourceURL)
	b = appendOptInt(b, "error_code", int64(e.ErrorCode))
	b = appendOptString(b, "error_message", e.ErrorMessage)
	if e.Baseline {
		b = append(b, `,"baseline":true`...)
	}
	if includeBody {
		b = appendOptString(b, "body", e.Body)
	}
	return append(b, "}}"...)
}

func appendTarget(b []byte, e *Event) []byte {
	b = appendSource(appendHead(b, e.ID), e.Target)
	b = appendMid(b, "target.", e.Kind, e.Target.Key(), e.Time)
	b = appendTargetFields(b, e.Target)
	var x TargetErrorInfo
	if e.Error != nil {
		x = *e.Error
	}
	b = appendOptString(b, "class", x.Class)
	b = appendOptInt(b, "http_status", int64(x.HTTPStatus))
	b = appendOptInt(b, "code", int64(x.Code))
	b = appendOptString(b, "message", x.Message)
	b = appendOptTime(b, "since", x.Since)
	b = append(b, `,"failures":`...)
	b = strconv.AppendInt(b, int64(x.Failures), 10)
	b = append(b, `,"outage":`...)
	b = strconv.AppendUint(b, x.Outage, 10)
	return append(b, "}}"...)
}

func appendHeartbeat(b []byte, e *Event) []byte {
	h := e.Beat
	b = append(appendHead(b, e.ID), "monitord/"...)
	b = appendStringContent(b, h.Instance) // may hold '<' or '&'
	b = appendMid(b, "", Heartbeat, h.Instance, e.Time)
	b = append(b, `"instance":`...)
	b = appendString(b, h.Instance)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, h.Seq, 10)
	b = append(b, `,"targets_healthy":`...)
	b = strconv.AppendInt(b, int64(h.TargetsHealthy), 10)
	b = append(b, `,"targets_failing":`...)
	b = strconv.AppendInt(b, int64(h.TargetsFailing), 10)
	b = append(b, `,"outbox_depth":`...)
	b = strconv.AppendInt(b, int64(h.OutboxDepth), 10)
	b = appendOptTime(b, "last_complete_cycle", h.LastCompleteCycle)
	if h.OwnedServices != nil {
		b = append(b, `,"owned_services":[`...)
		for i, s := range h.OwnedServices {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	return append(b, "}}"...)
}

// appendOptString appends ,"name":"value" unless value is empty (the
// API's null). name is a constant that needs no escaping.
func appendOptString(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

func appendOptInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendOptTime(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendTime(b, t)
}

// appendTime writes t as a JSON string in RFC 3339 with nanoseconds, UTC.
// The format needs no escaping.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes encoding/json writes as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString writes s as a JSON string exactly as encoding/json does:
// '"' and '\\' escaped, control characters as \n, \r, \t, \b, \f or \u00XX,
// '<', '>' and '&' as \u003c, \u003e, \u0026 (safe inside HTML), invalid
// UTF-8 as \ufffd, and U+2028/U+2029 escaped (safe inside JavaScript).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringContent(b, s)
	return append(b, '"')
}

// appendStringContent is appendString without the quotes.
func appendStringContent(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
