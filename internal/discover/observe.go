package discover

import "time"

// Observer learns the outcome of every refresh (for metrics).
type Observer interface {
	Refreshed(r RefreshResult)
}

// RefreshResult is one refresh of one entry. On error only ServiceSID,
// Duration, Err and ParticipantLists are meaningful: nothing was committed.
type RefreshResult struct {
	ServiceSID string
	Duration   time.Duration
	Err        error
	// SessionsSeen: sessions followed as live after this refresh.
	SessionsSeen int
	// SessionsClosed: sessions live at the previous refresh and not now
	// (closed, failed, gone, filtered out); their targets enter grace.
	SessionsClosed int
	// Targets tracked after the refresh, InGrace of them in their grace
	// period; Dropped: targets whose grace ended in this refresh.
	Targets, InGrace, Dropped int
	// ParticipantLists: participants listings made (one or more requests
	// each, one page at Proxy's two participants per session).
	ParticipantLists int
}
