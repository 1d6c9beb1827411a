package event

import (
	"time"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/proxy"
)

// FromChanges turns the changes diff.Diff found in a complete listing of
// target t into events, in the same order. now is the instant given to
// Diff: every event carries it as Time, in UTC without a monotonic reading
// so that it compares and encodes the same everywhere. It returns nil for
// no changes, so an unchanged poll allocates nothing here.
//
// Each event's id is InteractionID(sid, kind, leg, new status), with the
// status left out for created and deleted: a created or deleted event is
// one per interaction whatever its status, and two instances (or one
// replaying after a crash) derive the same id for the same change.
func FromChanges(t proxy.Target, now time.Time, changes []diff.Change) []Event {
	if len(changes) == 0 {
		return nil
	}
	now = now.UTC()
	evs := make([]Event, len(changes))
	for i := range changes {
		c := &changes[i]
		k := Kind(c.Kind)
		idStatus := c.Status
		if k == Created || k == Deleted {
			idStatus = ""
		}
		evs[i] = Event{
			ID:                  InteractionID(c.InteractionSID, k, c.Leg, idStatus),
			Kind:                k,
			Target:              t,
			Time:                now,
			InteractionSID:      c.InteractionSID,
			Leg:                 c.Leg,
			PrevStatus:          c.PrevStatus,
			Status:              c.Status,
			Type:                c.Type,
			DateCreated:         c.DateCreated,
			DateUpdated:         c.DateUpdated,
			InboundResourceSID:  c.InboundResourceSID,
			OutboundResourceSID: c.OutboundResourceSID,
			OutboundResourceURL: c.OutboundResourceURL,
			Body:                c.Body,
			Baseline:            c.Baseline,
		}
	}
	return evs
}
