// Package errcode explains the Twilio error codes that a failed or
// undelivered message carries, in one line each, for people: the demo, tail
// and Alertmanager annotations show them next to the code.
//
// Twilio says its error codes and messages are meant for people, not for
// program logic, and that the code given for a cause may change as it
// improves its errors. Nothing in monitord decides anything on them: they
// are shown, and used as a label to group alerts, never to choose whether an
// event fires.
package errcode

import (
	"slices"
	"strconv"
)

// Info is what monitord knows of one error code.
type Info struct {
	Code    int
	Meaning string // one line, lower case, for a person
}

// URL is Twilio's page for the code.
func (i Info) URL() string { return URL(i.Code) }

// table holds the codes that messages most often fail with. The meanings
// are monitord's own summaries; Twilio's page (URL) is the reference.
var table = map[int]string{
	21211: "the To number is not a valid phone number",
	21408: "sending to this region is not enabled on the account",
	21610: "the recipient opted out (replied STOP)",
	21612: "the To number cannot be reached from this From number",
	21614: "the To number is not a mobile number",
	30001: "the sender's message queue overflowed",
	30002: "the account is suspended",
	30003: "the destination handset is unreachable",
	30004: "the message was blocked by the recipient or the network",
	30005: "the destination number is unknown or no longer in service",
	30006: "the destination is a landline or an unreachable carrier",
	30007: "message filtered by the carrier",
	30008: "the carrier reported an unknown error",
	30009: "a segment of a multi-part message went missing",
	30010: "the message price exceeds the configured maximum",
	30032: "the toll-free sender has not been verified",
	30034: "the sender is not registered for US A2P 10DLC",
}

// Lookup returns what is known of code. ok is false for a code that is not
// in the table; Describe and URL still give something to show for it.
func Lookup(code int) (info Info, ok bool) {
	m, ok := table[code]
	return Info{Code: code, Meaning: m}, ok
}

// Describe returns the code's one-line meaning, or a neutral line naming the
// code when it is not in the table.
func Describe(code int) string {
	if m, ok := table[code]; ok {
		return m
	}
	return "Twilio error " + strconv.Itoa(code)
}

// URL returns Twilio's documentation page for code.
func URL(code int) string {
	return "https://www.twilio.com/docs/api/errors/" + strconv.Itoa(code)
}

// Codes returns every code in the table, in ascending order.
func Codes() []int {
	codes := make([]int, 0, len(table))
	for c := range table {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}
