package proxysim

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Faults are failures injected into responses, each drawn per request from
// the seed's fault stream. Rates are fractions of requests (0..1).
type Faults struct {
	// Latency delays every response; Jitter adds up to that much more.
	Latency, Jitter time.Duration
	// ErrorRate answers 500 or 503 with a Twilio error body.
	ErrorRate float64
	// StormRate answers 429 (code 20429) regardless of the limiter, with
	// Retry-After: StormRetryAfter when that is positive.
	StormRate       float64
	StormRetryAfter time.Duration
	// HTMLRate answers 502 with an HTML page, as a proxy in front of the API
	// would.
	HTMLRate float64
	// WrongContentTypeRate answers 200 with an HTML page and Content-Type
	// text/html.
	WrongContentTypeRate float64
	// TruncateRate cuts a 200 body in half (with a matching Content-Length,
	// so the client sees well-framed but invalid JSON).
	TruncateRate float64
	// SlowBodyRate sends half of a 200 body, waits SlowBody, then sends the
	// rest.
	SlowBodyRate float64
	SlowBody     time.Duration
}

// SetFaults replaces the injected faults from the next request on.
func (s *Sim) SetFaults(f Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = f
}

// Faults returns the faults in effect.
func (s *Sim) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// SetTargetError makes every request under a target answer status (401,
// 403, 404, 429 or 5xx) with the matching Twilio error body, until called
// again with status 0. With ParticipantSID "" it covers the whole session
// (its Interactions list and every participant's).
func (s *Sim) SetTargetError(t Target, status int) error {
	if status != 0 && (status < 400 || status > 599) {
		return fmt.Errorf("set target error: status %d is not 0 or 4xx/5xx", status)
	}
	prefix := "/v1/Services/" + t.ServiceSID + "/Sessions/" + t.SessionSID
	if t.ParticipantSID != "" {
		prefix += "/Participants/" + t.ParticipantSID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.ed.targetFaults, prefix)
	} else {
		s.ed.targetFaults[prefix] = status
	}
	return nil
}

func (s *Sim) targetFault(path string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.ed.targetFaults) == 0 {
		return 0
	}
	for prefix, st := range s.ed.targetFaults {
		if path == prefix || strings.HasPrefix(path, prefix+"/") {
			return st
		}
	}
	return 0
}

// writeStatusError answers status with the error body Twilio sends for it.
func (s *Sim) writeStatusError(w http.ResponseWriter, r *http.Request, status int) {
	s.stats.faults.Add(1)
	switch {
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		s.writeError(w, status, codeAuth, "Authenticate", 0)
	case status == http.StatusNotFound:
		s.notFound(w, r)
	case status == http.StatusTooManyRequests:
		s.writeError(w, status, codeTooMany, "Too Many Requests", 0)
	default:
		// Twilio's codes for plain HTTP errors are 20000 + status.
		s.writeError(w, status, 20000+status, http.StatusText(status), 0)
	}
}

// draw returns a uniform number from the fault stream.
func (s *Sim) draw() float64 {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faultRG.float()
}

// sleepLatency waits the injected latency; false if the request was
// cancelled meanwhile.
func (s *Sim) sleepLatency(r *http.Request, f Faults) bool {
	d := f.Latency
	if f.Jitter > 0 {
		d += time.Duration(s.draw() * float64(f.Jitter))
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

const htmlPage = `<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>
`

// injectFault answers the request with an injected failure; true if it did.
func (s *Sim) injectFault(w http.ResponseWriter, f Faults) bool {
	hit := func(rate float64) bool { return rate > 0 && s.draw() < rate }
	switch {
	case hit(f.StormRate):
		s.stats.faults.Add(1)
		s.stats.rateLimited.Add(1)
		var ra int64
		if f.StormRetryAfter > 0 {
			ra = int64((f.StormRetryAfter + time.Second - 1) / time.Second)
		}
		s.writeError(w, http.StatusTooManyRequests, codeTooMany, "Too Many Requests", ra)
	case hit(f.ErrorRate):
		s.stats.faults.Add(1)
		st := http.StatusInternalServerError
		if s.draw() < 0.5 {
			st = http.StatusServiceUnavailable
		}
		s.writeError(w, st, 20000+st, http.StatusText(st), 0)
	case hit(f.HTMLRate):
		s.stats.faults.Add(1)
		writeHTML(w, http.StatusBadGateway)
	case hit(f.WrongContentTypeRate):
		s.stats.faults.Add(1)
		writeHTML(w, http.StatusOK)
	default:
		return false
	}
	return true
}

func writeHTML(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(htmlPage)))
	w.WriteHeader(status)
	w.Write([]byte(htmlPage)) //nolint:errcheck // the client went away
}

// writeBody sends a 200 JSON body, gzipped when enabled and accepted,
// truncated or slowed when a fault hits.
func (s *Sim) writeBody(w http.ResponseWriter, r *http.Request, body []byte, f Faults) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if s.o.Gzip && acceptsGzip(r) {
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed) // a valid level: no error
		zw.Write(body)                                    //nolint:errcheck // a bytes.Buffer does not fail
		zw.Close()                                        //nolint:errcheck // likewise
		body = zb.Bytes()
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	}
	if f.TruncateRate > 0 && s.draw() < f.TruncateRate {
		s.stats.faults.Add(1)
		body = body[:len(body)/2]
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if f.SlowBodyRate > 0 && f.SlowBody > 0 && s.draw() < f.SlowBodyRate {
		s.stats.faults.Add(1)
		half := len(body) / 2
		w.Write(body[:half]) //nolint:errcheck // the client went away
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		t := time.NewTimer(f.SlowBody)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		body = body[half:]
	}
	w.Write(body) //nolint:errcheck // the client went away
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if name, _, _ := strings.Cut(strings.TrimSpace(enc), ";"); strings.EqualFold(name, "gzip") {
				return true
			}
		}
	}
	return false
}
