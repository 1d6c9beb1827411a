// Package diff decides which events a complete listing of a target produces
// against what was seen before. It is pure: no I/O, no clock, no logger —
// time comes in as an argument — so every rule is tested by tables alone.
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
}

// DefaultRules returns the documented defaults.
func DefaultRules() Rules {
	return Rules{
		AlertStatuses:       []string{"failed", "undelivered"},
		StuckAfter:          15 * time.Minute,
		BaselineAlertRecent: 15 * time.Minute,
	}
}
