package main

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// eventPrinter writes events to one writer, readable or as JSON lines. NATS
// delivers on its own goroutines, so writes are serialised.
//
// Readable output shows a failure once. A leg entering an alert status
// gives two events with the same statuses, status_changed then failed
// (docs/events.md); on screen the second says all the first does, and
// louder. Which statuses alert is the daemon's config, unknown here, so
// each status_changed line is held back for up to holdFor, and dropped if
// the failed of the same leg change arrives meanwhile. Both come from one
// commit, published back to back, so they arrive together; any other event
// releases the held lines first, so lines only move after failed lines of
// the same commit. JSON output prints every event as it comes.
type eventPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	color bool
	// held are status_changed lines waiting for their failed, oldest
	// first; flushTimer releases them.
	held       []heldLine
	flushTimer *time.Timer
	holdFor    time.Duration
	closed     bool // close was called: hold nothing any more
	// seen, when set, is called with each event's subject and payload after
	// it is printed (the demo counts kinds with it).
	seen func(subject string, data []byte)
	// onWriteError, when set, is called once, with p.mu held, when a write
	// fails: the reader of a pipe went away, or the disk is full. Printing
	// on into the void helps nobody; the command stops instead.
	onWriteError func(error)
	werr         error
}

// check records the first write error; p.mu is held.
func (p *eventPrinter) check(err error) {
	if err == nil || p.werr != nil {
		return
	}
	p.werr = err
	if p.onWriteError != nil {
		p.onWriteError(err)
	}
}

// writeErr is the first write error, if any.
func (p *eventPrinter) writeErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr
}

// heldLine is a status_changed line held back by eventPrinter.
type heldLine struct {
	change string // parsedEvent.legChange
	line   string
}

// defaultHoldFor is how long a status_changed line waits for its failed:
// far longer than the gap between two events of one commit, short enough
// not to be noticed on screen (each line shows the event's own time).
const defaultHoldFor = 300 * time.Millisecond

// maxHeld bounds the held lines: a burst of status changes is printed
// rather than kept.
const maxHeld = 64

func newEventPrinter(w io.Writer, asJSON bool) *eventPrinter {
	return &eventPrinter{w: w, json: asJSON, color: !asJSON && useColor(w), holdFor: defaultHoldFor}
}

// close prints the held lines and holds none from now on. The printer's
// owner calls it when it is about to write its last words, or return.
func (p *eventPrinter) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.flushLocked()
}

// flushLocked prints the held lines; p.mu is held.
func (p *eventPrinter) flushLocked() {
	if p.flushTimer != nil {
		p.flushTimer.Stop()
		p.flushTimer = nil
	}
	for _, h := range p.held {
		p.writeLocked(h.line)
	}
	p.held = p.held[:0]
}

func (p *eventPrinter) writeLocked(line string) {
	if p.werr != nil {
		return
	}
	_, err := io.WriteString(p.w, line+"\n")
	p.check(err)
}

// printReadable is print's readable half; p.mu is held.
func (p *eventPrinter) printReadable(subject string, data []byte) {
	e := parseEvent(subject, data)
	line := e.format(p.color)
	switch {
	case e.err != nil:
	case e.kind == "status_changed" && !p.closed && p.holdFor > 0:
		if len(p.held) == maxHeld {
			p.writeLocked(p.held[0].line)
			p.held = slices.Delete(p.held, 0, 1)
		}
		p.held = append(p.held, heldLine{change: e.legChange(), line: line})
		if p.flushTimer == nil {
			p.flushTimer = time.AfterFunc(p.holdFor, func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				p.flushLocked()
			})
		}
		return
	case e.kind == "failed":
		// The status_changed of this failure says nothing more: drop it.
		// The other held lines may yet meet their own failed.
		change := e.legChange()
		p.held = slices.DeleteFunc(p.held, func(h heldLine) bool { return h.change == change })
		if len(p.held) == 0 && p.flushTimer != nil {
			p.flushTimer.Stop()
			p.flushTimer = nil
		}
		p.writeLocked(line)
		return
	}
	p.flushLocked()
	p.writeLocked(line)
}

func (p *eventPrinter) print(subject string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		// One event per line whatever the publisher's formatting, so the
		// output stays valid JSON lines for jq and friends.
		line, err := compactJSON(data)
		if err != nil {
			// Not ours (someone else publishing on the subject): still one
			// valid JSON line, with the raw payload as a string.
			line, _ = json.Marshal(map[string]string{"subject": subject, "invalid_json": string(data)})
		}
		_, err = p.w.Write(append(line, '\n'))
		p.check(err)
	} else {
		p.printReadable(subject, data)
	}
	if p.seen != nil {
		p.seen(subject, data)
	}
}

func compactJSON(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
