// Package event defines monitord's events: their kinds, their deterministic
// ids, their NATS subjects, and the outbox record that carries them from a
// committed poll to NATS. Interaction events are built from the changes
// package diff finds (FromChanges): diff decides what changed, event names
// it and gives it its id.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/proxy"
)

// Kind is what happened.
type Kind string

// The event kinds. See docs/events.md for when each fires. The five
// interaction kinds are the kinds of diff.Change, named once there by the
// rules that produce them; the other three belong to the poller.
const (
	Created         Kind = Kind(diff.Created)
	StatusChanged   Kind = Kind(diff.StatusChanged)
	Failed          Kind = Kind(diff.Failed)
	Stuck           Kind = Kind(diff.Stuck)
	Deleted         Kind = Kind(diff.Deleted)
	TargetError     Kind = "target_error"
	TargetRecovered Kind = "target_recovered"
	Heartbeat       Kind = "heartbeat"
)

// Kinds lists every kind in a stable order.
var Kinds = []Kind{Created, StatusChanged, Failed, Stuck, Deleted, TargetError, TargetRecovered, Heartbeat}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Leg names which resource of an interaction a status belongs to: the
// diff's legs, under the name an event reader expects.
type Leg = diff.Leg

const (
	// Inbound is the inbound resource (the message a participant sent).
	Inbound = diff.Inbound
	// Outbound is the outbound resource (the message Proxy relayed).
	Outbound = diff.Outbound
	// NoLeg is for events that concern the interaction or target as a whole.
	NoLeg = diff.NoLeg
)

// Event is one change monitord detected. Interaction events carry the
// interaction's fields; target events carry Error; heartbeats carry Heartbeat.
type Event struct {
	ID     string
	Kind   Kind
	Target proxy.Target
	Time   time.Time // when monitord detected it

	InteractionSID      string
	Leg                 Leg
	PrevStatus          string // "" when the interaction is new or the status was null
	Status              string
	Type                string
	DateCreated         time.Time
	DateUpdated         time.Time
	InboundResourceSID  string
	OutboundResourceSID string
	OutboundResourceURL string
	Body                string // message body (API "data"); set only when the config opts in
	// ErrorCode and ErrorMessage say why the leg's message failed, from
	// its Message resource (the Proxy listings carry neither): 0 and ""
	// when unknown, and then not rendered. Twilio meant them for people;
	// neither the id nor which events fire ever depends on them.
	ErrorCode    int
	ErrorMessage string
	// Baseline marks a failed event raised by the target's first complete
	// listing (the baseline rule, rules.baseline.alert_recent): the failure
	// happened before monitord first looked, not between two polls. Readers
	// such as tail and the demo use it to say why a fresh start pages.
	Baseline bool

	Error *TargetErrorInfo // target_error and target_recovered
	Beat  *HeartbeatInfo   // heartbeat
}

// TargetErrorInfo describes why a target's polls fail.
type TargetErrorInfo struct {
	Class      string // "auth", "not_found", "unavailable", "rate_limited", "invalid_response", "other"
	HTTPStatus int
	Code       int // Twilio error code, 0 when unknown
	Message    string
	Since      time.Time // first failure of this outage
	Failures   int       // consecutive failed polls
	Outage     uint64    // the target's outage counter: makes ids of successive outages differ
}

// HeartbeatInfo is the payload of a heartbeat event.
type HeartbeatInfo struct {
	Instance          string
	TargetsHealthy    int
	TargetsFailing    int
	OutboxDepth       int
	LastCompleteCycle time.Time
	Seq               uint64
	// OwnedServices are the Services the instance polls now, with
	// several instances (ha.enabled); nil for a single instance, which
	// polls every Service (the field is then left out).
	OwnedServices []string
}

// InteractionID is the deterministic id of an interaction event: the same
// change observed by two instances, or derived again after a crash, gets the
// same id, so JetStream's duplicate window drops the replay.
func InteractionID(interactionSID string, kind Kind, leg Leg, status string) string {
	return hashID("i", interactionSID, string(kind), string(leg), status)
}

// TargetID is the deterministic id of a target_error or target_recovered
// event for the given outage number of the target.
func TargetID(t proxy.Target, kind Kind, outage uint64) string {
	return hashID("t", t.Key(), string(kind), strconv.FormatUint(outage, 10))
}

// HeartbeatID is the id of an instance's seq-th heartbeat.
func HeartbeatID(instance string, at time.Time) string {
	return hashID("h", instance, strconv.FormatInt(at.UnixNano(), 10))
}

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// DefaultPrefix is the default first subject token.
const DefaultPrefix = "monitord"

// Subject is the NATS subject of an event of kind k about target t:
// <prefix>.<kind>.<service>.<session>.<participant or "_">. The SID tokens
// come from a target that passed proxy.Target.Validate, so they can hold no
// '.', '*' or '>'.
func Subject(prefix string, k Kind, t proxy.Target) string {
	p := t.ParticipantSID
	if p == "" {
		p = "_"
	}
	var b strings.Builder
	b.Grow(len(prefix) + len(k) + 3*35 + 4)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(string(k))
	b.WriteByte('.')
	b.WriteString(t.ServiceSID)
	b.WriteByte('.')
	b.WriteString(t.SessionSID)
	b.WriteByte('.')
	b.WriteString(p)
	return b.String()
}

// HeartbeatSubject is <prefix>.heartbeat.<instance>.
func HeartbeatSubject(prefix, instance string) string {
	return prefix + "." + string(Heartbeat) + "." + instance
}

// Message is an event ready to publish: what the outbox stores. It is
// rendered once, when the poll commits, so draining does no encoding.
type Message struct {
	ID      string // Nats-Msg-Id
	Subject string
	Data    []byte // CloudEvents 1.0 structured JSON
}

// Position is where a pending event sits in the outbox: the key of the
// target it belongs to, and its sequence number among that target's
// events. A target's events are published in Seq order; order across
// targets is not promised.
type Position struct {
	Target string
	Seq    uint64
}

// Record is an outbox entry: a Message and its position in the outbox.
type Record struct {
	Position
	Message
}
