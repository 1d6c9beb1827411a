package diff

import (
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// Snapshot is what a target looked like at its last complete listing: the
// input of the next Diff. It is a value; Diff never modifies the one it is
// given (the result may share its backing array when nothing changed, so
// treat Entries as read-only).
//
// Entries are sorted by SID with no duplicates: a sorted slice rather than a
// map, because the diff walks it in step with the sorted listing (a merge,
// no hashing) and it encodes to and decodes from a flat byte string cheaply.
type Snapshot struct {
	// Baselined is false until the target's first listing has been diffed.
	Baselined bool
	// Entries holds one entry per interaction, sorted by SID.
	Entries []Entry
}

// Entry is the part of an interaction the rules need to remember.
type Entry struct {
	SID                 string
	Type                string
	InboundStatus       string
	OutboundStatus      string
	InboundResourceSID  string
	OutboundResourceSID string
	DateCreated         time.Time
	DateUpdated         time.Time
	// OutboundSince is when the current outbound status was first seen: the
	// interaction's date_updated at that listing, or the listing's now when
	// date_updated is null or in the future. The stuck clock runs from it.
	OutboundSince time.Time
	// StuckReported is set once a stuck event was emitted (or, at baseline,
	// would have been): stuck fires once per interaction.
	StuckReported bool
}

// Len is the number of interactions in the snapshot.
func (s Snapshot) Len() int { return len(s.Entries) }

// Find returns the entry for sid, if present.
func (s Snapshot) Find(sid string) (Entry, bool) {
	lo, hi := 0, len(s.Entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.Entries[m].SID < sid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s.Entries) && s.Entries[lo].SID == sid {
		return s.Entries[lo], true
	}
	return Entry{}, false
}

// Equal reports whether two snapshots hold the same state.
func (s Snapshot) Equal(o Snapshot) bool {
	if s.Baselined != o.Baselined || len(s.Entries) != len(o.Entries) {
		return false
	}
	for i := range s.Entries {
		if !s.Entries[i].equal(&o.Entries[i]) {
			return false
		}
	}
	return true
}

func (e *Entry) equal(o *Entry) bool {
	return e.SID == o.SID && e.Type == o.Type &&
		e.InboundStatus == o.InboundStatus && e.OutboundStatus == o.OutboundStatus &&
		e.InboundResourceSID == o.InboundResourceSID && e.OutboundResourceSID == o.OutboundResourceSID &&
		e.DateCreated.Equal(o.DateCreated) && e.DateUpdated.Equal(o.DateUpdated) &&
		e.OutboundSince.Equal(o.OutboundSince) && e.StuckReported == o.StuckReported
}

// norm makes a time comparable with == and exactly reproducible by the
// binary encoding: UTC, no monotonic reading, and the zero time for any zero.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// sinceFor is when a status seen in it at now started holding.
func sinceFor(it *proxy.Interaction, now time.Time) time.Time {
	if it.DateUpdated.IsZero() || it.DateUpdated.After(now) {
		return now
	}
	return norm(it.DateUpdated)
}
