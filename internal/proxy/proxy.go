// Package proxy holds the Twilio Proxy API's nouns as monitord uses them:
// a Target (which listing is polled), the Interaction, Session and
// Participant items, and the rules of Twilio SIDs. It is the domain layer:
// it imports nothing of monitord, so the pure packages (diff, event,
// config) and discovery use these nouns without depending on the HTTP
// client in internal/twilio, which decodes the API into them.
package proxy

import (
	"errors"
	"fmt"
	"time"
)

// Source names which Proxy list endpoint a target is read from.
type Source string

const (
	// SourceParticipant lists
	// /v1/Services/{KS}/Sessions/{KC}/Participants/{KP}/MessageInteractions.
	SourceParticipant Source = "participant"
	// SourceSession lists /v1/Services/{KS}/Sessions/{KC}/Interactions, the
	// full interaction log of a session (items carry no participant_sid).
	SourceSession Source = "session"
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool { return s == SourceParticipant || s == SourceSession }

// Target is one listing monitord polls: a source and the SIDs that address it.
// ParticipantSID is empty for SourceSession.
type Target struct {
	Source         Source
	ServiceSID     string
	SessionSID     string
	ParticipantSID string
}

// Key is the target's stable identity, used as its state key and in logs:
// "participant/KS…/KC…/KP…" or "session/KS…/KC…".
func (t Target) Key() string {
	if t.Source == SourceSession {
		return string(t.Source) + "/" + t.ServiceSID + "/" + t.SessionSID
	}
	return string(t.Source) + "/" + t.ServiceSID + "/" + t.SessionSID + "/" + t.ParticipantSID
}

// String returns Key.
func (t Target) String() string { return t.Key() }

// Validate checks the source and every SID against its pattern.
func (t Target) Validate() error {
	if !t.Source.Valid() {
		return fmt.Errorf("source %q is not %q or %q", t.Source, SourceParticipant, SourceSession)
	}
	if err := CheckSID("service_sid", "KS", t.ServiceSID); err != nil {
		return err
	}
	if err := CheckSID("session_sid", "KC", t.SessionSID); err != nil {
		return err
	}
	if t.Source == SourceParticipant {
		return CheckSID("participant_sid", "KP", t.ParticipantSID)
	}
	if t.ParticipantSID != "" {
		return fmt.Errorf("participant_sid must be empty for source %q", SourceSession)
	}
	return nil
}

// Interaction is one item of an Interactions or MessageInteractions list,
// holding every field of the spec's message_interaction schema. Every field
// may be null in the API; null decodes to "" (strings) or the zero time.
// Type and both statuses are open enums: unknown values pass through as-is.
type Interaction struct {
	SID            string // KI…
	AccountSID     string // AC…
	ServiceSID     string // KS…
	SessionSID     string // KC…
	ParticipantSID string // KP…; absent from the session-level list
	Data           string // JSON string with the message body: personal data
	Type           string // message, voice, unknown, or anything newer

	InboundParticipantSID string
	InboundResourceSID    string
	InboundResourceStatus string
	InboundResourceType   string
	InboundResourceURL    string

	OutboundParticipantSID string
	OutboundResourceSID    string
	OutboundResourceStatus string
	OutboundResourceType   string
	OutboundResourceURL    string

	DateCreated time.Time
	DateUpdated time.Time
	URL         string
}

// Session is one item of a Service's Sessions list (the fields discovery uses).
type Session struct {
	SID                 string
	ServiceSID          string
	AccountSID          string
	UniqueName          string
	Status              string // open, in-progress, closed, failed, unknown, …
	ClosedReason        string
	Mode                string
	DateStarted         time.Time
	DateEnded           time.Time
	DateLastInteraction time.Time
	DateExpiry          time.Time
	DateCreated         time.Time
	DateUpdated         time.Time
	URL                 string
}

// Participant is one item of a Session's Participants list.
type Participant struct {
	SID                string
	SessionSID         string
	ServiceSID         string
	AccountSID         string
	FriendlyName       string
	Identifier         string // phone number: personal data, never logged
	ProxyIdentifier    string
	ProxyIdentifierSID string
	DateDeleted        time.Time
	DateCreated        time.Time
	DateUpdated        time.Time
	URL                string
}

// ErrNotFound is what an API client's error matches (errors.Is) when the
// Service, Session, Participant or Message asked for does not exist (any
// more): a 404 from Twilio. Packages that only need to tell "gone" from
// "failing" test for it without importing the client.
var ErrNotFound = errors.New("not found")
