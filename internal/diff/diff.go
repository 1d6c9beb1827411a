// Package diff decides which changes, each one event to publish, a complete
// listing of a target shows against what was seen before. It is pure: no
// I/O, no clock, no logger — time comes in as an argument — so every rule
// is tested by tables alone.
//
// The rules, in the order on-call cares about them:
//
//   - failed: a leg (inbound or outbound) enters an alert status from a
//     status that is not an alert status (a new interaction counts as coming
//     from nothing). Moving from one alert status to another (failed →
//     undelivered) is the same failure: status_changed only, no second page.
//     A leg that leaves the alert statuses and enters one again pages again.
//   - baseline: the first listing of a target is recorded silently, except a
//     failed event for each leg in an alert status when the interaction's
//     date_updated is within Rules.BaselineAlertRecent of now (a null
//     date_updated is not recent). Interactions already stuck at baseline
//     are marked reported without an event: history does not page.
//   - created: a SID seen for the first time after the baseline.
//   - status_changed: per leg, whenever the status string differs from the
//     last one seen. Null ("") and unknown values are statuses like any
//     other, and a status going "backwards" is just a status_changed.
//   - stuck: the outbound status is non-terminal (see Rules.TerminalStatuses;
//     null, "unknown" and any unrecognised value are non-terminal) for at
//     least Rules.StuckAfter; once per interaction, ever. An interaction
//     with a leg in an alert status is failed, not stuck.
//   - deleted: a SID of the previous snapshot is absent from the listing.
//
// Diff returns Changes, not events: it knows no target, no event id and no
// encoding. Package event turns each Change into an event with its
// deterministic id, so the id rule lives in one place and this package
// imports only the Proxy domain nouns. Changes come out ordered by
// interaction SID, then kind: created, status_changed inbound,
// status_changed outbound, failed inbound, failed outbound, stuck, deleted.
package diff

import (
	"cmp"
	"slices"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// Diff compares a complete listing of a target with prev, the snapshot of
// its previous complete listing, and returns the changes found and the
// snapshot to store for next time. now is when the listing completed: the
// stuck and baseline rules measure from it, and the events built from the
// changes carry it (event.FromChanges).
//
// Every item must have a SID, in canonical form (proxy.CanonicalSID, as
// the client decodes it): an item without one cannot be followed from one
// listing to the next, so a listing holding one is not complete, and the
// client refuses it like a failed page. Dropping the item instead would
// report the SID it had last time as deleted, and created again when it
// came back. Should such a listing reach Diff anyway, it returns no
// changes and prev as the next snapshot.
//
// Duplicate SIDs in the listing (Twilio paging can repeat an item when the
// list changes between pages) count once: the last occurrence in listing
// order wins. Diff modifies neither prev nor listing.
//
// Besides its Kind, each change carries the interaction's Type, dates and
// resource SIDs, the outbound resource URL (not on deleted: the snapshot
// does not keep URLs) and the body when r.IncludeBody; Change says which
// kind has which leg and statuses.
func Diff(prev Snapshot, listing []proxy.Interaction, now time.Time, r Rules) ([]Change, Snapshot) {
	if !identified(listing) {
		return nil, prev
	}
	now = norm(now)
	d := differ{now: now, r: r, c: newClassifier(r), baseline: !prev.Baselined, old: prev.Entries}
	order := sortedUnique(listing)
	n := len(listing)
	if order != nil {
		n = len(order)
	}
	item := func(j int) *proxy.Interaction {
		if order != nil {
			return &listing[order[j]]
		}
		return &listing[j]
	}
	old := prev.Entries
	i, j := 0, 0
	for i < len(old) || j < n {
		switch {
		case j >= n || (i < len(old) && old[i].SID < item(j).SID):
			d.cow(i)
			if !d.baseline {
				d.emit(Deleted, NoLeg, old[i].OutboundStatus, "", &old[i], nil)
			}
			i++
		case i >= len(old) || old[i].SID > item(j).SID:
			d.cow(i)
			d.add(item(j))
			j++
		default:
			d.same(i, item(j))
			i++
			j++
		}
	}
	if d.out == nil && len(old) == d.kept {
		// Nothing changed: share prev's entries rather than copy them.
		return d.changes, Snapshot{Baselined: true, Entries: old}
	}
	return d.changes, Snapshot{Baselined: true, Entries: d.out}
}

// differ carries one Diff's state. The next snapshot is built copy-on-write:
// while every entry so far is unchanged, out stays nil and kept counts the
// shared prefix of old; the first change copies that prefix.
type differ struct {
	now      time.Time
	r        Rules
	c        classifier
	baseline bool
	old      []Entry
	out      []Entry
	kept     int
	changes  []Change
}

// cow switches to a private copy of the next snapshot, because the entry
// at old[i] is about to differ from what prev holds.
func (d *differ) cow(i int) {
	if d.out == nil {
		d.out = make([]Entry, i, len(d.old)+8)
		copy(d.out, d.old[:i])
	}
}

// add handles a SID absent from prev.
func (d *differ) add(it *proxy.Interaction) {
	e := Entry{
		SID:                 it.SID,
		Type:                it.Type,
		InboundStatus:       it.InboundResourceStatus,
		OutboundStatus:      it.OutboundResourceStatus,
		InboundResourceSID:  it.InboundResourceSID,
		OutboundResourceSID: it.OutboundResourceSID,
		DateCreated:         norm(it.DateCreated),
		DateUpdated:         norm(it.DateUpdated),
		OutboundSince:       sinceFor(it, d.now),
	}
	if d.baseline {
		recent := d.r.BaselineAlertRecent > 0 && !e.DateUpdated.IsZero() &&
			d.now.Sub(e.DateUpdated) <= d.r.BaselineAlertRecent
		if recent && d.c.isAlert(e.InboundStatus) {
			d.emit(Failed, Inbound, "", e.InboundStatus, &e, it)
		}
		if recent && d.c.isAlert(e.OutboundStatus) {
			d.emit(Failed, Outbound, "", e.OutboundStatus, &e, it)
		}
		// History does not page: an interaction already stuck at baseline
		// is marked reported without an event.
		e.StuckReported = d.stuckDue(&e)
		d.out = append(d.out, e)
		return
	}
	d.emit(Created, NoLeg, "", e.OutboundStatus, &e, it)
	if d.c.isAlert(e.InboundStatus) {
		d.emit(Failed, Inbound, "", e.InboundStatus, &e, it)
	}
	if d.c.isAlert(e.OutboundStatus) {
		d.emit(Failed, Outbound, "", e.OutboundStatus, &e, it)
	}
	if d.stuckDue(&e) {
		e.StuckReported = true
		d.emit(Stuck, Outbound, "", e.OutboundStatus, &e, it)
	}
	d.out = append(d.out, e)
}

// same handles a SID present in both prev (at old[i]) and the listing.
func (d *differ) same(i int, it *proxy.Interaction) {
	oe := &d.old[i]
	e := *oe
	// Keep the stored strings when equal so the snapshot never pins the
	// listing's memory, and compare before assigning: the common case is
	// that nothing differs at all.
	if e.Type != it.Type {
		e.Type = it.Type
	}
	if e.InboundResourceSID != it.InboundResourceSID {
		e.InboundResourceSID = it.InboundResourceSID
	}
	if e.OutboundResourceSID != it.OutboundResourceSID {
		e.OutboundResourceSID = it.OutboundResourceSID
	}
	if !e.DateCreated.Equal(it.DateCreated) {
		e.DateCreated = norm(it.DateCreated)
	}
	if !e.DateUpdated.Equal(it.DateUpdated) {
		e.DateUpdated = norm(it.DateUpdated)
	}
	inChanged := e.InboundStatus != it.InboundResourceStatus
	outChanged := e.OutboundStatus != it.OutboundResourceStatus
	if inChanged {
		e.InboundStatus = it.InboundResourceStatus
	}
	if outChanged {
		e.OutboundStatus = it.OutboundResourceStatus
		e.OutboundSince = sinceFor(it, d.now)
	}
	stuck := d.stuckDue(&e)
	if stuck {
		e.StuckReported = true
	}
	if !d.baseline {
		if inChanged {
			d.emit(StatusChanged, Inbound, oe.InboundStatus, e.InboundStatus, &e, it)
		}
		if outChanged {
			d.emit(StatusChanged, Outbound, oe.OutboundStatus, e.OutboundStatus, &e, it)
		}
		if inChanged && d.c.isAlert(e.InboundStatus) && !d.c.isAlert(oe.InboundStatus) {
			d.emit(Failed, Inbound, oe.InboundStatus, e.InboundStatus, &e, it)
		}
		if outChanged && d.c.isAlert(e.OutboundStatus) && !d.c.isAlert(oe.OutboundStatus) {
			d.emit(Failed, Outbound, oe.OutboundStatus, e.OutboundStatus, &e, it)
		}
		if stuck {
			d.emit(Stuck, Outbound, "", e.OutboundStatus, &e, it)
		}
	}
	if d.out == nil && e.equal(oe) {
		d.kept++
		return
	}
	d.cow(i)
	d.out = append(d.out, e)
}

func (d *differ) stuckDue(e *Entry) bool {
	// A leg in an alert status has paged (or was history) already: the
	// interaction is failed, not stuck.
	return d.r.StuckAfter > 0 && !e.StuckReported && !d.c.isTerminal(e.OutboundStatus) &&
		!d.c.isAlert(e.InboundStatus) && d.now.Sub(e.OutboundSince) >= d.r.StuckAfter
}

func (d *differ) emit(k Kind, leg Leg, prevStatus, status string, e *Entry, it *proxy.Interaction) {
	c := Change{
		Kind:                k,
		InteractionSID:      e.SID,
		Leg:                 leg,
		Baseline:            d.baseline, // a baseline listing emits only failed
		PrevStatus:          prevStatus,
		Status:              status,
		Type:                e.Type,
		DateCreated:         e.DateCreated,
		DateUpdated:         e.DateUpdated,
		InboundResourceSID:  e.InboundResourceSID,
		OutboundResourceSID: e.OutboundResourceSID,
	}
	if it != nil {
		c.OutboundResourceURL = it.OutboundResourceURL
		if d.r.IncludeBody {
			c.Body = it.Data
		}
	}
	d.changes = append(d.changes, c)
}

// identified reports whether every item of listing has a SID.
func identified(listing []proxy.Interaction) bool {
	for i := range listing {
		if listing[i].SID == "" {
			return false
		}
	}
	return true
}

// sortedUnique returns the indexes of listing in SID order, one per SID,
// the last occurrence winning; nil when listing is already strictly sorted
// (then the identity order is meant and nothing is allocated).
func sortedUnique(listing []proxy.Interaction) []int32 {
	sorted := true
	for k := 1; k < len(listing); k++ {
		if listing[k-1].SID >= listing[k].SID {
			sorted = false
			break
		}
	}
	if sorted {
		return nil
	}
	idx := make([]int32, len(listing))
	for k := range idx {
		idx[k] = int32(k)
	}
	// Stable, so equal SIDs stay in listing order and the last one is the
	// last occurrence.
	slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(listing[a].SID, listing[b].SID) })
	w := 0
	for k := range idx {
		if k+1 < len(idx) && listing[idx[k]].SID == listing[idx[k+1]].SID {
			continue
		}
		idx[w] = idx[k]
		w++
	}
	return idx[:w]
}

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

// Terminal reports whether status is final under r: one of r's terminal
// statuses (DefaultTerminalStatuses when nil) or an alert status. It is the
// stuck rule's test, exported so that a planner deciding whether a leg is
// still in flight agrees with the diff on what "final" means.
func (r Rules) Terminal(status string) bool { return newClassifier(r).isTerminal(status) }
