package proxysim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The simulator also serves FetchMessage of Twilio's 2010-04-01 API
// (GET /2010-04-01/Accounts/{AC}/Messages/{SM}.json), the resource behind an
// interaction's inbound or outbound leg, so that monitord can ask why a
// message failed. Like everything else it is derived, not stored: a Message
// SID opens back into its interaction's key and leg, the message's status is
// the leg's status, and the error code of a failed or undelivered message is
// drawn from the seed, weighted like real traffic. Only codes set through
// SetMessageError are stored.

// EndpointMessage is FetchMessage on the 2010-04-01 API. It is not a Proxy
// endpoint: its requests are counted under Key{EndpointMessage, ""}.
const EndpointMessage Endpoint = "Message"

// messagesPrefix starts every FetchMessage path.
const messagesPrefix = "/2010-04-01/Accounts/"

// messageError is a code and its Twilio error message, as the Message
// resource carries them.
type messageError struct {
	code    int
	message string
	weight  int
}

// failedErrors are drawn for a leg that ends "failed": Twilio could not send
// it at all (opted out, invalid number, unverified sender).
var failedErrors = []messageError{
	{21610, "Attempt to send to unsubscribed recipient", 35},
	{21211, "Invalid 'To' Phone Number", 15},
	{21614, "'To' number is not a valid mobile number", 10},
	{30032, "Toll-Free Number Has Not Been Verified", 10},
	{30034, "Message from an Unregistered Number", 10},
	{30008, "Unknown error", 20},
}

// undeliveredErrors are drawn for a leg that ends "undelivered": the carrier
// did not deliver it. Unreachable handsets and carrier filtering dominate.
var undeliveredErrors = []messageError{
	{30003, "Unreachable destination handset", 30},
	{30007, "Carrier violation", 25},
	{30005, "Unknown destination handset", 15},
	{30006, "Landline or unreachable carrier", 12},
	{30008, "Unknown error", 12},
	{30034, "Message from an Unregistered Number", 6},
}

// pick draws from a weighted table with the uniform u in [0, 1).
func pick(table []messageError, u float64) messageError {
	total := 0
	for _, e := range table {
		total += e.weight
	}
	x := int(u * float64(total))
	for _, e := range table {
		if x < e.weight {
			return e
		}
		x -= e.weight
	}
	return table[len(table)-1]
}

// legKind is the sealing kind of a leg's Message SID.
func legKind(leg Leg) byte {
	if leg == LegInbound {
		return kindInboundMessage
	}
	return kindOutboundMessage
}

// MessageSID returns the SID of the Message behind one leg of an
// interaction, as its listings show it in inbound_resource_sid or
// outbound_resource_sid.
func (s *Sim) MessageSID(interactionSID string, leg Leg) (string, error) {
	if leg != LegInbound && leg != LegOutbound {
		return "", fmt.Errorf("message sid: leg %q is not inbound or outbound", leg)
	}
	k, ok := s.seal.parseSID("KI", kindInteraction, interactionSID)
	if !ok {
		return "", fmt.Errorf("message sid: interaction %s: %w", interactionSID, ErrNotFound)
	}
	return s.seal.sid("SM", legKind(leg), k), nil
}

// SetMessageError pins the error code and message that the Message behind
// one leg of an interaction carries while that leg is failed or undelivered,
// replacing the drawn one: tests use it to fail a burst of messages with
// one code.
func (s *Sim) SetMessageError(interactionSID string, leg Leg, code int, message string) error {
	sid, err := s.MessageSID(interactionSID, leg)
	if err != nil {
		return fmt.Errorf("set message error: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ed.messageErrors[sid] = messageError{code: code, message: message}
	return nil
}

// SetMessageFaults injects faults into FetchMessage responses only, on top
// of the faults that every request gets: a Proxy API that works next to a
// Messages API that fails or is slow.
func (s *Sim) SetMessageFaults(f Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.msgFaults = f
}

func (s *Sim) messageFaults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.msgFaults
}

// serveMessage answers a request under /2010-04-01/Accounts/: FetchMessage,
// or Twilio's 404 body for anything else.
func (s *Sim) serveMessage(w http.ResponseWriter, r *http.Request, rest string, all Faults) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.writeError(w, http.StatusMethodNotAllowed, codeBadMethod, "Method not allowed", 0)
		return
	}
	if !s.admit(w, route{ep: EndpointMessage}) {
		return
	}
	if s.injectFault(w, all) {
		return
	}
	f := s.messageFaults()
	if !s.sleepLatency(r, f) || s.injectFault(w, f) {
		return
	}
	account, sid, ok := strings.Cut(rest, "/Messages/")
	sid, json := strings.CutSuffix(sid, ".json")
	if !ok || !json || account != s.creds.AccountSID || strings.Contains(sid, "/") {
		s.notFound(w, r)
		return
	}
	body, found := s.renderMessage(nil, sid)
	if !found {
		s.notFound(w, r)
		return
	}
	s.writeBody(w, r, body, f)
}

// renderMessage renders the Message sid as it is now; false if no leg of a
// live interaction carries that SID.
func (s *Sim) renderMessage(dst []byte, sid string) ([]byte, bool) {
	leg := LegOutbound
	k, ok := s.seal.parseSID("SM", kindOutboundMessage, sid)
	if !ok {
		leg = LegInbound
		if k, ok = s.seal.parseSID("SM", kindInboundMessage, sid); !ok {
			return dst, false
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	it, _, ok := s.interactionAt(k, now)
	if !ok {
		return dst, false
	}
	in, out := s.legs(&it, now)
	st, direction := out, "outbound-api"
	// Numbers: the outbound leg goes from the Proxy number to the
	// participant; the inbound leg came from the sending participant to
	// its Proxy number.
	ph := phoneHash(s.o.Seed, k)
	if leg == LegInbound {
		if it.inPart < 0 {
			return dst, false // the listing shows no inbound resource
		}
		st, direction = in, "inbound"
		ik := k
		ik.part = uint8(it.inPart)
		ph = phoneHash(s.o.Seed, ik)
	}
	var me messageError
	if st.status == "failed" || st.status == "undelivered" {
		if pinned, ok := s.ed.messageErrors[sid]; ok {
			me = pinned
		} else {
			table := undeliveredErrors
			if st.status == "failed" {
				table = failedErrors
			}
			me = pick(table, unitFloat(hashKey(s.o.Seed, k, 0xe440+uint64(legKind(leg)))))
		}
	}

	uri := messagesPrefix + s.creds.AccountSID + "/Messages/" + sid
	dst = append(dst, `{"account_sid":`...)
	dst = appendJSONString(dst, s.creds.AccountSID)
	dst = append(dst, `,"api_version":"2010-04-01","body":"`...)
	dst = appendBodyText(dst, it.body)
	dst = append(dst, `","date_created":`...)
	dst = appendRFC2822(dst, it.created)
	dst = append(dst, `,"date_sent":`...)
	switch st.status {
	case "queued", "accepted", "scheduled", "sending", "canceled":
		dst = append(dst, "null"...)
	default:
		dst = appendRFC2822(dst, min(it.created+1, st.at))
	}
	dst = append(dst, `,"date_updated":`...)
	dst = appendRFC2822(dst, max(it.created, st.at))
	dst = append(dst, `,"direction":"`...)
	dst = append(dst, direction...)
	dst = append(dst, `","error_code":`...)
	if me.code != 0 {
		dst = strconv.AppendInt(dst, int64(me.code), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"error_message":`...)
	if me.message != "" {
		dst = appendJSONString(dst, me.message)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"from":"`...)
	if leg == LegInbound {
		dst = appendIdentifier(dst, ph)
	} else {
		dst = appendProxyIdentifier(dst, ph)
	}
	dst = append(dst, `","messaging_service_sid":"`...)
	dst = s.seal.appendSID(dst, "MG", kindMessagingService, ixKey{svc: k.svc})
	dst = append(dst, `","num_media":"0","num_segments":"1","price":`...)
	if direction == "outbound-api" && st.status != "queued" && st.status != "sending" {
		dst = append(dst, `"-0.00790"`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"price_unit":"USD","sid":"`...)
	dst = append(dst, sid...)
	dst = append(dst, `","status":`...)
	dst = appendJSONString(dst, st.status)
	dst = append(dst, `,"subresource_uris":{"media":"`...)
	dst = append(dst, uri...)
	dst = append(dst, `/Media.json","feedback":"`...)
	dst = append(dst, uri...)
	dst = append(dst, `/Feedback.json"},"to":"`...)
	if leg == LegInbound {
		dst = appendProxyIdentifier(dst, ph)
	} else {
		dst = appendIdentifier(dst, ph)
	}
	dst = append(dst, `","uri":"`...)
	dst = append(dst, uri...)
	return append(dst, `.json"}`...), true
}

// appendRFC2822 appends sec as a quoted "Fri, 24 May 2019 17:18:27 +0000":
// the 2010-04-01 API's date format, unlike Proxy's RFC 3339.
func appendRFC2822(dst []byte, sec int64) []byte {
	dst = append(dst, '"')
	dst = time.Unix(sec, 0).UTC().AppendFormat(dst, "Mon, 02 Jan 2006 15:04:05 -0700")
	return append(dst, '"')
}
