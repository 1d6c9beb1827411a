//go:build linux

package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// alertStatuses are rules.alert_statuses' defaults, as the configs here use.
var alertStatuses = map[string]bool{"failed": true, "undelivered": true}

// legKey names one leg of one interaction.
type legKey struct{ sid, leg string }

// history is what the simulator's record of changes says about one
// interaction.
type history struct {
	target  proxysim.Target
	created time.Time
	deleted time.Time           // zero if never
	steps   map[string][]stepAt // leg → statuses in time order
	seen    map[string]set      // leg → every status the leg ever had
}

type stepAt struct {
	at     time.Time
	status string
}

type set map[string]bool

// statusAt is the leg's status at t ("" before the first step).
func (h *history) statusAt(leg string, t time.Time) string {
	st := ""
	for _, s := range h.steps[leg] {
		if s.at.After(t) {
			break
		}
		st = s.status
	}
	return st
}

// reached is when the leg first had status (zero if never).
func (h *history) reached(leg, status string) time.Time {
	for _, s := range h.steps[leg] {
		if s.status == status {
			return s.at
		}
	}
	return time.Time{}
}

// final is the leg's last status.
func (h *history) final(leg string) string {
	s := h.steps[leg]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1].status
}

// histories indexes the simulator's record of changes by interaction SID.
// The inbound leg of a generated interaction is "delivered" from creation
// without a change of its own in the record; the oracle learns it from the
// events (an inbound status_changed needs a recorded inbound change).
func histories(changes []proxysim.Change) map[string]*history {
	out := map[string]*history{}
	for _, c := range changes {
		h := out[c.InteractionSID]
		if h == nil {
			h = &history{target: c.Target, steps: map[string][]stepAt{}, seen: map[string]set{"inbound": {}, "outbound": {}}}
			out[c.InteractionSID] = h
		}
		switch c.Kind {
		case "created":
			h.created = c.Time
			h.steps["outbound"] = append(h.steps["outbound"], stepAt{c.Time, c.To})
			h.seen["outbound"][c.To] = true
		case "status":
			leg := string(c.Leg)
			h.steps[leg] = append(h.steps[leg], stepAt{c.Time, c.To})
			h.seen[leg][c.To] = true
			h.seen[leg][c.From] = true
		case "deleted":
			h.deleted = c.Time
		}
	}
	return out
}

// verdict is the comparison of what a subscriber received with what the
// simulator changed.
type verdict struct {
	Events     int // interaction events received
	Required   int // events the record of changes requires
	Missing    []string
	Phantom    []string // events no change explains
	Duplicates []string
	Broken     []string // status chains with a gap or a wrong order
	Disorder   []string // per-target order violations
}

// OK reports whether nothing is wrong.
func (v verdict) OK() bool {
	return len(v.Missing)+len(v.Phantom)+len(v.Duplicates)+len(v.Broken)+len(v.Disorder) == 0
}

func (v verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d interaction events received, %d required by the simulator's record", v.Events, v.Required)
	for _, l := range []struct {
		name string
		xs   []string
	}{{"missing", v.Missing}, {"phantom", v.Phantom}, {"duplicate", v.Duplicates}, {"broken chain", v.Broken}, {"out of order", v.Disorder}} {
		if len(l.xs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%d %s:", len(l.xs), l.name)
		for i, x := range l.xs {
			if i == 10 {
				fmt.Fprintf(&b, "\n  … %d more", len(l.xs)-10)
				break
			}
			b.WriteString("\n  " + x)
		}
	}
	return b.String()
}

// compare checks the events received against the simulator's changes.
//
//   - firstStart: when monitord first started. An interaction created before
//     it is history: a created event for it would page for history.
//   - baselined: when every target had completed its first (baseline) poll.
//     Changes after it (plus a second of the simulator's resolution) must
//     all be reflected; changes before it may have been absorbed silently by
//     a baseline.
//   - skip: targets excluded from the required set (a deleted session: its
//     listing answers 404, so nothing about it can be required).
//
// The world must be frozen and every target polled after the freeze, so the
// final status of every leg is what monitord last saw.
func compare(changes []proxysim.Change, evs []received, firstStart, baselined time.Time, skip map[string]bool) verdict {
	var v verdict
	hs := histories(changes)
	cut := baselined.Add(time.Second)

	seen := map[string]int{}
	chains := map[legKey][]received{}
	created := map[string]received{}
	failed := map[legKey][]received{}
	lastTime := map[string]received{}
	for _, e := range evs {
		kind := e.Kind()
		if kind == "heartbeat" || kind == "target_error" || kind == "target_recovered" {
			continue
		}
		v.Events++
		seen[e.MsgID]++
		if seen[e.MsgID] == 2 {
			v.Duplicates = append(v.Duplicates, fmt.Sprintf("%s %s %s", e.MsgID, kind, e.CE.Data.InteractionSID))
		}
		// Per target, events arrive in the order they were committed:
		// their detection times never go backwards along the stream.
		tk := e.TargetKey()
		if p, ok := lastTime[tk]; ok && e.CE.Time.Before(p.CE.Time) {
			v.Disorder = append(v.Disorder, fmt.Sprintf("%s: seq %d (%s) after seq %d (%s)", tk,
				e.StreamSeq, e.CE.Time.Format(time.RFC3339Nano), p.StreamSeq, p.CE.Time.Format(time.RFC3339Nano)))
		}
		lastTime[tk] = e
		sid := e.CE.Data.InteractionSID
		h := hs[sid]
		if h == nil {
			v.Phantom = append(v.Phantom, fmt.Sprintf("%s about %s: the simulator never had it", kind, sid))
			continue
		}
		lk := legKey{sid, e.CE.Data.Leg}
		switch kind {
		case "created":
			if h.created.Before(firstStart.Add(-time.Second)) {
				v.Phantom = append(v.Phantom, fmt.Sprintf("created %s: created %s, before monitord first started (history)",
					sid, h.created.Format(time.RFC3339)))
			}
			created[sid] = e
		case "status_changed":
			if !h.seen[lk.leg][e.CE.Data.Status] && !(lk.leg == "inbound" && e.CE.Data.Status == "delivered") {
				v.Phantom = append(v.Phantom, fmt.Sprintf("status_changed %s %s → %q: the simulator never had that status",
					sid, lk.leg, e.CE.Data.Status))
			}
			chains[lk] = append(chains[lk], e)
		case "failed":
			if !alertStatuses[e.CE.Data.Status] || !h.seen[lk.leg][e.CE.Data.Status] {
				v.Phantom = append(v.Phantom, fmt.Sprintf("failed %s %s %q: not an alert status the simulator had", sid, lk.leg, e.CE.Data.Status))
			}
			failed[lk] = append(failed[lk], e)
		case "deleted":
			if h.deleted.IsZero() {
				v.Phantom = append(v.Phantom, fmt.Sprintf("deleted %s: the simulator never deleted it (false deleted)", sid))
			}
		default:
			v.Phantom = append(v.Phantom, fmt.Sprintf("%s %s: a kind this world never causes", kind, sid))
		}
	}

	deletedSeen := map[string]bool{}
	for _, e := range evs {
		if e.Kind() == "deleted" {
			deletedSeen[e.CE.Data.InteractionSID] = true
		}
	}
	sids := make([]string, 0, len(hs))
	for sid := range hs {
		sids = append(sids, sid)
	}
	sort.Strings(sids)
	for _, sid := range sids {
		h := hs[sid]
		if skip[h.target.String()] {
			continue
		}
		gone := !h.deleted.IsZero()
		if gone && h.deleted.After(cut) && !h.created.After(cut) {
			v.Required++
			if !deletedSeen[sid] {
				v.Missing = append(v.Missing, fmt.Sprintf("deleted %s (at %s)", sid, h.deleted.Format(time.RFC3339)))
			}
		}
		newAfterCut := h.created.After(cut)
		if newAfterCut && (!gone || h.deleted.After(h.created.Add(time.Minute))) {
			v.Required++
			if _, ok := created[sid]; !ok {
				v.Missing = append(v.Missing, fmt.Sprintf("created %s (at %s)", sid, h.created.Format(time.RFC3339)))
			}
		}
		if gone {
			continue // its last statuses may never have been listed
		}
		for _, leg := range []string{"outbound", "inbound"} {
			lk := legKey{sid, leg}
			chain := chains[lk]
			for i := 1; i < len(chain); i++ {
				if chain[i].CE.Data.PreviousStatus != chain[i-1].CE.Data.Status {
					v.Broken = append(v.Broken, fmt.Sprintf("%s %s: %q→%q then %q→%q (an event between is missing or out of order)",
						sid, leg, chain[i-1].CE.Data.PreviousStatus, chain[i-1].CE.Data.Status,
						chain[i].CE.Data.PreviousStatus, chain[i].CE.Data.Status))
				}
			}
			final := h.final(leg)
			if len(h.steps[leg]) == 0 {
				continue // the record knows nothing of this leg (generated inbound)
			}
			// The chain must start where monitord's snapshot stood: at the
			// status it first saw (created), or at a status the leg had by
			// the cut (baselined before it).
			if len(chain) > 0 {
				first := chain[0].CE.Data.PreviousStatus
				if c, ok := created[sid]; ok && leg == "outbound" {
					if first != c.CE.Data.Status {
						v.Broken = append(v.Broken, fmt.Sprintf("%s %s: created as %q, first change from %q", sid, leg, c.CE.Data.Status, first))
					}
				} else if !newAfterCut {
					if at := h.reached(leg, chain[0].CE.Data.Status); at.After(cut) {
						if r := h.reached(leg, first); r.IsZero() || r.After(cut) {
							v.Broken = append(v.Broken, fmt.Sprintf("%s %s: first change received is %q→%q, but the leg was not %q at the cut",
								sid, leg, first, chain[0].CE.Data.Status, first))
						}
					}
				}
			}
			// What monitord must have caught up with: the status at the cut
			// for an interaction it baselined, the status it first saw for
			// one it reported created.
			start, known := "", false
			if c, ok := created[sid]; ok && leg == "outbound" {
				start, known = c.CE.Data.Status, true
			} else if !newAfterCut {
				start, known = h.statusAt(leg, cut), true
			}
			if len(chain) > 0 {
				if got := chain[len(chain)-1].CE.Data.Status; got != final {
					v.Missing = append(v.Missing, fmt.Sprintf("status_changed %s %s → %q (last received → %q)", sid, leg, final, got))
				}
			} else if known && start != final {
				v.Missing = append(v.Missing, fmt.Sprintf("status_changed %s %s %q → %q", sid, leg, start, final))
			}
			if len(chain) > 0 || (known && start != final) {
				v.Required++
			}
			if alertStatuses[final] && known && !alertStatuses[start] {
				v.Required++
				if !slices.ContainsFunc(failed[lk], func(e received) bool { return e.CE.Data.Status == final }) {
					v.Missing = append(v.Missing, fmt.Sprintf("failed %s %s %q", sid, leg, final))
				}
			}
			if len(failed[lk]) > 1 {
				v.Duplicates = append(v.Duplicates, fmt.Sprintf("failed %s %s ×%d", sid, leg, len(failed[lk])))
			}
		}
	}
	return v
}
