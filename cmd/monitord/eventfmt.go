package main

import (
	"errors"
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
	return parseEvent(subject, payload).format(color)
}

// parsedEvent is an event decoded for the readable format.
type parsedEvent struct {
	subject string
	size    int
	err     error // the payload is not JSON
	kind    string
	when    time.Time
	data    event.Data
}

// parseEvent decodes what the readable format shows of an event.
func parseEvent(subject string, payload []byte) parsedEvent {
	e := parsedEvent{subject: subject, size: len(payload), kind: kindFromSubject(subject), when: time.Now()}
	ce, err := event.Decode(payload)
	if err != nil && !errors.Is(err, event.ErrData) {
		e.err = err
		return e
	}
	// A data member of an unexpected shape leaves data partly empty; the
	// line still shows the kind and time, which is the useful part.
	e.data = ce.Data
	if k, ok := ce.Kind(); ok {
		e.kind = string(k)
	}
	if !ce.Time.IsZero() {
		e.when = ce.Time
	}
	return e
}

// legChange names one leg's status change of an interaction: the status_changed
// and the failed event of one failure share it (see eventPrinter).
func (e parsedEvent) legChange() string {
	d := e.data
	return d.InteractionSID + "\x00" + d.Leg + "\x00" + d.PreviousStatus + "\x00" + d.Status
}

// format renders e as one line without a trailing newline.
func (e parsedEvent) format(color bool) string {
	if e.err != nil {
		return fmt.Sprintf("%-8s  %-16s  %s  (undecodable payload, %d bytes: %v)",
			e.when.Format("15:04:05"), e.kind, e.subject, e.size, e.err)
	}
	kind, d, when := e.kind, e.data, e.when
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
func describe(kind string, d event.Data) string {
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
	if kind == "failed" {
		b.WriteString(failedText(d))
		return b.String()
	}
	b.WriteString(interactionText(d))
	return b.String()
}

// failedText is what follows the target on a failed line, the line on-call
// reads: the interaction, leg and statuses, the error code and its meaning
// when known ("30007 message filtered by the carrier"), and
// whether the failure predates monitord's first look at the target (the
// baseline rule), which is why a fresh start shows failures at once.
func failedText(d event.Data) string {
	s := interactionText(d)
	if d.ErrorCode != 0 {
		s += "  " + reasonText(d.ErrorCode, d.ErrorMessage)
	}
	if d.Baseline {
		s += "  (baseline: already failed at the first poll)"
	}
	return s
}

// interactionText is the interaction, its leg and its statuses.
func interactionText(d event.Data) string {
	var b strings.Builder
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

func targetErrorText(kind string, d event.Data) string {
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
