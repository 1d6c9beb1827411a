package twilio

import "github.com/monitord/monitord/internal/proxy"

// The item decoders map each known key to its field. A bit per known key
// catches duplicates (see decode.go); unknown keys (links, ttl, anything
// Twilio adds later) are skipped.

// decodeInteraction decodes one item of an Interactions or
// MessageInteractions list (or a fetched interaction).
func decodeInteraction(d *scanner, it *proxy.Interaction) error {
	if err := d.openObject(); err != nil {
		return err
	}
	var seen uint32
	for first := true; ; {
		key, ok, err := d.nextKey(&first)
		if err != nil || !ok {
			return err
		}
		var bit uint32
		switch key {
		case "sid":
			bit, err = 1<<0, d.sid(&it.SID, "KI")
		case "account_sid":
			bit, err = 1<<1, d.sidCommon(&it.AccountSID, "AC", slotAccount)
		case "service_sid":
			bit, err = 1<<2, d.sidCommon(&it.ServiceSID, "KS", slotService)
		case "session_sid":
			bit, err = 1<<3, d.sidCommon(&it.SessionSID, "KC", slotSession)
		case "participant_sid":
			bit, err = 1<<4, d.sidCommon(&it.ParticipantSID, "KP", slotParticipant)
		case "data":
			bit, err = 1<<5, d.text(&it.Data)
		case "type":
			bit, err = 1<<6, d.textCommon(&it.Type, slotType)
		case "inbound_participant_sid":
			bit, err = 1<<7, d.sidCommon(&it.InboundParticipantSID, "KP", slotInParticipant)
		case "inbound_resource_sid":
			bit, err = 1<<8, d.sid(&it.InboundResourceSID, "")
		case "inbound_resource_status":
			bit, err = 1<<9, d.textCommon(&it.InboundResourceStatus, slotInStatus)
		case "inbound_resource_type":
			bit, err = 1<<10, d.textCommon(&it.InboundResourceType, slotInType)
		case "inbound_resource_url":
			bit, err = 1<<11, d.text(&it.InboundResourceURL)
		case "outbound_participant_sid":
			bit, err = 1<<12, d.sidCommon(&it.OutboundParticipantSID, "KP", slotOutParticipant)
		case "outbound_resource_sid":
			bit, err = 1<<13, d.sid(&it.OutboundResourceSID, "")
		case "outbound_resource_status":
			bit, err = 1<<14, d.textCommon(&it.OutboundResourceStatus, slotOutStatus)
		case "outbound_resource_type":
			bit, err = 1<<15, d.textCommon(&it.OutboundResourceType, slotOutType)
		case "outbound_resource_url":
			bit, err = 1<<16, d.text(&it.OutboundResourceURL)
		case "date_created":
			bit, err = 1<<17, d.date(&it.DateCreated)
		case "date_updated":
			bit, err = 1<<18, d.date(&it.DateUpdated)
		case "url":
			bit, err = 1<<19, d.text(&it.URL)
		default:
			err = d.skip(3)
		}
		if err = checkField(d, err, key, &seen, bit); err != nil {
			return err
		}
	}
}

// decodeSession decodes one item of a Service's Sessions list.
func decodeSession(d *scanner, s *proxy.Session) error {
	if err := d.openObject(); err != nil {
		return err
	}
	var seen uint32
	for first := true; ; {
		key, ok, err := d.nextKey(&first)
		if err != nil || !ok {
			return err
		}
		var bit uint32
		switch key {
		case "sid":
			bit, err = 1<<0, d.sid(&s.SID, "KC")
		case "service_sid":
			bit, err = 1<<1, d.sidCommon(&s.ServiceSID, "KS", slotService)
		case "account_sid":
			bit, err = 1<<2, d.sidCommon(&s.AccountSID, "AC", slotAccount)
		case "unique_name":
			bit, err = 1<<3, d.text(&s.UniqueName)
		case "status":
			bit, err = 1<<4, d.textCommon(&s.Status, slotInStatus)
		case "closed_reason":
			bit, err = 1<<5, d.textCommon(&s.ClosedReason, slotInType)
		case "mode":
			bit, err = 1<<6, d.textCommon(&s.Mode, slotType)
		case "date_started":
			bit, err = 1<<7, d.date(&s.DateStarted)
		case "date_ended":
			bit, err = 1<<8, d.date(&s.DateEnded)
		case "date_last_interaction":
			bit, err = 1<<9, d.date(&s.DateLastInteraction)
		case "date_expiry":
			bit, err = 1<<10, d.date(&s.DateExpiry)
		case "date_created":
			bit, err = 1<<11, d.date(&s.DateCreated)
		case "date_updated":
			bit, err = 1<<12, d.date(&s.DateUpdated)
		case "url":
			bit, err = 1<<13, d.text(&s.URL)
		default:
			err = d.skip(3)
		}
		if err = checkField(d, err, key, &seen, bit); err != nil {
			return err
		}
	}
}

// decodeParticipant decodes one item of a Session's Participants list.
func decodeParticipant(d *scanner, p *proxy.Participant) error {
	if err := d.openObject(); err != nil {
		return err
	}
	var seen uint32
	for first := true; ; {
		key, ok, err := d.nextKey(&first)
		if err != nil || !ok {
			return err
		}
		var bit uint32
		switch key {
		case "sid":
			bit, err = 1<<0, d.sid(&p.SID, "KP")
		case "session_sid":
			bit, err = 1<<1, d.sidCommon(&p.SessionSID, "KC", slotSession)
		case "service_sid":
			bit, err = 1<<2, d.sidCommon(&p.ServiceSID, "KS", slotService)
		case "account_sid":
			bit, err = 1<<3, d.sidCommon(&p.AccountSID, "AC", slotAccount)
		case "friendly_name":
			bit, err = 1<<4, d.text(&p.FriendlyName)
		case "identifier":
			bit, err = 1<<5, d.text(&p.Identifier)
		case "proxy_identifier":
			bit, err = 1<<6, d.text(&p.ProxyIdentifier)
		case "proxy_identifier_sid":
			bit, err = 1<<7, d.sid(&p.ProxyIdentifierSID, "PN")
		case "date_deleted":
			bit, err = 1<<8, d.date(&p.DateDeleted)
		case "date_created":
			bit, err = 1<<9, d.date(&p.DateCreated)
		case "date_updated":
			bit, err = 1<<10, d.date(&p.DateUpdated)
		case "url":
			bit, err = 1<<11, d.text(&p.URL)
		default:
			err = d.skip(3)
		}
		if err = checkField(d, err, key, &seen, bit); err != nil {
			return err
		}
	}
}

// checkField names the field in a decode error and rejects a known key
// seen twice in one object.
func checkField(d *scanner, err error, key string, seen *uint32, bit uint32) error {
	if err != nil {
		return inField(err, key)
	}
	if *seen&bit != 0 {
		return inField(d.fail("duplicate key"), key)
	}
	*seen |= bit
	return nil
}
