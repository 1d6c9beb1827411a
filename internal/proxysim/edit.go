package proxysim

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Leg names one side of an interaction: inbound (the message Proxy
// received from a participant) or outbound (the one it sent).
type Leg string

// The two legs.
const (
	LegInbound  Leg = "inbound"
	LegOutbound Leg = "outbound"
)

// ErrNotFound is returned by world edits that name a resource that does not
// exist (or no longer does).
var ErrNotFound = errors.New("not found")

// ErrSessionClosed is returned by AddInteraction on a closed session, which
// takes no new interactions.
var ErrSessionClosed = errors.New("session closed")

// edits are the only stored part of the world: what tests changed.
type edits struct {
	opened          map[ixKey]openedSession
	openedBySvc     map[uint16][]uint32
	nextSession     uint32
	closedSessions  map[ixKey]int64
	deletedSessions map[ixKey]int64
	added           map[ixKey][]interaction // by participant
	nextInteraction uint32
	deleted         map[ixKey]int64
	overrides       map[ixKey]*override
	targetFaults    map[string]int          // path prefix → HTTP status
	messageErrors   map[string]messageError // by Message SID
}

func (e *edits) init() {
	e.opened = map[ixKey]openedSession{}
	e.openedBySvc = map[uint16][]uint32{}
	e.closedSessions = map[ixKey]int64{}
	e.deletedSessions = map[ixKey]int64{}
	e.added = map[ixKey][]interaction{}
	e.deleted = map[ixKey]int64{}
	e.overrides = map[ixKey]*override{}
	e.targetFaults = map[string]int{}
	e.messageErrors = map[string]messageError{}
}

type openedSession struct {
	at           int64
	participants int
}

// override holds the statuses set on an interaction's legs, in time order.
type override struct{ in, out []step }

func (o *override) at(leg Leg, now int64) (step, bool) {
	steps := o.out
	if leg == LegInbound {
		steps = o.in
	}
	var st step
	ok := false
	for _, x := range steps {
		if x.at > now {
			break
		}
		st, ok = x, true
	}
	return st, ok
}

// SetStatus sets the status of one leg of an interaction from now on; the
// interaction's own plan no longer moves that leg. Any string is accepted:
// the API's statuses are an open enum.
func (s *Sim) SetStatus(interactionSID string, leg Leg, status string) error {
	if leg != LegInbound && leg != LegOutbound {
		return fmt.Errorf("set status: leg %q is not inbound or outbound", leg)
	}
	k, ok := s.seal.parseSID("KI", kindInteraction, interactionSID)
	if !ok {
		return fmt.Errorf("set status: interaction %s: %w", interactionSID, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, _, ok := s.interactionAt(k, now); !ok {
		return fmt.Errorf("set status: interaction %s: %w", interactionSID, ErrNotFound)
	}
	ov := s.ed.overrides[k]
	if ov == nil {
		ov = &override{}
		s.ed.overrides[k] = ov
	}
	if leg == LegInbound {
		ov.in = append(ov.in, step{now, status})
	} else {
		ov.out = append(ov.out, step{now, status})
	}
	return nil
}

// AddInteraction creates a message interaction for a participant now, like
// POST …/MessageInteractions: inbound fields null. With status "" its
// outbound leg follows a generated plan from queued on; otherwise it is
// pinned at status. It returns the new interaction's SID.
func (s *Sim) AddInteraction(t Target, status string) (string, error) {
	k, err := s.parseTarget(t)
	if err != nil {
		return "", fmt.Errorf("add interaction: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ses, ok := s.sessionAt(k, now)
	if !ok || int(k.part) >= ses.participants {
		return "", fmt.Errorf("add interaction: target %s: %w", t, ErrNotFound)
	}
	if ses.closed != 0 {
		return "", fmt.Errorf("add interaction: target %s: %w", t, ErrSessionClosed)
	}
	s.ed.nextInteraction++
	k.idx = addedFlag | s.ed.nextInteraction
	r := newRNG(s.o.Seed, hashKey(s.o.Seed, k, 0xadd))
	it := interaction{key: k, created: now, inPart: -1, body: uint32(r.p.Uint64())}
	if status == "" {
		s.plan(&it, &r)
	} else {
		it.out[0], it.nout = step{now, status}, 1
	}
	s.ed.added[k.participant()] = append(s.ed.added[k.participant()], it)
	return s.seal.sid("KI", kindInteraction, k), nil
}

// DeleteInteraction deletes an interaction now: it leaves every listing and
// fetching it gives 404.
func (s *Sim) DeleteInteraction(interactionSID string) error {
	k, ok := s.seal.parseSID("KI", kindInteraction, interactionSID)
	if !ok {
		return fmt.Errorf("delete interaction %s: %w", interactionSID, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, _, ok := s.interactionAt(k, now); !ok {
		return fmt.Errorf("delete interaction %s: %w", interactionSID, ErrNotFound)
	}
	s.ed.deleted[k] = now
	return nil
}

// CloseSession closes a session now, as Twilio does (status closed,
// closed_reason "api"): it and its lists remain readable, but it gets no new
// interactions.
func (s *Sim) CloseSession(serviceSID, sessionSID string) error {
	k, err := s.parseSession(serviceSID, sessionSID)
	if err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ses, ok := s.sessionAt(k, now)
	if !ok {
		return fmt.Errorf("close session %s: %w", sessionSID, ErrNotFound)
	}
	if ses.closed == 0 {
		s.ed.closedSessions[k] = now
	}
	return nil
}

// DeleteSession deletes a session now: it, its participants and their
// interactions answer 404 from then on.
func (s *Sim) DeleteSession(serviceSID, sessionSID string) error {
	k, err := s.parseSession(serviceSID, sessionSID)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, ok := s.sessionAt(k, now); !ok {
		return fmt.Errorf("delete session %s: %w", sessionSID, ErrNotFound)
	}
	s.ed.deletedSessions[k] = now
	return nil
}

// OpenSession opens a new session in a Service now with the given number of
// participants (1..255), whose interactions then appear over time like
// those of sessions the world opens itself. It returns one Target per
// participant.
func (s *Sim) OpenSession(serviceSID string, participants int) ([]Target, error) {
	if participants < 1 || participants > 255 {
		return nil, fmt.Errorf("open session: participants %d not in 1..255", participants)
	}
	k, ok := s.seal.parseSID("KS", kindService, serviceSID)
	if !ok || int(k.svc) >= s.o.Services {
		return nil, fmt.Errorf("open session: service %s: %w", serviceSID, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ed.nextSession++
	k.sess = addedFlag | s.ed.nextSession
	s.ed.opened[k] = openedSession{at: s.now(), participants: participants}
	s.ed.openedBySvc[k.svc] = append(s.ed.openedBySvc[k.svc], k.sess)
	out := make([]Target, participants)
	for i := range out {
		pk := k
		pk.part = uint8(i)
		out[i] = s.target(pk)
	}
	return out, nil
}

// Services returns the SIDs of the simulated Services.
func (s *Sim) Services() []string {
	out := make([]string, s.o.Services)
	for i := range out {
		out[i] = s.seal.sid("KS", kindService, ixKey{svc: uint16(i)})
	}
	return out
}

// Targets returns every participant of every session that exists now
// (closed ones included, deleted ones not), by Service, session and
// participant. The same Service and Session SIDs address the session-level
// Interactions list.
func (s *Sim) Targets() []Target {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	var out []Target
	for svc := 0; svc < s.o.Services; svc++ {
		for _, idx := range s.sessionKeys(uint16(svc), now) {
			k := ixKey{svc: uint16(svc), sess: uint32(idx)}
			ses, _ := s.sessionAt(k, now)
			for p := 0; p < ses.participants; p++ {
				k.part = uint8(p)
				out = append(out, s.target(k))
			}
		}
	}
	return out
}

func (s *Sim) target(k ixKey) Target {
	return Target{
		ServiceSID:     s.seal.sid("KS", kindService, ixKey{svc: k.svc}),
		SessionSID:     s.seal.sid("KC", kindSession, k.session()),
		ParticipantSID: s.seal.sid("KP", kindParticipant, k.participant()),
	}
}

func (s *Sim) parseSession(serviceSID, sessionSID string) (ixKey, error) {
	svc, ok := s.seal.parseSID("KS", kindService, serviceSID)
	if !ok {
		return ixKey{}, fmt.Errorf("service %s: %w", serviceSID, ErrNotFound)
	}
	k, ok := s.seal.parseSID("KC", kindSession, sessionSID)
	if !ok || k.svc != svc.svc {
		return ixKey{}, fmt.Errorf("session %s: %w", sessionSID, ErrNotFound)
	}
	return k, nil
}

func (s *Sim) parseTarget(t Target) (ixKey, error) {
	k, err := s.parseSession(t.ServiceSID, t.SessionSID)
	if err != nil {
		return ixKey{}, err
	}
	p, ok := s.seal.parseSID("KP", kindParticipant, t.ParticipantSID)
	if !ok || p.session() != k {
		return ixKey{}, fmt.Errorf("participant %s: %w", t.ParticipantSID, ErrNotFound)
	}
	return p, nil
}

// Change is one change the simulator made to an interaction: its creation,
// a leg's status change, or its deletion.
type Change struct {
	Time time.Time
	// Created is when the interaction was created: a failure's age when it
	// happened is Time - Created.
	Created        time.Time
	Target         Target
	InteractionSID string
	// Kind is "created", "status" or "deleted".
	Kind string
	// Leg, From and To are set for Kind "status"; To for "created" is the
	// outbound status it was created with.
	Leg      Leg
	From, To string
}

// Changes returns every change the world made up to now — generated
// statuses and edits alike — ordered by time, then interaction SID. Sessions
// deleted by DeleteSession are left out entirely (their resources are gone).
// It walks the whole world: meant for comparing a test run's events
// against, not for hot paths.
func (s *Sim) Changes() []Change { return s.ChangesSince(time.Time{}) }

// ChangesSince is Changes limited to changes after since: a long run can
// collect the record in slices without holding all of it.
func (s *Sim) ChangesSince(since time.Time) []Change {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changes(since, s.now(), func(string, string) bool { return true })
}

// Failures returns the world's failures in the window (from, to]: every
// status change of a leg into "failed" or "undelivered", ordered by time,
// then interaction SID, each with the interaction's creation time. It is the
// ground truth of detection latency, and it answers for any instant, the
// clock's future included: the generated world is known in advance (edits
// count as made so far). A zero from means from the beginning. It walks the
// whole world, without sealing a SID for anything it leaves out: about
// 50 ms of CPU for the 10,000-session activity world (docs/performance.md).
func (s *Sim) Failures(from, to time.Time) []Change {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changes(from, to.Unix(), func(kind, to string) bool {
		return kind == "status" && (to == "failed" || to == "undelivered")
	})
}

// changes walks the world as of now for the changes after since that keep
// accepts. Callers hold s.mu.
func (s *Sim) changes(since time.Time, now int64, keep func(kind, to string) bool) []Change {
	after := since.Unix()
	if since.IsZero() {
		after = math.MinInt64
	}
	var out []Change
	for svc := 0; svc < s.o.Services; svc++ {
		for _, sidx := range s.sessionKeys(uint16(svc), now) {
			ses, _ := s.sessionAt(ixKey{svc: uint16(svc), sess: uint32(sidx)}, now)
			for p := 0; p < ses.participants; p++ {
				out = s.participantChanges(s.participantOf(ses, uint8(p)), after, now, keep, out)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.InteractionSID, b.InteractionSID))
	})
	return out
}

func (s *Sim) participantChanges(p participant, after, now int64, keep func(kind, to string) bool, out []Change) []Change {
	var t Target
	emit := func(it interaction) {
		// Sealing SIDs is most of the cost of a walk that keeps few
		// changes (Failures): seal only what is kept.
		sid := ""
		ch := func(at int64, kind string, leg Leg, from, to string) {
			if at <= after || !keep(kind, to) {
				return
			}
			if sid == "" {
				if t.ServiceSID == "" {
					t = s.target(p.key)
				}
				sid = s.seal.sid("KI", kindInteraction, it.key)
			}
			out = append(out, Change{Time: time.Unix(at, 0).UTC(), Created: time.Unix(it.created, 0).UTC(),
				Target: t, InteractionSID: sid, Kind: kind, Leg: leg, From: from, To: to})
		}
		ov := s.ed.overrides[it.key]
		var deletedAt int64
		if at, ok := s.ed.deleted[it.key]; ok && at <= now {
			deletedAt = at
		}
		if it.deleteAt != 0 && it.deleteAt <= now && (deletedAt == 0 || it.deleteAt < deletedAt) {
			deletedAt = it.deleteAt
		}
		end := now
		if deletedAt != 0 {
			end = deletedAt
		}
		ch(it.created, "created", "", "", it.out[0].status)
		// Outbound: the plan until the first override, then the overrides.
		prev := it.out[0].status
		for _, x := range it.out[1:it.nout] {
			if x.at > end || (ov != nil && len(ov.out) > 0 && x.at >= ov.out[0].at) {
				break
			}
			ch(x.at, "status", LegOutbound, prev, x.status)
			prev = x.status
		}
		prevIn := it.inStatus
		if ov != nil {
			for _, x := range ov.out {
				if x.at <= end && x.status != prev {
					ch(x.at, "status", LegOutbound, prev, x.status)
					prev = x.status
				}
			}
			for _, x := range ov.in {
				if x.at <= end && x.status != prevIn {
					ch(x.at, "status", LegInbound, prevIn, x.status)
					prevIn = x.status
				}
			}
		}
		if deletedAt != 0 {
			ch(deletedAt, "deleted", "", "", "")
		}
	}
	s.eachGenerated(p, now, func(idx uint32, created int64, inPart int) {
		k := p.key
		k.idx = idx
		emit(s.genInteraction(k, created, p.ses.participants, inPart))
	})
	for _, it := range s.ed.added[p.key] {
		if it.created <= now {
			emit(it)
		}
	}
	return out
}
