package proxysim

import "strconv"

// JSON is written by hand with append: a 1000-item page is ~1 MB, and the
// simulator must serve thousands of them per minute on two cores next to the
// daemon it is testing. Field sets and formats follow the spec's schemas and
// examples: every property present, null where Twilio sends null, dates as
// "2015-07-30T20:00:00Z".

const messagesBase = "https://api.twilio.com/2010-04-01/Accounts/"

// renderer renders resources as seen at now, with URLs on base
// ("http://host:port", taken from the request so that the URLs point back
// at the simulator however it is reached). It caches the SIDs and paths of
// the session being rendered: a page's items share them, and sealing a SID
// is the bulk of the work per item.
type renderer struct {
	s    *Sim
	base string
	now  int64

	cached      bool
	ses         ixKey
	svcSID      string
	sesSID      string
	sessionPath string
	parts       []string // participant SIDs by index, filled on demand
	scratch     [34]byte
}

func (rd *renderer) session(k ixKey) {
	k = k.session()
	if rd.cached && rd.ses == k {
		return
	}
	rd.cached, rd.ses = true, k
	rd.svcSID = rd.s.seal.sid("KS", kindService, ixKey{svc: k.svc})
	rd.sesSID = rd.s.seal.sid("KC", kindSession, k)
	rd.sessionPath = rd.base + "/v1/Services/" + rd.svcSID + "/Sessions/" + rd.sesSID
	rd.parts = rd.parts[:0]
}

func (rd *renderer) partSID(k ixKey) string {
	rd.session(k)
	for len(rd.parts) <= int(k.part) {
		rd.parts = append(rd.parts, "")
	}
	if rd.parts[k.part] == "" {
		rd.parts[k.part] = rd.s.seal.sid("KP", kindParticipant, k.participant())
	}
	return rd.parts[k.part]
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendTime appends sec as a quoted "2006-01-02T15:04:05Z". It does the
// calendar arithmetic itself (Hinnant's civil_from_days): time.AppendFormat
// was a sixth of the cost of a page.
func appendTime(dst []byte, sec int64) []byte {
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	two := func(dst []byte, v int64) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }
	dst = append(dst, '"')
	dst = two(dst, y/100)
	dst = two(dst, y%100)
	dst = append(dst, '-')
	dst = two(dst, m)
	dst = append(dst, '-')
	dst = two(dst, d)
	dst = append(dst, 'T')
	dst = two(dst, rem/3600)
	dst = append(dst, ':')
	dst = two(dst, rem/60%60)
	dst = append(dst, ':')
	dst = two(dst, rem%60)
	return append(dst, 'Z', '"')
}

func appendField(dst []byte, name string) []byte {
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

func (rd *renderer) sidField(dst []byte, name, prefix string, kind byte, k ixKey) []byte {
	dst = appendField(dst, name)
	dst = append(dst, '"')
	dst = rd.s.seal.appendSID(dst, prefix, kind, k)
	return append(dst, '"', ',')
}

func strField(dst []byte, name, value string) []byte {
	dst = appendField(dst, name)
	dst = append(dst, '"')
	dst = append(dst, value...)
	return append(dst, '"', ',')
}

func (rd *renderer) sessionPathOf(dst []byte, k ixKey) []byte {
	rd.session(k)
	return append(dst, rd.sessionPath...)
}

func (rd *renderer) participantPath(dst []byte, k ixKey) []byte {
	dst = rd.sessionPathOf(dst, k)
	dst = append(dst, "/Participants/"...)
	return append(dst, rd.partSID(k)...)
}

func (rd *renderer) messageURL(dst []byte, kind byte, k ixKey) []byte {
	dst = append(dst, '"')
	dst = append(dst, messagesBase...)
	dst = append(dst, rd.s.creds.AccountSID...)
	dst = append(dst, "/Messages/"...)
	dst = rd.s.seal.appendSID(dst, "SM", kind, k)
	return append(dst, ".json\""...)
}

var bodies = [...]string{
	"Your driver is %d minutes away",
	"Order %d is out for delivery",
	"See you at gate %d",
	"Running late, %d min",
	"Thanks! Rate your trip %d/5",
	"Table for %d is ready",
}

// appendData appends the data field's value: a JSON string holding JSON.
func appendData(dst []byte, body uint32) []byte {
	dst = append(dst, `"{\"body\":\"`...)
	dst = appendBodyText(dst, body)
	return append(dst, `\"}"`...)
}

// appendBodyText appends the message text itself, which needs no escaping
// (the templates hold no quote, backslash or control character).
func appendBodyText(dst []byte, body uint32) []byte {
	t := bodies[body%uint32(len(bodies))]
	n := int64(body>>8)%9 + 1
	for i := 0; i < len(t); i++ {
		if t[i] == '%' && i+1 < len(t) && t[i+1] == 'd' {
			dst = strconv.AppendInt(dst, n, 10)
			i++
			continue
		}
		dst = append(dst, t[i])
	}
	return dst
}

// appendInteraction renders one interaction; sessionLevel selects the
// session Interactions shape (no participant_sid, session URL).
func (rd *renderer) appendInteraction(dst []byte, it *interaction, sessionLevel bool) []byte {
	k := it.key
	in, out := rd.s.legs(it, rd.now)
	updated := max(it.created, in.at, out.at)

	dst = append(dst, '{')
	dst = appendField(dst, "account_sid")
	dst = appendJSONString(dst, rd.s.creds.AccountSID)
	dst = append(dst, ',')
	dst = appendField(dst, "data")
	dst = appendData(dst, it.body)
	dst = append(dst, ',')
	dst = appendField(dst, "date_created")
	dst = appendTime(dst, it.created)
	dst = append(dst, ',')
	dst = appendField(dst, "date_updated")
	dst = appendTime(dst, updated)
	dst = append(dst, ',')
	if it.inPart >= 0 {
		ik := k
		ik.part = uint8(it.inPart)
		dst = strField(dst, "inbound_participant_sid", rd.partSID(ik))
		dst = rd.sidField(dst, "inbound_resource_sid", "SM", kindInboundMessage, k)
		dst = appendField(dst, "inbound_resource_status")
		dst = appendJSONString(dst, in.status)
		dst = append(dst, `,"inbound_resource_type":"Message","inbound_resource_url":`...)
		dst = rd.messageURL(dst, kindInboundMessage, k)
		dst = append(dst, ',')
	} else {
		// Created Message Interactions: "Always empty" in the spec,
		// sent as null — unless a test set an inbound status.
		dst = append(dst, `"inbound_participant_sid":null,"inbound_resource_sid":null,"inbound_resource_status":`...)
		if in.status == "" {
			dst = append(dst, "null"...)
		} else {
			dst = appendJSONString(dst, in.status)
		}
		dst = append(dst, `,"inbound_resource_type":null,"inbound_resource_url":null,`...)
	}
	dst = strField(dst, "outbound_participant_sid", rd.partSID(k))
	dst = rd.sidField(dst, "outbound_resource_sid", "SM", kindOutboundMessage, k)
	dst = appendField(dst, "outbound_resource_status")
	dst = appendJSONString(dst, out.status)
	dst = append(dst, `,"outbound_resource_type":"Message","outbound_resource_url":`...)
	dst = rd.messageURL(dst, kindOutboundMessage, k)
	dst = append(dst, ',')
	if !sessionLevel {
		dst = strField(dst, "participant_sid", rd.partSID(k))
	}
	rd.session(k)
	dst = strField(dst, "service_sid", rd.svcSID)
	dst = strField(dst, "session_sid", rd.sesSID)
	sid := rd.s.seal.appendSID(rd.scratch[:0], "KI", kindInteraction, k)
	dst = appendField(dst, "sid")
	dst = append(dst, '"')
	dst = append(dst, sid...)
	dst = append(dst, '"', ',')
	dst = append(dst, `"type":"message","url":"`...)
	if sessionLevel {
		dst = rd.sessionPathOf(dst, k)
		dst = append(dst, "/Interactions/"...)
	} else {
		dst = rd.participantPath(dst, k)
		dst = append(dst, "/MessageInteractions/"...)
	}
	dst = append(dst, sid...)
	return append(dst, '"', '}')
}

// lastInteraction is when the newest interaction of a session was created
// (0 if none yet).
func (rd *renderer) lastInteraction(ses session) int64 {
	last := rd.s.lastGenerated(ses, rd.now)
	for p := 0; p < ses.participants; p++ {
		pk := ses.key
		pk.part = uint8(p)
		for _, it := range rd.s.ed.added[pk] {
			if it.created <= rd.now {
				last = max(last, it.created)
			}
		}
	}
	return last
}

func (rd *renderer) appendSession(dst []byte, ses session) []byte {
	k := ses.key
	last := rd.lastInteraction(ses)
	status := "open"
	switch {
	case ses.closed != 0:
		status = "closed"
	case last != 0:
		status = "in-progress"
	}
	dst = append(dst, '{')
	dst = appendField(dst, "account_sid")
	dst = appendJSONString(dst, rd.s.creds.AccountSID)
	dst = append(dst, `,"closed_reason":`...)
	if ses.closed != 0 {
		dst = appendJSONString(dst, ses.closedReason)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"date_created":`...)
	dst = appendTime(dst, ses.created)
	dst = append(dst, `,"date_ended":`...)
	if ses.closed != 0 {
		dst = appendTime(dst, ses.closed)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"date_expiry":`...)
	if ses.ttl > 0 {
		dst = appendTime(dst, ses.created+ses.ttl)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"date_last_interaction":`...)
	if last != 0 {
		dst = appendTime(dst, last)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"date_started":`...)
	dst = appendTime(dst, ses.created)
	dst = append(dst, `,"date_updated":`...)
	dst = appendTime(dst, max(ses.created, last, ses.closed))
	dst = append(dst, `,"links":{"interactions":"`...)
	dst = rd.sessionPathOf(dst, k)
	dst = append(dst, `/Interactions","participants":"`...)
	dst = rd.sessionPathOf(dst, k)
	dst = append(dst, `/Participants"},"mode":"message-only",`...)
	rd.session(k)
	dst = strField(dst, "service_sid", rd.svcSID)
	dst = strField(dst, "sid", rd.sesSID)
	dst = append(dst, `"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","ttl":`...)
	dst = strconv.AppendInt(dst, ses.ttl, 10)
	dst = append(dst, `,"unique_name":"Order `...)
	dst = strconv.AppendUint(dst, hashKey(rd.s.o.Seed, k, 0x0de4)%1000000, 10)
	dst = append(dst, `","url":"`...)
	dst = rd.sessionPathOf(dst, k)
	return append(dst, '"', '}')
}

var friendlyNames = [...]string{"driver", "rider"}

func (rd *renderer) appendParticipant(dst []byte, ses session, p uint8) []byte {
	k := ses.key
	k.part = p
	h := phoneHash(rd.s.o.Seed, k)
	dst = append(dst, '{')
	dst = appendField(dst, "account_sid")
	dst = appendJSONString(dst, rd.s.creds.AccountSID)
	dst = append(dst, `,"date_created":`...)
	dst = appendTime(dst, ses.created)
	dst = append(dst, `,"date_deleted":null,"date_updated":`...)
	dst = appendTime(dst, ses.created)
	dst = append(dst, `,"friendly_name":"`...)
	if int(p) < len(friendlyNames) {
		dst = append(dst, friendlyNames[p]...)
	} else {
		dst = append(dst, "participant "...)
		dst = strconv.AppendInt(dst, int64(p)+1, 10)
	}
	dst = append(dst, `","identifier":"`...)
	dst = appendIdentifier(dst, h)
	dst = append(dst, `","links":{"message_interactions":"`...)
	dst = rd.participantPath(dst, k)
	dst = append(dst, `/MessageInteractions"},"proxy_identifier":"`...)
	dst = appendProxyIdentifier(dst, h)
	dst = append(dst, `",`...)
	dst = rd.sidField(dst, "proxy_identifier_sid", "PN", kindPhoneNumber, ixKey{svc: k.svc, idx: uint32(h>>32) % 64})
	rd.session(k)
	dst = strField(dst, "service_sid", rd.svcSID)
	dst = strField(dst, "session_sid", rd.sesSID)
	dst = strField(dst, "sid", rd.partSID(k))
	dst = append(dst, `"url":"`...)
	dst = rd.participantPath(dst, k)
	return append(dst, '"', '}')
}

// phoneHash seeds a participant's phone numbers (k names the participant).
func phoneHash(seed uint64, k ixKey) uint64 { return hashKey(seed, k.participant(), 0x9b07e) }

// appendIdentifier appends a participant's own number. 555-01xx numbers are
// reserved for fiction.
func appendIdentifier(dst []byte, h uint64) []byte {
	dst = append(dst, "+141555501"...)
	return append(dst, byte('0'+h%100/10), byte('0'+h%10))
}

// appendProxyIdentifier appends the Proxy number a participant talks through.
func appendProxyIdentifier(dst []byte, h uint64) []byte {
	dst = append(dst, "+162855501"...)
	return append(dst, byte('0'+(h>>16)%100/10), byte('0'+(h>>16)%10))
}

// appendError renders Twilio's error body.
func appendError(dst []byte, status, code int, msg string) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, msg)
	dst = append(dst, `,"more_info":"https://www.twilio.com/docs/errors/`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `","status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	return append(dst, '}')
}
