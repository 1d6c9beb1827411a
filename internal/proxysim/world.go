package proxysim

import (
	"math/rand/v2"
	"slices"
	"time"
)

// The world is computed, not stored. A session's open and close times, a
// participant's interaction schedule and an interaction's whole status plan
// follow from the seed and the resource's indexes; "what is visible now" is a
// function of the clock. Only edits made through the Go API are stored (see
// edits). All world times are unix seconds: the API's dates have one-second
// resolution.

// rng is a PCG stream; a value, so generating an interaction allocates nothing.
type rng struct{ p rand.PCG }

func newRNG(a, b uint64) rng {
	var r rng
	r.p.Seed(a, b)
	return r
}

func (r *rng) float() float64 { return float64(r.p.Uint64()>>11) / (1 << 53) }
func (r *rng) intn(n int) int { return int(r.p.Uint64() % uint64(n)) }

func hashKey(seed uint64, k ixKey, salt uint64) uint64 {
	return splitmix(seed ^ salt ^ splitmix(uint64(k.svc)<<48^uint64(k.sess)<<16^uint64(k.part)) ^ uint64(k.idx)<<1)
}

func unitFloat(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func secs(d time.Duration) int64 { return max(int64(d/time.Second), 1) }

// session is one session as of some instant.
type session struct {
	key          ixKey
	created      int64
	closed       int64 // 0 while open
	closedReason string
	ttl          int64
	participants int
}

// sessionAt returns session k as of now; false if it does not exist (yet) or
// was deleted. Callers hold s.mu.
func (s *Sim) sessionAt(k ixKey, now int64) (session, bool) {
	k = k.session()
	if int(k.svc) >= s.o.Services {
		return session{}, false
	}
	if at, ok := s.ed.deletedSessions[k]; ok && at <= now {
		return session{}, false
	}
	ses := session{key: k, participants: s.o.Participants}
	var autoClose int64
	switch {
	case k.sess&addedFlag != 0:
		o, ok := s.ed.opened[k]
		if !ok {
			return session{}, false
		}
		ses.created, ses.participants = o.at, o.participants
	case int(k.sess) < s.o.Sessions && s.act != nil:
		ses.created = s.epoch - 1 - int64(hashKey(s.o.Seed, k, 0x5e55)%uint64(s.act.history))
	case int(k.sess) < s.o.Sessions:
		span := int64(s.o.Interactions) * secs(s.o.BacklogGap)
		ses.created = s.epoch - span - 600 - int64(hashKey(s.o.Seed, k, 0x5e55)%3600)
	default:
		if s.o.SessionOpenEvery <= 0 {
			return session{}, false
		}
		m := int64(k.sess) - int64(s.o.Sessions)
		ses.created = s.churnStart(k.svc) + m*secs(s.o.SessionOpenEvery)
		if s.o.SessionLifetime > 0 {
			ses.ttl = secs(s.o.SessionLifetime)
			autoClose = ses.created + ses.ttl
		}
	}
	if ses.created > now {
		return session{}, false
	}
	if at, ok := s.ed.closedSessions[k]; ok && at <= now && (autoClose == 0 || at < autoClose) {
		ses.closed, ses.closedReason = at, "api"
	} else if autoClose != 0 && autoClose <= now {
		ses.closed, ses.closedReason = autoClose, "ttl"
	}
	return ses, true
}

// sessionsCreatedBy is when the last of the sessions open at Epoch was
// created at the latest (sessionAt).
func (s *Sim) sessionsCreatedBy() int64 {
	if s.act != nil {
		return s.epoch - 1
	}
	return s.epoch - int64(s.o.Interactions)*secs(s.o.BacklogGap) - 600
}

// churnStart is when a Service's first churned session opens.
func (s *Sim) churnStart(svc uint16) int64 {
	return s.epoch + 1 + int64(hashKey(s.o.Seed, ixKey{svc: svc}, 0xc4)%uint64(secs(s.o.SessionOpenEvery)))
}

// sessionKeys lists a Service's sessions visible at now, in listing order.
func (s *Sim) sessionKeys(svc uint16, now int64) []uint64 { return s.appendSessionKeys(nil, svc, now) }

// appendSessionKeys is sessionKeys appending to keys.
func (s *Sim) appendSessionKeys(keys []uint64, svc uint16, now int64) []uint64 {
	add := func(idx uint32) {
		if _, ok := s.sessionAt(ixKey{svc: svc, sess: idx}, now); ok {
			keys = append(keys, uint64(idx))
		}
	}
	if len(s.ed.deletedSessions) == 0 && now >= s.sessionsCreatedBy() {
		// Every session open at Epoch exists: the sessions list of a
		// 10,000-session Service is asked for 100 times per refresh, and
		// the check per session was most of each page.
		keys = slices.Grow(keys, s.o.Sessions)
		for i := 0; i < s.o.Sessions; i++ {
			keys = append(keys, uint64(i))
		}
	} else {
		for i := 0; i < s.o.Sessions; i++ {
			add(uint32(i))
		}
	}
	if s.o.SessionOpenEvery > 0 && now >= s.churnStart(svc) {
		n := (now-s.churnStart(svc))/secs(s.o.SessionOpenEvery) + 1
		n = min(n, int64(addedFlag-s.o.Sessions-1))
		for m := int64(0); m < n; m++ {
			add(uint32(int64(s.o.Sessions) + m))
		}
	}
	for _, idx := range s.ed.openedBySvc[svc] {
		add(idx)
	}
	return keys
}

// participant is one participant's interaction schedule: na interactions
// every ga seconds from a0, then (when gb > 0) one every gb from b0, none
// after the session closed.
type participant struct {
	ses     session
	key     ixKey
	created int64
	a0, ga  int64
	na      int
	b0, gb  int64
}

func (s *Sim) participantOf(ses session, p uint8) participant {
	k := ses.key
	k.part = p
	pt := participant{ses: ses, key: k, created: ses.created, na: s.o.Interactions}
	h := hashKey(s.o.Seed, k, 0x9a27)
	if s.o.InteractionEvery > 0 {
		pt.gb = secs(s.o.InteractionEvery)
	}
	if int(k.sess) < s.o.Sessions {
		// Backlog: the newest is created up to one gap before Epoch.
		pt.ga = secs(s.o.BacklogGap)
		pt.a0 = s.epoch - int64(h%uint64(pt.ga)) - int64(pt.na-1)*pt.ga
		if pt.gb > 0 {
			pt.b0 = s.epoch + 1 + int64((h>>20)%uint64(pt.gb))
		}
		return pt
	}
	// A session opened after Epoch spreads its interactions over its life.
	pt.ga = secs(s.o.BacklogGap)
	if ses.ttl > 0 {
		pt.ga = max(ses.ttl/int64(pt.na+1), 1)
	}
	pt.a0 = ses.created + 1 + int64(h%uint64(pt.ga))
	if pt.gb > 0 {
		pt.b0 = pt.a0 + int64(pt.na)*pt.ga + int64((h>>20)%uint64(pt.gb))
	}
	return pt
}

// createdAt is when generated interaction i is created.
func (p participant) createdAt(i int) int64 {
	if i < p.na {
		return p.a0 + int64(i)*p.ga
	}
	return p.b0 + int64(i-p.na)*p.gb
}

// generated is how many generated interactions exist by now (deleted ones
// included).
func (p participant) generated(now int64) int {
	lim := now
	if p.ses.closed != 0 && p.ses.closed < lim {
		lim = p.ses.closed
	}
	if lim < p.a0 {
		return 0
	}
	n := int(min(int64(p.na), (lim-p.a0)/p.ga+1))
	if n == p.na && p.gb > 0 && lim >= p.b0 {
		n += int(min((lim-p.b0)/p.gb+1, addedFlag/2))
	}
	return n
}

// step is one status of a leg from a time on.
type step struct {
	at     int64
	status string
}

// interaction is one generated (or added) interaction.
type interaction struct {
	key      ixKey
	created  int64
	inPart   int // inbound participant index; -1 for API-created messages
	inStatus string
	out      [5]step
	nout     int
	deleteAt int64 // planned deletion; 0 never
	body     uint32
}

// plannedDelete decides deletion from a hash alone, so listings can skip
// deleted interactions without generating them.
func (s *Sim) plannedDelete(k ixKey, created int64) int64 {
	if s.o.DeleteRate <= 0 {
		return 0
	}
	h := hashKey(s.o.Seed, k, 0xde1e7e)
	if unitFloat(h) >= s.o.DeleteRate {
		return 0
	}
	return created + 600 + int64((h>>32)%600)
}

// genInteraction derives interaction k of a session with participants
// participants, created at created. inPart is its inbound participant as the
// activity world decides it (-1: none); -2 draws it here.
func (s *Sim) genInteraction(k ixKey, created int64, participants, inPart int) interaction {
	r := newRNG(s.o.Seed, hashKey(s.o.Seed, k, 0x1a7e))
	it := interaction{key: k, created: created, inPart: -1, body: uint32(r.p.Uint64())}
	if s.act != nil {
		if inPart >= 0 {
			it.inPart, it.inStatus = inPart, "delivered"
		}
		s.planActivity(&it, &r)
		it.deleteAt = s.plannedDelete(k, created)
		return it
	}
	if participants >= 2 && r.float() < 0.6 {
		// Relayed from another participant: Proxy received it (inbound
		// leg) and forwards it to this participant (outbound leg).
		it.inPart = (int(k.part) + 1 + r.intn(participants-1)) % participants
		it.inStatus = "delivered"
	}
	s.plan(&it, &r)
	it.deleteAt = s.plannedDelete(k, created)
	return it
}

// plan fills the outbound leg's statuses: queued → sending → sent →
// delivered like a real message, some failing on the way, some stuck.
func (s *Sim) plan(it *interaction, r *rng) {
	u := r.float()
	stuck, fail := s.o.StuckRate, s.o.FailureRate
	t := it.created
	push := func(status string) {
		it.out[it.nout] = step{t, status}
		it.nout++
	}
	push("queued")
	if u < stuck/2 {
		return
	}
	t += 1 + int64(r.intn(3))
	push("sending")
	if u < stuck {
		return
	}
	if u < stuck+fail/2 {
		t += 1 + int64(r.intn(5))
		push("failed")
		return
	}
	t += 1 + int64(r.intn(3))
	push("sent")
	t += 2 + int64(r.intn(30))
	if u < stuck+fail {
		push("undelivered")
	} else {
		push("delivered")
	}
}

// planStatus is the planned outbound status at now.
func (it *interaction) planStatus(now int64) step {
	st := it.out[0]
	for _, x := range it.out[1:it.nout] {
		if x.at > now {
			break
		}
		st = x
	}
	return st
}

// participantKeys lists the interaction indexes of p visible at now.
func (s *Sim) participantKeys(p participant, now int64, dst []uint64, hi uint64) []uint64 {
	del := s.ed.deleted
	s.eachGenerated(p, now, func(idx uint32, created int64, _ int) {
		k := p.key
		k.idx = idx
		if d := s.plannedDelete(k, created); d != 0 && d <= now {
			return
		}
		if at, ok := del[k]; ok && at <= now {
			return
		}
		dst = append(dst, hi|uint64(idx))
	})
	for _, it := range s.ed.added[p.key] {
		if it.created > now {
			continue
		}
		if at, ok := del[it.key]; ok && at <= now {
			continue
		}
		dst = append(dst, hi|uint64(it.key.idx))
	}
	return dst
}

// interactionAt returns interaction k as it is at now; false if it does not
// exist or is deleted.
func (s *Sim) interactionAt(k ixKey, now int64) (interaction, participant, bool) {
	ses, ok := s.sessionAt(k, now)
	if !ok || int(k.part) >= ses.participants {
		return interaction{}, participant{}, false
	}
	p := s.participantOf(ses, k.part)
	var it interaction
	if k.idx&addedFlag != 0 {
		found := false
		for _, a := range s.ed.added[k.participant()] {
			if a.key == k {
				it, found = a, true
				break
			}
		}
		if !found || it.created > now {
			return interaction{}, participant{}, false
		}
	} else {
		created, inPart, ok := s.generatedAt(p, k, now)
		if !ok {
			return interaction{}, participant{}, false
		}
		it = s.genInteraction(k, created, ses.participants, inPart)
	}
	if it.deleteAt != 0 && it.deleteAt <= now {
		return interaction{}, participant{}, false
	}
	if at, ok := s.ed.deleted[k]; ok && at <= now {
		return interaction{}, participant{}, false
	}
	return it, p, true
}

// legs returns the inbound and outbound status (and since when) at now,
// with edits applied: a status set through the Go API pins the leg from
// then on.
func (s *Sim) legs(it *interaction, now int64) (in, out step) {
	if it.inPart >= 0 {
		in = step{it.created, it.inStatus}
	}
	out = it.planStatus(now)
	if ov := s.ed.overrides[it.key]; ov != nil {
		if st, ok := ov.at(LegInbound, now); ok {
			in = st
		}
		if st, ok := ov.at(LegOutbound, now); ok {
			out = st
		}
	}
	return in, out
}
