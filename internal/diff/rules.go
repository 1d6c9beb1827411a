package diff

import "time"

// Rules are the configurable parts of the diff.
type Rules struct {
	// AlertStatuses are the statuses whose entry on a leg is a failed event
	// (default "failed", "undelivered").
	AlertStatuses []string
	// StuckAfter is how long an outbound status may stay non-terminal before
	// a stuck event (once per interaction). 0 disables.
	StuckAfter time.Duration
	// BaselineAlertRecent: on a target's first listing, interactions in an
	// alert status whose date_updated is within this of now still produce
	// failed. 0 disables.
	BaselineAlertRecent time.Duration
	// IncludeBody copies the message body into events.
	IncludeBody bool
	// TerminalStatuses are the outbound statuses that stop the stuck clock.
	// Nil means DefaultTerminalStatuses. Alert statuses are always terminal:
	// a failed leg has already paged.
	TerminalStatuses []string
}

// DefaultRules returns the documented defaults.
func DefaultRules() Rules {
	return Rules{
		AlertStatuses:       []string{"failed", "undelivered"},
		StuckAfter:          15 * time.Minute,
		BaselineAlertRecent: 15 * time.Minute,
	}
}

// DefaultTerminalStatuses are the outbound statuses after which nothing more
// is expected, so they can never be stuck. "sent" is terminal because many
// carriers never return a delivery receipt and Twilio then leaves a message
// at "sent" for good; "delivery-unknown" likewise. Everything else —
// accepted, scheduled, queued, sending, initiated, ringing, answered,
// in-progress, receiving, unknown, null and any future value — is
// non-terminal: an outbound leg without a final status for StuckAfter is
// what stuck exists to surface.
var DefaultTerminalStatuses = []string{
	"busy", "canceled", "completed", "deleted", "delivered", "delivery-unknown",
	"failed", "no-answer", "read", "received", "sent", "undelivered",
}

// classifier answers the two status questions of the rules without
// allocating: the sets are a handful of strings, so a linear scan beats a map.
type classifier struct {
	alert    []string
	terminal []string
}

func newClassifier(r Rules) classifier {
	term := r.TerminalStatuses
	if term == nil {
		term = DefaultTerminalStatuses
	}
	return classifier{alert: r.AlertStatuses, terminal: term}
}

func contains(set []string, s string) bool {
	for _, x := range set {
		if x == s {
			return true
		}
	}
	return false
}

func (c classifier) isAlert(s string) bool { return contains(c.alert, s) }

func (c classifier) isTerminal(s string) bool {
	return contains(c.terminal, s) || contains(c.alert, s)
}
