// Package proxysim simulates the Twilio Proxy v1 REST API for tests, demos
// and benchmarks: the list and fetch endpoints monitord reads, with Twilio's
// envelopes, paging, errors, authentication and rate limits, over a
// deterministic world of services, sessions, participants and interactions
// whose message statuses move with time. It also serves FetchMessage of the
// 2010-04-01 API for the Message SIDs the interactions' legs carry, with
// the legs' statuses and realistic error codes (message.go), so one address
// stands in for both proxy.twilio.com and api.twilio.com.
//
// The world is a pure function of the seed and the clock: nothing is stored
// per interaction unless a test edits it, so a world of millions of
// interactions costs almost no memory, and two simulators with the same seed
// and clock serve the same bytes.
//
// By default every participant gets interactions on a fixed schedule.
// Options.Activity makes instead the bursty world that activity-driven
// polling (issue 13) is judged against (activity.go, and "Activity world" in
// docs/performance.md for the model and the benchmark's parameters): most
// sessions quiet, a few in a conversation of a few messages, status delays
// drawn from distributions with carrier receipts up to hours late, and
// date_last_interaction moving with new interactions only. Failures gives
// the ground truth of a simulated window (which leg failed when), and
// Transport serves a client in process, so a benchmark on a simulated clock
// needs neither sockets nor sleeps.
//
// Twilio's rate limit is enforced per endpoint (path template) per Service
// over a 5 s sliding window (ratelimit.go).
package proxysim

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Sim. Zero counts take the defaults noted; zero rates,
// durations and limits mean "none" unless noted.
type Options struct {
	// Seed selects the world. Same seed and same clock, same bytes.
	Seed uint64

	// Services is the number of Proxy Services (default 1).
	Services int
	// Sessions is the number of sessions per Service open at Epoch (default 1).
	Sessions int
	// Participants is the number of participants per session (default 2, max 255).
	Participants int
	// Interactions is the number of interactions per participant created
	// before Epoch, one every BacklogGap (default 10).
	Interactions int
	// BacklogGap spaces those interactions (default 1m). The newest of each
	// participant is created up to one gap before Epoch, so a few are still
	// in flight when the simulator starts.
	BacklogGap time.Duration
	// InteractionEvery adds a new interaction to every participant of an
	// open session this often after Epoch (0: the world only evolves
	// statuses).
	InteractionEvery time.Duration

	// FailureRate is the fraction of outbound messages that end failed or
	// undelivered (half each); StuckRate the fraction that stays queued or
	// sending forever; DeleteRate the fraction deleted 10–20 minutes after
	// creation.
	FailureRate, StuckRate, DeleteRate float64

	// Activity, when set, makes the world bursty (activity.go): sessions
	// quiet most of the time, conversations of a few messages now and then,
	// status delays drawn from distributions with late failures. It
	// replaces Interactions, BacklogGap and InteractionEvery; FailureRate,
	// StuckRate and DeleteRate apply to its messages.
	Activity *Activity

	// SessionOpenEvery opens a new session (with Participants participants
	// and Interactions interactions spread over its life) in every Service
	// this often after Epoch: discovery's moving target. SessionLifetime
	// closes such sessions after that long (0: never).
	SessionOpenEvery, SessionLifetime time.Duration

	// Clock is the simulator's time (default time.Now). Tests drive it.
	Clock func() time.Time
	// Epoch is "now" of the generated world (default Clock() at New,
	// truncated to the second).
	Epoch time.Time

	// Credentials accepted over HTTP Basic; empty ones are derived from
	// the seed. Both pairs are accepted.
	AccountSID, AuthToken, APIKeySID, APIKeySecret string

	// RateLimit is the number of requests allowed per endpoint per Service
	// in any RateWindow (defaults 150 and 5s: Twilio's 30/s averaged over a
	// 5 s sliding window, in bursts up to 150/s). Negative disables it.
	RateLimit  int
	RateWindow time.Duration
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up) with rate-limit 429s.
	RetryAfter time.Duration
	// MaxConcurrent caps requests in flight (Twilio's account concurrency
	// limit, code 20429); 0 is unlimited.
	MaxConcurrent int

	// Uncapped serves PageSize items per page on every list. By default the
	// Sessions and session Interactions lists serve at most 100, as their
	// descriptions in the spec say.
	Uncapped bool

	// Gzip compresses 200 bodies for clients that send Accept-Encoding:
	// gzip, as Twilio does. Off by default: it costs the simulator more CPU
	// than rendering.
	Gzip bool

	// Faults are injected from the start; SetFaults changes them.
	Faults Faults
}

// Credentials are the secrets the simulator accepts. They are test secrets.
type Credentials struct {
	AccountSID   string
	AuthToken    string
	APIKeySID    string
	APIKeySecret string
}

// Sim is a simulated Proxy API. It is an http.Handler; its methods are safe
// for concurrent use.
type Sim struct {
	o     Options
	seal  sealer
	clock func() time.Time
	epoch int64 // unix seconds
	creds Credentials

	act *activity // nil: the fixed schedule of Options.Interactions

	mu sync.RWMutex // guards the world's edits below
	ed edits

	limiter  *limiter
	inflight atomic.Int64
	stats    statsCounters

	faultMu   sync.Mutex
	faults    Faults
	msgFaults Faults // FetchMessage only, on top of faults
	faultRG   rng
}

// New returns a simulator for o.
func New(o Options) *Sim {
	if o.Services <= 0 {
		o.Services = 1
	}
	if o.Sessions <= 0 {
		o.Sessions = 1
	}
	if o.Participants <= 0 {
		o.Participants = 2
	}
	o.Participants = min(o.Participants, 255)
	o.Services = min(o.Services, math.MaxUint16)
	if o.Interactions <= 0 {
		o.Interactions = 10
	}
	if o.BacklogGap <= 0 {
		o.BacklogGap = time.Minute
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Epoch.IsZero() {
		o.Epoch = o.Clock()
	}
	if o.RateLimit == 0 {
		o.RateLimit = 150
	}
	if o.RateWindow <= 0 {
		o.RateWindow = 5 * time.Second
	}
	s := &Sim{
		o:       o,
		seal:    newSealer(o.Seed),
		clock:   o.Clock,
		epoch:   o.Epoch.Unix(),
		faults:  o.Faults,
		faultRG: newRNG(o.Seed, 0xfa017),
	}
	if o.Activity != nil {
		s.act = newActivity(*o.Activity, s.epoch)
	}
	s.ed.init()
	s.creds = Credentials{
		AccountSID: orDefault(o.AccountSID, s.seal.sid("AC", kindAccount, ixKey{})),
		// 32 hex digits, the length of Twilio's auth tokens and secrets.
		AuthToken:    orDefault(o.AuthToken, s.seal.sid("", kindAuthToken, ixKey{})),
		APIKeySID:    orDefault(o.APIKeySID, s.seal.sid("SK", kindAPIKey, ixKey{})),
		APIKeySecret: orDefault(o.APIKeySecret, s.seal.sid("", kindAPISecret, ixKey{})),
	}
	s.limiter = newLimiter(o.RateLimit, o.RateWindow)
	return s
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// Credentials returns the account SID, auth token, API key SID and secret
// the simulator accepts.
func (s *Sim) Credentials() Credentials { return s.creds }

// Epoch returns the world's epoch: interactions before it are backlog.
func (s *Sim) Epoch() time.Time { return time.Unix(s.epoch, 0).UTC() }

func (s *Sim) now() int64 { return s.clock().Unix() }

// Target is one listing the simulator serves: a participant's
// MessageInteractions, or with the same Service and Session, the session's
// Interactions. It mirrors proxy.Target without importing it, so the
// client's own tests can use the simulator without an import cycle.
type Target struct {
	ServiceSID     string
	SessionSID     string
	ParticipantSID string
}

// String returns "KS…/KC…/KP…".
func (t Target) String() string {
	return fmt.Sprintf("%s/%s/%s", t.ServiceSID, t.SessionSID, t.ParticipantSID)
}
