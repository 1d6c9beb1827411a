package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/monitord/monitord/internal/errcode"
	"github.com/monitord/monitord/internal/event"
)

// cloudEvent is the part of a monitord CloudEvent that the readable format
// shows. Decoding is lenient on purpose: a tail built from an older or newer
// monitord still prints what it recognises, and unknown fields are ignored.
type cloudEvent struct {
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// eventData is the union of the data fields of every kind (docs/events.md).
type eventData struct {
	ServiceSID     string `json:"service_sid"`
	SessionSID     string `json:"session_sid"`
	ParticipantSID string `json:"participant_sid"`
	InteractionSID string `json:"interaction_sid"`
	Leg            string `json:"leg"`
	PreviousStatus string `json:"previous_status"`
	Status         string `json:"status"`
	ErrorCode      int    `json:"error_code"`
	ErrorMessage   string `json:"error_message"`

	// target_error / target_recovered
	Class      string `json:"class"`
	HTTPStatus int    `json:"http_status"`
	Code       int    `json:"code"`
	Message    string `json:"message"`
	Failures   int    `json:"failures"`

	// heartbeat
	Instance       string `json:"instance"`
	TargetsHealthy int    `json:"targets_healthy"`
	TargetsFailing int    `json:"targets_failing"`
	OutboxDepth    int    `json:"outbox_depth"`
}

// ANSI styles. Only used when the output is a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// kindStyle is how a kind stands out: failures are what an operator is
// looking for, so they are bold red; routine kinds stay plain.
var kindStyle = map[string]string{
	"failed":           ansiBold + ansiRed,
	"target_error":     ansiRed,
	"stuck":            ansiYellow,
	"target_recovered": ansiGreen,
	"deleted":          ansiDim,
	"heartbeat":        ansiDim,
}

// useColor reports whether w is a terminal that should get ANSI colour:
// not when it is a file or a pipe, and not when NO_COLOR (no-color.org) is
// set or TERM is "dumb".
func useColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// formatEvent renders one monitord event, as received from NATS, as a single
// readable line without a trailing newline:
//
//	14:03:07  failed            KS…c0ffee KC…a1b2c3 KP…d4e5f6  KI…0badf0 outbound  sending → undelivered  30003 the destination handset is unreachable
//
// subject is the NATS subject, used for the kind when the payload does not
// decode. tail and demo both print through it, so they look the same.
func formatEvent(subject string, payload []byte, color bool) string {
	var ce cloudEvent
	if err := json.Unmarshal(payload, &ce); err != nil {
		return fmt.Sprintf("%-8s  %-16s  %s  (undecodable payload, %d bytes: %v)",
			time.Now().Format("15:04:05"), kindFromSubject(subject), subject, len(payload), err)
	}
	var d eventData
	// A data member of an unexpected shape leaves d partly empty; the line
	// still shows the kind and time, which is the useful part.
	_ = json.Unmarshal(ce.Data, &d)

	kind := kindFromType(ce.Type)
	if kind == "" {
		kind = kindFromSubject(subject)
	}
	when := ce.Time
	if when.IsZero() {
		when = time.Now()
	}

	var b strings.Builder
	b.WriteString(when.Local().Format("15:04:05"))
	b.WriteString("  ")
	style := ""
	if color {
		style = kindStyle[kind]
	}
	if style != "" {
		b.WriteString(style)
	}
	fmt.Fprintf(&b, "%-16s", kind)
	if style != "" {
		b.WriteString(ansiReset)
	}
	b.WriteString("  ")
	b.WriteString(strings.TrimRight(describe(kind, d), " "))
	return b.String()
}

// describe is the part of the line after the kind.
func describe(kind string, d eventData) string {
	if kind == "heartbeat" {
		return fmt.Sprintf("instance %s  %d healthy, %d failing, outbox %d",
			orDash(d.Instance), d.TargetsHealthy, d.TargetsFailing, d.OutboxDepth)
	}
	var b strings.Builder
	b.WriteString(shortSID(d.ServiceSID))
	if d.SessionSID != "" {
		b.WriteString(" " + shortSID(d.SessionSID))
	}
	if d.ParticipantSID != "" {
		b.WriteString(" " + shortSID(d.ParticipantSID))
	}
	switch kind {
	case "target_error", "target_recovered":
		b.WriteString("  ")
		b.WriteString(targetErrorText(kind, d))
		return b.String()
	}
	if d.InteractionSID != "" {
		b.WriteString("  " + shortSID(d.InteractionSID))
	}
	if d.Leg != "" {
		fmt.Fprintf(&b, " %-8s", d.Leg)
	}
	switch {
	case d.PreviousStatus != "" && d.Status != "":
		b.WriteString("  " + d.PreviousStatus + " → " + d.Status)
	case d.Status != "":
		b.WriteString("  " + d.Status)
	}
	if d.ErrorCode != 0 {
		b.WriteString("  ")
		b.WriteString(reasonText(d.ErrorCode, d.ErrorMessage))
	}
	return b.String()
}

// reasonText is a failure's code and what it means, "30007 message
// filtered by the carrier": monitord's own line for a code it knows,
// otherwise Twilio's error_message, otherwise just the code's name.
func reasonText(code int, twilioMessage string) string {
	meaning := errcode.Describe(code)
	if _, known := errcode.Lookup(code); !known && twilioMessage != "" {
		meaning = twilioMessage
	}
	return strconv.Itoa(code) + " " + meaning
}

func targetErrorText(kind string, d eventData) string {
	if kind == "target_recovered" {
		if d.Failures > 0 {
			return fmt.Sprintf("recovered after %d failed polls", d.Failures)
		}
		return "recovered"
	}
	parts := []string{orDash(d.Class)}
	if d.HTTPStatus != 0 {
		parts = append(parts, "HTTP "+strconv.Itoa(d.HTTPStatus))
	}
	if d.Code != 0 {
		parts = append(parts, "code "+strconv.Itoa(d.Code))
	}
	if d.Failures != 0 {
		parts = append(parts, strconv.Itoa(d.Failures)+" failed polls")
	}
	s := strings.Join(parts, ", ")
	if d.Message != "" {
		s += ": " + d.Message
	}
	return s
}

// shortSID keeps a SID's two-letter type and its last six hex digits: enough
// to tell targets apart on screen and to grep for in full JSON output, short
// enough that a line fits a terminal. Anything that is not a SID is kept.
func shortSID(sid string) string {
	if len(sid) != 34 {
		return sid
	}
	return sid[:2] + "…" + sid[len(sid)-6:]
}

// kindFromType maps a CloudEvents type such as
// "io.monitord.interaction.failed" to its kind, "failed".
func kindFromType(typ string) string {
	if !strings.HasPrefix(typ, "io.monitord.") {
		return ""
	}
	return typ[strings.LastIndexByte(typ, '.')+1:]
}

// kindFromSubject takes the kind from <prefix>.<kind>.…; the prefix may
// itself contain dots, so the kind is found by name rather than position.
func kindFromSubject(subject string) string {
	for _, tok := range strings.Split(subject, ".") {
		if event.Kind(tok).Valid() {
			return tok
		}
	}
	return "?"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
