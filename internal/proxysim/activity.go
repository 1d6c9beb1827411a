package proxysim

import (
	"math"
	"time"
)

// The activity world (Options.Activity) replaces the fixed schedule of
// interactions with what a real Proxy Service looks like: at any moment most
// sessions are quiet and a few are in a conversation. It is computed, not
// stored, like the rest of the world:
//
//   - Time is cut into slots of Activity.Window from an origin before every
//     session of the world. In each slot after its first, a session starts a
//     burst with probability Activity.Share, decided by a hash of (session,
//     slot); in the slot it is created in, it always starts one (a session
//     is opened to talk).
//   - A burst is a conversation: a few messages, each relayed from one
//     participant to another (an interaction on the receiver's list with an
//     inbound leg) or sent by the application through the API (no inbound
//     leg), the gaps between them drawn from an exponential distribution.
//   - Message k of the burst in slot j is interaction index j<<8 | k of its
//     receiver, so a listing is the walk of a session's slots, and a key
//     opens back into its burst without a table.
//   - Each message's outbound leg moves queued → sending → sent → delivered,
//     undelivered or failed after delays drawn from distributions (receipts
//     log-normal), a share of undelivered receipts arriving late: 30 minutes
//     to 2 hours after sent by default, as carriers do.
//
// A session's date_last_interaction is the creation time of its newest
// message: it moves with new interactions only, never with a status.

// Activity shapes the bursty world. Zero fields take the defaults noted.
type Activity struct {
	// Share is the probability that a session starts a burst in a slot of
	// Window: about that share of the sessions is active in any Window
	// (default 0.05 per 10m).
	Share  float64
	Window time.Duration
	// MinMessages and MaxMessages bound a burst's messages, drawn uniformly
	// (defaults 2 and 8; at most 255).
	MinMessages, MaxMessages int
	// ReplyGap is the mean gap between two messages of a burst, drawn from
	// an exponential distribution cut at 4× the mean (default 30s).
	ReplyGap time.Duration
	// APIShare is the share of messages the application sends through the
	// API rather than a participant (default 0.2; negative: none).
	APIShare float64
	// History is how long before Epoch the sessions open at Epoch were
	// created, each uniformly within it (default 6h): their earlier bursts
	// are the backlog.
	History time.Duration

	// SendDelay and SentDelay are the mean delays queued → sending and
	// sending → sent (exponential, plus one second; defaults 1s and 2s).
	SendDelay, SentDelay time.Duration
	// ReceiptMedian is the median delay sent → delivered or undelivered,
	// log-normal with σ = 1 and cut at 10 minutes (default 8s). A failed
	// message fails SendDelay after it was queued: Twilio refuses it
	// before it reaches a carrier.
	ReceiptMedian time.Duration
	// LateShare of undelivered receipts arrive uniformly between LateMin
	// and LateMax after sent (defaults 0.25, 30m and 2h; negative share:
	// none).
	LateShare        float64
	LateMin, LateMax time.Duration
}

// The defaults of Activity, in one place for the docs and the tests.
const (
	DefaultActivityShare  = 0.05
	DefaultActivityWindow = 10 * time.Minute
)

// activity is Activity with defaults applied, in seconds.
type activity struct {
	share              float64
	window             int64
	minMsg, maxMsg     int
	replyGap           float64
	apiShare           float64
	history            int64
	sendDelay, sentDel float64
	receiptMu          float64 // ln of the median in seconds
	lateShare          float64
	lateMin, lateMax   int64
	origin             int64 // start of slot 0
	maxSpan            int64 // most seconds from a burst's first message to its last
}

func newActivity(a Activity, epoch int64) *activity {
	d := func(v, def time.Duration) float64 {
		if v <= 0 {
			v = def
		}
		return v.Seconds()
	}
	x := &activity{
		share:     a.Share,
		minMsg:    a.MinMessages,
		maxMsg:    a.MaxMessages,
		replyGap:  d(a.ReplyGap, 30*time.Second),
		apiShare:  a.APIShare,
		sendDelay: d(a.SendDelay, time.Second),
		sentDel:   d(a.SentDelay, 2*time.Second),
		receiptMu: math.Log(d(a.ReceiptMedian, 8*time.Second)),
		lateShare: a.LateShare,
		window:    int64(d(a.Window, DefaultActivityWindow)),
		history:   int64(d(a.History, 6*time.Hour)),
		lateMin:   int64(d(a.LateMin, 30*time.Minute)),
		lateMax:   int64(d(a.LateMax, 2*time.Hour)),
	}
	if x.share <= 0 {
		x.share = DefaultActivityShare
	}
	if x.minMsg <= 0 {
		x.minMsg = 2
	}
	if x.maxMsg <= 0 {
		x.maxMsg = max(8, x.minMsg)
	}
	x.maxMsg = min(max(x.maxMsg, x.minMsg), 255)
	x.minMsg = min(x.minMsg, x.maxMsg)
	if x.apiShare == 0 {
		x.apiShare = 0.2
	}
	if x.lateShare == 0 {
		x.lateShare = 0.25
	}
	x.window = max(x.window, 1)
	x.lateMax = max(x.lateMax, x.lateMin)
	x.origin = epoch - x.history - x.window
	x.maxSpan = int64(x.maxMsg-1) * (1 + int64(4*x.replyGap))
	return x
}

// slot is the slot holding unix second t (clamped to 0).
func (a *activity) slot(t int64) int64 { return max(t-a.origin, 0) / a.window }

func (a *activity) slotStart(j int64) int64 { return a.origin + j*a.window }

// firstBurstDelay bounds the seconds from a session's creation to its first
// message (plus one). That burst may start after its slot ends.
const firstBurstDelay = 30

// maxSlot bounds slot numbers: they must fit in 23 bits of an index.
const maxSlot = addedFlag>>8 - 1

// burst is one conversation of a session.
type burst struct {
	n    int
	at   [255]int64
	from [255]int16 // sender participant; -1 for the application (API)
	to   [255]uint8
}

// burstAt generates session ses's burst in slot j; false if it has none.
func (s *Sim) burstAt(ses session, j int64, b *burst) bool {
	a := s.act
	first := a.slot(ses.created)
	if j < first || j > maxSlot {
		return false
	}
	k := ses.key
	k.idx = uint32(j)
	h := hashKey(s.o.Seed, k, 0xb0257)
	start := a.slotStart(j) + int64(h>>32)%a.window
	if j == first {
		start = ses.created + 1 + int64(h>>32)%firstBurstDelay
	} else if unitFloat(h) >= a.share {
		return false
	}
	r := newRNG(s.o.Seed, h)
	b.n = a.minMsg + r.intn(a.maxMsg-a.minMsg+1)
	np := ses.participants
	sender := r.intn(np)
	t := start
	for m := 0; m < b.n; m++ {
		if m > 0 {
			t += 1 + int64(min(r.exp(a.replyGap), 4*a.replyGap))
			// Mostly turns: the other side answers; sometimes the
			// same side writes twice.
			if np > 1 && r.float() < 0.8 {
				sender = (sender + 1 + r.intn(np-1)) % np
			}
		}
		b.at[m] = t
		receiver := sender
		if np > 1 {
			receiver = (sender + 1 + r.intn(np-1)) % np
		}
		b.to[m] = uint8(receiver)
		b.from[m] = -1
		if np > 1 && r.float() >= a.apiShare {
			b.from[m] = int16(sender)
		}
	}
	return true
}

// exp draws from an exponential distribution with the given mean.
func (r *rng) exp(mean float64) float64 { return -math.Log(1-r.float()) * mean }

// normal draws from the standard normal distribution (Box-Muller).
func (r *rng) normal() float64 {
	u1, u2 := 1-r.float(), r.float()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// limit is the last instant at which session ses takes interactions, as of
// now.
func (ses session) limit(now int64) int64 {
	if ses.closed != 0 && ses.closed < now {
		return ses.closed
	}
	return now
}

// eachGenerated calls fn, in index order, for every generated interaction of
// participant p created by now (deleted ones included), with its index,
// creation time and inbound participant (-1: none; only the activity world
// says, otherwise -2: derive it from the index).
func (s *Sim) eachGenerated(p participant, now int64, fn func(idx uint32, created int64, inPart int)) {
	if s.act == nil {
		n := p.generated(now)
		for i := 0; i < n; i++ {
			fn(uint32(i), p.createdAt(i), -2)
		}
		return
	}
	lim := p.ses.limit(now)
	if lim < p.ses.created {
		return
	}
	var b burst
	for j := s.act.slot(p.ses.created); j <= min(s.act.slot(lim), maxSlot); j++ {
		if !s.burstAt(p.ses, j, &b) {
			continue
		}
		for m := 0; m < b.n; m++ {
			if b.at[m] > lim {
				break
			}
			if b.to[m] == p.key.part {
				fn(uint32(j)<<8|uint32(m), b.at[m], int(b.from[m]))
			}
		}
	}
}

// generatedAt returns the creation time and inbound participant of generated
// interaction k of participant p as of now; false if it does not exist (yet).
func (s *Sim) generatedAt(p participant, k ixKey, now int64) (created int64, inPart int, ok bool) {
	if s.act == nil {
		if int(k.idx) >= p.generated(now) {
			return 0, 0, false
		}
		return p.createdAt(int(k.idx)), -2, true
	}
	var b burst
	j, m := int64(k.idx>>8), int(k.idx&0xff)
	if !s.burstAt(p.ses, j, &b) || m >= b.n || b.to[m] != k.part || b.at[m] > p.ses.limit(now) {
		return 0, 0, false
	}
	return b.at[m], int(b.from[m]), true
}

// lastGenerated is when session ses's newest generated interaction was
// created, as of now (0 if none yet).
func (s *Sim) lastGenerated(ses session, now int64) int64 {
	var last int64
	if s.act == nil {
		for p := 0; p < ses.participants; p++ {
			pt := s.participantOf(ses, uint8(p))
			if n := pt.generated(now); n > 0 {
				last = max(last, pt.createdAt(n-1))
			}
		}
		return last
	}
	lim := ses.limit(now)
	if lim < ses.created {
		return 0
	}
	var b burst
	first := s.act.slot(ses.created)
	// Walk back from now: a burst of slot j ends before the start of slot
	// j+1 plus the longest burst (the first burst up to firstBurstDelay
	// later), so once that is behind the newest found, no earlier slot can
	// hold a newer one.
	for j := min(s.act.slot(lim), maxSlot); j >= first; j-- {
		if last != 0 && s.act.slotStart(j+1)+s.act.maxSpan+firstBurstDelay <= last {
			break
		}
		if !s.burstAt(ses, j, &b) {
			continue
		}
		for m := b.n - 1; m >= 0; m-- {
			if b.at[m] <= lim {
				last = max(last, b.at[m])
				break
			}
		}
	}
	return last
}

// planActivity fills an activity-world interaction's outbound leg from the
// Activity's delay distributions.
func (s *Sim) planActivity(it *interaction, r *rng) {
	a := s.act
	u := r.float()
	stuck, fail := s.o.StuckRate, s.o.FailureRate
	t := it.created
	push := func(status string) {
		it.out[it.nout] = step{t, status}
		it.nout++
	}
	delay := func(mean float64) int64 { return 1 + int64(min(r.exp(mean), 10*mean)) }
	push("queued")
	if u < stuck/2 {
		return
	}
	t += delay(a.sendDelay)
	push("sending")
	if u < stuck {
		return
	}
	if u < stuck+fail/2 {
		t += delay(a.sendDelay)
		push("failed")
		return
	}
	t += delay(a.sentDel)
	push("sent")
	late := r.float() < a.lateShare
	receipt := int64(math.Min(math.Exp(a.receiptMu+r.normal()), 600))
	if u < stuck+fail {
		if late {
			t += a.lateMin + int64(r.float()*float64(a.lateMax-a.lateMin))
		} else {
			t += 1 + receipt
		}
		push("undelivered")
		return
	}
	t += 1 + receipt
	push("delivered")
}
