package diff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Snapshot binary encoding, version 1. The snapshot is stored per target in
// bbolt today and in a NATS KV bucket when several instances share state, so
// it is compact and versioned:
//
//	version byte (1) | flags byte (bit 0: baselined) | uvarint entry count | entries
//
// and each entry, in SID order:
//
//	flags byte (bit 0 date_created set, 1 date_updated set, 2 outbound_since
//	set, 3 stuck reported) | sid | type | inbound status | outbound status |
//	inbound resource sid | outbound resource sid | the set times, each as
//	varint Unix seconds + uvarint nanoseconds
//
// A SID field is a tag byte: 0 empty, 1 packed (two prefix letters and 16
// bytes from the 32 lowercase hex digits: 18 bytes for 34), 2 literal
// (uvarint length + bytes). A type or status is a code byte: 0 literal
// (uvarint length + bytes), 1 empty, 2+ an index into a fixed table of known
// values. The tables are part of the version: changing them means version 2.
const encodingVersion = 1

const (
	flagCreated = 1 << iota
	flagUpdated
	flagSince
	flagStuck
)

var statusTable = []string{
	"accepted", "answered", "busy", "canceled", "completed", "deleted", "delivered",
	"delivery-unknown", "failed", "in-progress", "initiated", "no-answer", "queued",
	"received", "receiving", "ringing", "scheduled", "sending", "sent", "undelivered",
	"unknown", "read",
}

var typeTable = []string{"message", "voice", "unknown"}

// ErrEncoding is wrapped by every UnmarshalBinary error.
var ErrEncoding = errors.New("bad snapshot encoding")

// MarshalBinary encodes the snapshot (version 1). It never fails.
func (s Snapshot) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary appends the encoding of s to b; reusing b across calls saves
// an allocation per save.
func (s Snapshot) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	if s.Baselined {
		flags = 1
	}
	b = append(b, encodingVersion, flags)
	b = binary.AppendUvarint(b, uint64(len(s.Entries)))
	for i := range s.Entries {
		b = appendEntry(b, &s.Entries[i])
	}
	return b, nil
}

func appendEntry(b []byte, e *Entry) []byte {
	var f byte
	if !e.DateCreated.IsZero() {
		f |= flagCreated
	}
	if !e.DateUpdated.IsZero() {
		f |= flagUpdated
	}
	if !e.OutboundSince.IsZero() {
		f |= flagSince
	}
	if e.StuckReported {
		f |= flagStuck
	}
	b = append(b, f)
	b = appendSID(b, e.SID)
	b = appendCoded(b, e.Type, typeTable)
	b = appendCoded(b, e.InboundStatus, statusTable)
	b = appendCoded(b, e.OutboundStatus, statusTable)
	b = appendSID(b, e.InboundResourceSID)
	b = appendSID(b, e.OutboundResourceSID)
	for _, t := range [...]time.Time{e.DateCreated, e.DateUpdated, e.OutboundSince} {
		if !t.IsZero() {
			b = binary.AppendVarint(b, t.Unix())
			b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
		}
	}
	return b
}

func appendSID(b []byte, s string) []byte {
	if s == "" {
		return append(b, 0)
	}
	if packable(s) {
		b = append(b, 1, s[0], s[1])
		for i := 2; i < 34; i += 2 {
			b = append(b, unhex(s[i])<<4|unhex(s[i+1]))
		}
		return b
	}
	b = append(b, 2)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// packable: only SIDs that decode back to the same string are packed, so
// uppercase hex or odd lengths go literal.
func packable(s string) bool {
	if len(s) != 34 {
		return false
	}
	for i := 2; i < 34; i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func appendCoded(b []byte, s string, table []string) []byte {
	if s == "" {
		return append(b, 1)
	}
	for i, x := range table {
		if x == s {
			return append(b, byte(i+2))
		}
	}
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes a snapshot encoded by MarshalBinary. It rejects
// unknown versions, truncated or trailing data, and entries out of SID
// order, so a damaged value is an error rather than a wrong diff.
func (s *Snapshot) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if len(data) < 2 {
		return fmt.Errorf("%w: %d bytes", ErrEncoding, len(data))
	}
	if data[0] != encodingVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrEncoding, data[0], encodingVersion)
	}
	if data[1]&^1 != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrEncoding, data[1])
	}
	d.b = data[2:]
	n := d.uvarint()
	// Each entry takes at least 7 bytes: a bound on n before allocating.
	if d.err == nil && n > uint64(len(d.b)/7) {
		return fmt.Errorf("%w: %d entries in %d bytes", ErrEncoding, n, len(d.b))
	}
	out := Snapshot{Baselined: data[1]&1 != 0}
	if n > 0 {
		out.Entries = make([]Entry, n)
		d.arena.Grow(3 * 34 * int(n))
	}
	for i := range out.Entries {
		if d.err != nil {
			break
		}
		d.entry(&out.Entries[i])
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("%w: %w", ErrEncoding, d.err)
	}
	for i := 1; i < len(out.Entries); i++ {
		if out.Entries[i-1].SID >= out.Entries[i].SID {
			return fmt.Errorf("%w: entry %d: sid %q not after %q", ErrEncoding, i, out.Entries[i].SID, out.Entries[i-1].SID)
		}
	}
	*s = out
	return nil
}

type decoder struct {
	b   []byte
	err error
	// The SIDs of a snapshot are decoded into one arena, sized for the
	// snapshot's SIDs once, and the entries' SID fields slice it: one
	// allocation per snapshot instead of three per entry, which made
	// decoding the bulk of a poll's cost. A strings.Builder because a
	// string it returns is never written again, so each field can slice
	// String() as soon as its SID is written (bytes written later land
	// after it). Before issue 16 the arena was a []byte copied into a
	// string at the end, with a list of fields to point into it: two
	// more allocations and a second pass.
	arena strings.Builder
}

var (
	errShort    = errors.New("truncated")
	errOverlong = errors.New("overlong varint") // one encoding per value
)

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	if overlong(d.b[:n]) {
		d.err = errOverlong
		return 0
	}
	d.b = d.b[n:]
	return v
}

// overlong reports whether varint b (as read by binary.Uvarint or
// binary.Varint, which share the byte format) has a longer encoding than
// its value needs: its last byte carries the highest 7 bits, so it is
// zero only when those bits are, and then the byte could be left off.
// One byte is the shortest encoding of any value, 0 included. Checked
// this way rather than by encoding the value again, which was a tenth of
// the decode.
func overlong(b []byte) bool { return len(b) > 1 && b[len(b)-1] == 0 }

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	if overlong(d.b[:n]) {
		d.err = errOverlong
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) entry(e *Entry) {
	f := d.byte()
	if f&^(flagCreated|flagUpdated|flagSince|flagStuck) != 0 {
		d.err = fmt.Errorf("unknown entry flags %#x", f)
		return
	}
	d.sid(&e.SID)
	e.Type = d.coded(typeTable)
	e.InboundStatus = d.coded(statusTable)
	e.OutboundStatus = d.coded(statusTable)
	d.sid(&e.InboundResourceSID)
	d.sid(&e.OutboundResourceSID)
	e.DateCreated = d.time(f&flagCreated != 0)
	e.DateUpdated = d.time(f&flagUpdated != 0)
	e.OutboundSince = d.time(f&flagSince != 0)
	e.StuckReported = f&flagStuck != 0
}

const hexDigits = "0123456789abcdef"

// sid decodes a SID field into the arena and sets dst to it.
func (d *decoder) sid(dst *string) {
	off := d.arena.Len()
	switch d.byte() {
	case 0:
		return
	case 1:
		if d.err != nil {
			return
		}
		if len(d.b) < 18 {
			d.err = errShort
			return
		}
		var sid [34]byte
		sid[0], sid[1] = d.b[0], d.b[1]
		for i, c := range d.b[2:18] {
			sid[2+2*i], sid[3+2*i] = hexDigits[c>>4], hexDigits[c&15]
		}
		d.arena.Write(sid[:])
		d.b = d.b[18:]
	case 2:
		b := d.bytes()
		if d.err == nil && packable(string(b)) {
			d.err = errors.New("literal sid that should be packed")
		}
		if d.err == nil && len(b) == 0 {
			d.err = errors.New("empty literal sid")
		}
		d.arena.Write(b)
	default:
		if d.err == nil {
			d.err = errors.New("unknown sid tag")
		}
		return
	}
	if d.err == nil {
		*dst = d.arena.String()[off:]
	}
}

func (d *decoder) coded(table []string) string {
	c := d.byte()
	switch {
	case d.err != nil:
		return ""
	case c == 1:
		return ""
	case c == 0:
		b := d.bytes()
		// Interning: a literal that is in the table would encode as a code;
		// refusing it keeps one encoding per snapshot.
		for _, x := range table {
			if string(b) == x {
				d.err = fmt.Errorf("literal %q that should be coded", x)
			}
		}
		if d.err == nil && len(b) == 0 {
			d.err = errors.New("empty literal")
		}
		return string(b)
	case int(c)-2 < len(table):
		return table[c-2]
	default:
		d.err = fmt.Errorf("unknown code %d", c)
		return ""
	}
}

func (d *decoder) time(set bool) time.Time {
	if !set {
		return time.Time{}
	}
	sec := d.varint()
	ns := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if ns >= 1e9 {
		d.err = fmt.Errorf("nanoseconds %d out of range", ns)
		return time.Time{}
	}
	t := time.Unix(sec, int64(ns)).UTC()
	if t.IsZero() {
		d.err = errors.New("zero time encoded as set")
	}
	return t
}
