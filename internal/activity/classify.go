package activity

import (
	"hash/maphash"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// InFlight reports whether any leg of a complete listing is still moving
// at now, which makes its target hot: a leg that is not final by the
// diff's rules (queued, sending, null, unknown values…), or an outbound leg
// at "sent" (its carrier receipt, delivered or undelivered, is still to
// come; the diff calls "sent" final because it may stay so for good),
// whose interaction was updated within Settle of now. A leg with neither a
// resource SID nor a status does not exist (an API-sent message has no
// inbound leg).
//
// After Settle a leg that has not moved no longer keeps its target hot:
// a message stuck at queued would otherwise be polled every HotMax for
// ever. The cold sweep still sees it, and the diff's stuck event with it.
func (c Config) InFlight(listing []proxy.Interaction, now time.Time) bool {
	for i := range listing {
		it := &listing[i]
		moving := c.legMoving(it.InboundResourceSID, it.InboundResourceStatus) ||
			c.legMoving(it.OutboundResourceSID, it.OutboundResourceStatus) ||
			it.OutboundResourceStatus == "sent"
		if !moving {
			continue
		}
		at := it.DateUpdated
		if at.IsZero() {
			at = it.DateCreated
		}
		if at.IsZero() || now.Sub(at) < c.Settle {
			return true
		}
	}
	return false
}

func (c Config) legMoving(sid, status string) bool {
	if sid == "" && status == "" {
		return false
	}
	return !c.Rules.Terminal(status)
}

var seed = maphash.MakeSeed()

// fingerprint sums a hash of each item's SID and statuses: the listing's
// order is not documented, so the sum (order-free) tells a changed listing
// from the same one listed in another order. Duplicates count twice, which
// at worst takes an unchanged listing for a change: one poll early.
func fingerprint(listing []proxy.Interaction) uint64 {
	var sum uint64
	var h maphash.Hash
	h.SetSeed(seed)
	for i := range listing {
		it := &listing[i]
		h.Reset()
		h.WriteString(it.SID)
		h.WriteByte(0)
		h.WriteString(it.InboundResourceStatus)
		h.WriteByte(0)
		h.WriteString(it.OutboundResourceStatus)
		sum += h.Sum64()
	}
	return sum + uint64(len(listing))
}
