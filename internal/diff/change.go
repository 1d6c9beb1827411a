package diff

import "time"

// Kind is which rule a Change comes from. The values are the event kinds
// monitord publishes (the subject token and the end of the CloudEvents
// type): package event takes these five from here and adds the kinds that
// are not about one interaction (target errors, heartbeats), so each name
// is written once.
type Kind string

// The kinds of change, in the order Diff emits them for one interaction.
// See the package documentation for when each fires.
const (
	Created       Kind = "created"
	StatusChanged Kind = "status_changed"
	Failed        Kind = "failed"
	Stuck         Kind = "stuck"
	Deleted       Kind = "deleted"
)

// Leg names which resource of an interaction a status belongs to.
type Leg string

const (
	// Inbound is the inbound resource (the message a participant sent).
	Inbound Leg = "inbound"
	// Outbound is the outbound resource (the message Proxy relayed).
	Outbound Leg = "outbound"
	// NoLeg is for changes that concern the interaction as a whole.
	NoLeg Leg = ""
)

// Change is one thing Diff found changed in one interaction: the rule that
// fired and the interaction as the listing showed it. It names neither the
// target nor the time, which the caller already holds, nor an event id:
// package event derives the id and the rest of the event from a Change
// (event.FromChanges), so the id rule has one owner.
//
// Per kind: status_changed and failed have Leg, PrevStatus and Status;
// stuck has Leg outbound and Status the stuck status; created has no leg
// and Status the outbound status; deleted has no leg and PrevStatus the
// last outbound status seen.
type Change struct {
	Kind           Kind
	InteractionSID string
	Leg            Leg
	PrevStatus     string // "" when the interaction is new or the status was null
	Status         string
	// Baseline marks a failed change found in the target's first complete
	// listing (Rules.BaselineAlertRecent): the failure happened before
	// monitord first looked.
	Baseline bool

	Type                string
	DateCreated         time.Time
	DateUpdated         time.Time
	InboundResourceSID  string
	OutboundResourceSID string
	// OutboundResourceURL is empty on deleted: the snapshot keeps no URLs.
	OutboundResourceURL string
	Body                string // message body (API "data"); set only when Rules.IncludeBody
}
