package proxysim

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Endpoint names one endpoint of the API, as Twilio's per-endpoint rate limit
// counts them.
type Endpoint string

// The endpoints the simulator serves (all GET).
const (
	EndpointSessions            Endpoint = "Sessions"            // list a Service's sessions
	EndpointSession             Endpoint = "Session"             // fetch a session
	EndpointParticipants        Endpoint = "Participants"        // list a session's participants
	EndpointParticipant         Endpoint = "Participant"         // fetch a participant
	EndpointInteractions        Endpoint = "Interactions"        // list a session's interactions
	EndpointInteraction         Endpoint = "Interaction"         // fetch one of them
	EndpointMessageInteractions Endpoint = "MessageInteractions" // list a participant's interactions
	EndpointMessageInteraction  Endpoint = "MessageInteraction"  // fetch one of them
)

// Twilio error codes the simulator sends.
const (
	codeBadParameter = 20001 // invalid PageSize, Page or PageToken
	codeAuth         = 20003
	codeNotFound     = 20404
	codeBadMethod    = 20004
	codeTooMany      = 20429
)

// route is a parsed request path.
type route struct {
	ep      Endpoint
	service string // the Service SID, canonical (lower-case)
	key     ixKey
	ok      bool // every SID in the path names something that can exist
}

// parseRoute maps a path onto an endpoint. A path of no known shape, or of
// an unknown Service, returns ep == ""; one of a known shape whose other SIDs
// the world never issued returns ok == false (404, but still counted against
// the endpoint's limit, as Twilio counts every request).
func (s *Sim) parseRoute(path string) route {
	rest, found := strings.CutPrefix(path, "/v1/Services/")
	if !found {
		return route{}
	}
	seg := strings.Split(rest, "/")
	var rt route
	switch {
	case len(seg) == 2 && seg[1] == "Sessions":
		rt.ep = EndpointSessions
	case len(seg) == 3 && seg[1] == "Sessions":
		rt.ep = EndpointSession
	case len(seg) == 4 && seg[1] == "Sessions" && seg[3] == "Interactions":
		rt.ep = EndpointInteractions
	case len(seg) == 5 && seg[1] == "Sessions" && seg[3] == "Interactions":
		rt.ep = EndpointInteraction
	case len(seg) == 4 && seg[1] == "Sessions" && seg[3] == "Participants":
		rt.ep = EndpointParticipants
	case len(seg) == 5 && seg[1] == "Sessions" && seg[3] == "Participants":
		rt.ep = EndpointParticipant
	case len(seg) == 6 && seg[1] == "Sessions" && seg[3] == "Participants" && seg[5] == "MessageInteractions":
		rt.ep = EndpointMessageInteractions
	case len(seg) == 7 && seg[1] == "Sessions" && seg[3] == "Participants" && seg[5] == "MessageInteractions":
		rt.ep = EndpointMessageInteraction
	default:
		return route{}
	}
	svc, ok := s.seal.parseSID("KS", kindService, seg[0])
	if !ok || int(svc.svc) >= s.o.Services {
		// No such Service: 404 before the limiter, which keeps state per
		// Service and must not grow with whatever SIDs a client makes up.
		return route{}
	}
	// The limiter counts per Service, not per spelling: hex digits open
	// in either case, so key on the canonical (lower-case) SID.
	rt.service, rt.key = s.seal.sid("KS", kindService, ixKey{svc: svc.svc}), svc
	if len(seg) >= 3 {
		k, ok := s.seal.parseSID("KC", kindSession, seg[2])
		if !ok || k.svc != svc.svc {
			return rt
		}
		rt.key = k
	}
	if len(seg) >= 5 && seg[3] == "Participants" {
		k, ok := s.seal.parseSID("KP", kindParticipant, seg[4])
		if !ok || k.session() != rt.key {
			return rt
		}
		rt.key = k
	}
	var ki string
	switch rt.ep {
	case EndpointInteraction:
		ki = seg[4]
	case EndpointMessageInteraction:
		ki = seg[6]
	}
	if ki != "" {
		k, ok := s.seal.parseSID("KI", kindInteraction, ki)
		if !ok || k.session() != rt.key.session() || (rt.ep == EndpointMessageInteraction && k.participant() != rt.key) {
			return rt
		}
		rt.key = k
	}
	rt.ok = true
	return rt
}

var keysPool = sync.Pool{New: func() any { return new([]uint64) }}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// ServeHTTP serves the API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.stats.requests.Add(1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.stats.observeInFlight(n)
	if s.o.MaxConcurrent > 0 && n > int64(s.o.MaxConcurrent) {
		s.stats.concurrencyLimited.Add(1)
		s.writeError(w, http.StatusTooManyRequests, codeTooMany, "Too many concurrent requests", 0)
		return
	}
	f := s.Faults()
	if !s.sleepLatency(r, f) {
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		s.writeError(w, http.StatusUnauthorized, codeAuth, "Authenticate", 0)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, messagesPrefix); ok {
		s.serveMessage(w, r, rest, f)
		return
	}
	rt := s.parseRoute(r.URL.Path)
	if rt.ep == "" {
		s.notFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.writeError(w, http.StatusMethodNotAllowed, codeBadMethod, "Method not allowed", 0)
		return
	}
	if !s.admit(w, rt) {
		return
	}
	if s.injectFault(w, f) {
		return
	}
	if st := s.targetFault(r.URL.Path); st != 0 {
		s.writeStatusError(w, r, st)
		return
	}
	if !rt.ok {
		s.notFound(w, r)
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 4<<20 {
			bufPool.Put(bp)
		}
	}()
	body, status, code, msg := s.render((*bp)[:0], r, rt)
	*bp = body[:0]
	if status != http.StatusOK {
		s.writeError(w, status, code, msg, 0)
		return
	}
	s.writeBody(w, r, body, f)
}

func (s *Sim) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	return eq(user, s.creds.AccountSID) && eq(pass, s.creds.AuthToken) ||
		eq(user, s.creds.APIKeySID) && eq(pass, s.creds.APIKeySecret)
}

func (s *Sim) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, http.StatusNotFound, codeNotFound,
		"The requested resource "+r.URL.Path+" was not found", 0)
}

func (s *Sim) writeError(w http.ResponseWriter, status, code int, msg string, retryAfter int64) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retryAfter, 10))
	}
	body := appendError(nil, status, code, msg)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client went away; nothing to do
}

// render produces a 200 body for rt, or the error to send instead.
func (s *Sim) render(dst []byte, r *http.Request, rt route) (body []byte, status, code int, msg string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rd := renderer{s: s, base: baseURL(r), now: s.now()}
	nf := func() ([]byte, int, int, string) {
		return dst, http.StatusNotFound, codeNotFound, "The requested resource " + r.URL.Path + " was not found"
	}
	switch rt.ep {
	case EndpointSession, EndpointParticipant, EndpointParticipants, EndpointInteractions,
		EndpointInteraction, EndpointMessageInteractions, EndpointMessageInteraction:
		ses, ok := s.sessionAt(rt.key, rd.now)
		if !ok {
			return nf()
		}
		switch rt.ep {
		case EndpointSession:
			return rd.appendSession(dst, ses), http.StatusOK, 0, ""
		case EndpointParticipant:
			if int(rt.key.part) >= ses.participants {
				return nf()
			}
			return rd.appendParticipant(dst, ses, rt.key.part), http.StatusOK, 0, ""
		case EndpointInteraction, EndpointMessageInteraction:
			it, _, ok := s.interactionAt(rt.key, rd.now)
			if !ok {
				return nf()
			}
			return rd.appendInteraction(dst, &it, rt.ep == EndpointInteraction), http.StatusOK, 0, ""
		case EndpointMessageInteractions:
			if int(rt.key.part) >= ses.participants {
				return nf()
			}
		}
		return rd.list(dst, r, rt, ses)
	default: // EndpointSessions
		return rd.list(dst, r, rt, session{})
	}
}

// page is the paging request of a list call.
type page struct {
	size, index int
	after       uint64
	hasAfter    bool
}

func (s *Sim) parsePage(q url.Values, scope string) (page, string) {
	p := page{size: 50}
	if v, ok := q["PageSize"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 1000 {
			return p, "PageSize must be an integer between 1 and 1000"
		}
		p.size = n
	}
	if v, ok := q["Page"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return p, "Page must be a non-negative integer"
		}
		p.index = n
	}
	if v, ok := q["PageToken"]; ok {
		after, ok := s.seal.parsePageToken(scope, v[0])
		if !ok {
			return p, "Invalid PageToken"
		}
		p.after, p.hasAfter = after, true
	}
	return p, ""
}

// list renders one page of a listing. Paging is by key ("after the item
// with this key"), like a database cursor, so items created or deleted
// between two page requests neither shift nor repeat the rest.
func (rd *renderer) list(dst []byte, r *http.Request, rt route, ses session) ([]byte, int, int, string) {
	s := rd.s
	pg, bad := s.parsePage(r.URL.Query(), r.URL.Path)
	if bad != "" {
		return dst, http.StatusBadRequest, codeBadParameter, bad
	}
	if (rt.ep == EndpointSessions || rt.ep == EndpointInteractions) && !s.o.Uncapped {
		// "A maximum of 100 records will be returned per page", say these
		// two list descriptions, while PageSize allows 1000. meta.page_size
		// and the page URLs carry the size actually served.
		pg.size = min(pg.size, 100)
	}
	var keys []uint64
	var name string
	switch rt.ep {
	case EndpointSessions:
		name = "sessions"
		// A 10,000-session Service lists 10,000 keys for each of its 100
		// pages: reuse the slice rather than allocate 80 KB per page.
		kp := keysPool.Get().(*[]uint64)
		defer keysPool.Put(kp)
		keys = s.appendSessionKeys((*kp)[:0], rt.key.svc, rd.now)
		defer func() { *kp = keys[:0] }()
	case EndpointParticipants:
		name = "participants"
		for p := 0; p < ses.participants; p++ {
			keys = append(keys, uint64(p))
		}
	case EndpointInteractions:
		name = "interactions"
		for p := 0; p < ses.participants; p++ {
			keys = s.participantKeys(s.participantOf(ses, uint8(p)), rd.now, keys, uint64(p)<<32)
		}
	case EndpointMessageInteractions:
		name = "interactions"
		keys = s.participantKeys(s.participantOf(ses, rt.key.part), rd.now, nil, 0)
	}
	start := 0
	if pg.hasAfter {
		start, _ = slices.BinarySearch(keys, pg.after+1)
	}
	end := min(start+pg.size, len(keys))

	dst = append(dst, '{', '"')
	dst = append(dst, name...)
	dst = append(dst, `":[`...)
	for i, key := range keys[start:end] {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch rt.ep {
		case EndpointSessions:
			ses, _ := s.sessionAt(ixKey{svc: rt.key.svc, sess: uint32(key)}, rd.now)
			dst = rd.appendSession(dst, ses)
		case EndpointParticipants:
			dst = rd.appendParticipant(dst, ses, uint8(key))
		default:
			k := ses.key
			k.part, k.idx = rt.key.part, uint32(key)
			if rt.ep == EndpointInteractions {
				k.part = uint8(key >> 32)
			}
			it, _, _ := s.interactionAt(k, rd.now)
			dst = rd.appendInteraction(dst, &it, rt.ep == EndpointInteractions)
		}
	}
	dst = append(dst, `],"meta":{"first_page_url":`...)
	dst = rd.pageURL(dst, r.URL.Path, pg.size, 0, "")
	dst = append(dst, `,"key":"`...)
	dst = append(dst, name...)
	dst = append(dst, `","next_page_url":`...)
	if end < len(keys) {
		dst = rd.pageURL(dst, r.URL.Path, pg.size, pg.index+1, s.seal.pageToken(r.URL.Path, keys[end-1]))
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"page":`...)
	dst = strconv.AppendInt(dst, int64(pg.index), 10)
	dst = append(dst, `,"page_size":`...)
	dst = strconv.AppendInt(dst, int64(pg.size), 10)
	dst = append(dst, `,"previous_page_url":`...)
	switch prev := start - pg.size; {
	case start == 0 || pg.index == 0:
		dst = append(dst, "null"...)
	case prev <= 0:
		dst = rd.pageURL(dst, r.URL.Path, pg.size, pg.index-1, "")
	default:
		dst = rd.pageURL(dst, r.URL.Path, pg.size, pg.index-1, s.seal.pageToken(r.URL.Path, keys[prev-1]))
	}
	dst = append(dst, `,"url":`...)
	tok := ""
	if pg.hasAfter {
		tok = s.seal.pageToken(r.URL.Path, pg.after)
	}
	dst = rd.pageURL(dst, r.URL.Path, pg.size, pg.index, tok)
	return append(dst, '}', '}'), http.StatusOK, 0, ""
}

func (rd *renderer) pageURL(dst []byte, path string, size, index int, token string) []byte {
	dst = append(dst, '"')
	dst = append(dst, rd.base...)
	dst = append(dst, path...)
	dst = append(dst, "?PageSize="...)
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, "&Page="...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	if token != "" {
		dst = append(dst, "&PageToken="...)
		dst = append(dst, token...)
	}
	return append(dst, '"')
}

// baseURL is the scheme and host the request reached the simulator on.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
