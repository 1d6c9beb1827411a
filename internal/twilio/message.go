package twilio

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/monitord/monitord/internal/proxy"
)

// Message is what monitord reads of a Message resource: its status and why
// it failed. The body, the phone numbers and the price are never decoded:
// they are personal or useless here, and what is never held cannot leak.
//
// Twilio says ErrorCode and ErrorMessage are for people: their values for a
// given cause may change as Twilio improves its errors.
type Message struct {
	SID          string // SM… or MM…
	Status       string // open enum: queued, sent, failed, undelivered, …
	ErrorCode    int    // 0 when Twilio sets none (null)
	ErrorMessage string // "" when Twilio sets none (null)
}

// IsMessageSID reports whether sid names a Message resource (SM… for SMS,
// MM… for MMS): the only resource SIDs of an interaction's legs that
// FetchMessage can explain.
func IsMessageSID(sid string) bool { return proxy.ValidSID("SM", sid) || proxy.ValidSID("MM", sid) }

// FetchMessage fetches a Message of the client's account from the
// 2010-04-01 API (Config.MessagesBaseURL), within its own budget
// (Config.MessagesPerSecond, MessagesInFlight), with the same credentials,
// retries and bounded bodies as the Proxy calls. A Message that does not
// exist (any more) is an *APIError for which IsNotFound holds.
func (c *Client) FetchMessage(ctx context.Context, sid string) (Message, error) {
	if !IsMessageSID(sid) {
		return Message{}, fmt.Errorf("fetch message: sid %q does not match ^(SM|MM)[0-9a-fA-F]{32}$", sid)
	}
	u := c.msgPath + sid + ".json"
	body, err := c.getWithin(ctx, budget{c.msgLimits, bucketKey{}}, u)
	if err != nil {
		return Message{}, fmt.Errorf("fetch message: %w", err)
	}
	// encoding/json, not the scanner: one small document per failure is
	// no hot path. Only these four keys are kept; body, to and from are
	// skipped over unread.
	var m struct {
		SID          *string `json:"sid"`
		Status       *string `json:"status"`
		ErrorCode    *int    `json:"error_code"`
		ErrorMessage *string `json:"error_message"`
	}
	err = json.Unmarshal(body.Bytes(), &m) // copies what it keeps
	releaseBody(body)
	if err != nil {
		// The json error quotes no value, only a type or an offset.
		return Message{}, fmt.Errorf("fetch message: %w", &DecodeError{URL: redactURL(u), Offset: -1, Reason: err.Error()})
	}
	// error_message is shown to people and put in events: bounded like an
	// API error's message.
	out := Message{SID: deref(m.SID), Status: deref(m.Status), ErrorMessage: boundText(deref(m.ErrorMessage), MaxAPIMessage)}
	if m.ErrorCode != nil {
		out.ErrorCode = *m.ErrorCode
	}
	if out.SID != "" && out.SID != sid {
		return Message{}, fmt.Errorf("fetch message: %w", &DecodeError{URL: redactURL(u), Path: "sid", Offset: -1,
			Reason: "asked for " + sid + ", got " + quoteShort(out.SID)})
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
