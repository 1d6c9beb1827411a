package kvstore

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// Key space of the bucket. A target's record lives at "t.<name>", its
// pending marker at "p.<name>": the marker exists whenever the record holds
// pending events (see marker.go), so the publisher lists the small "p."
// space instead of reading every record.
const (
	recordPrefix = "t."
	markerPrefix = "p."
)

// keyName turns a target key into the last token of a KV key. KV keys allow
// [-/_=.a-zA-Z0-9]; monitord's target keys ("participant/KS…/KC…/KP…") fit
// without their dots and are kept readable for `nats kv ls`. Any other key
// (a dot would split the subject into tokens, and other bytes are refused)
// becomes "=" and its base64url encoding; a readable name never starts with
// "=", so the two forms never collide.
func keyName(key string) string {
	readable := key != "" && key[0] != '='
	for i := 0; readable && i < len(key); i++ {
		c := key[i]
		readable = c == '-' || c == '/' || c == '_' || c == '=' ||
			'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	if readable {
		return key
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// targetKey is keyName's inverse.
func targetKey(name string) (string, error) {
	if enc, ok := cutEq(name); ok {
		b, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			return "", fmt.Errorf("kv key name %q: %w", name, err)
		}
		return string(b), nil
	}
	return name, nil
}

func cutEq(s string) (string, bool) {
	if len(s) > 0 && s[0] == '=' {
		return s[1:], true
	}
	return s, false
}

// record is a target's value: its state, when it has any, and its pending
// events, in one versioned binary value so that one compare-and-set
// commits both.
//
// Encoding, version 1: version byte | flags (bit 0: the target has state;
// clear for a forgotten target whose events are still pending) | uvarint
// commitRev | uvarint markerRev | uvarint nextSeq | uvarint length + health
// (state.AppendHealth) | uvarint length + snapshot (diff's encoding) |
// uvarint count, then per event: uvarint seq | varint Unix nanoseconds when
// committed | uvarint length + ID | uvarint length + Subject | uvarint
// length + Data. Events come last so that Load stops before them.
type record struct {
	live bool
	// commitRev is the contract's Revision of the state in this value:
	// zero when the value was written by a commit (the revision is then
	// the KV revision of this very value), else the revision carried over
	// by a write that changed no state (a delete of published events,
	// poll times written on Close). Revisions are thus KV sequence
	// numbers: they only grow, also across Forget, so a writer holding a
	// revision from before a Forget can never match a later commit.
	commitRev uint64
	// markerRev is the KV revision of the pending marker that the commit
	// which added the newest of these events wrote (marker.go).
	markerRev uint64
	nextSeq   uint64
	health    []byte // state.AppendHealth encoding
	snapshot  []byte // diff.Snapshot encoding; nil when none stored
	events    []pending
}

type pending struct {
	seq uint64
	at  time.Time
	msg event.Message
}

const recordVersion = 1

// revision is the contract revision of r stored at KV revision kvRev.
func (r *record) revision(kvRev uint64) state.Revision {
	switch {
	case !r.live:
		return 0
	case r.commitRev != 0:
		return state.Revision(r.commitRev)
	}
	return state.Revision(kvRev)
}

func (r *record) size() int {
	n := 1 + 1 + 3*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(r.health) + len(r.snapshot) + binary.MaxVarintLen64
	for _, e := range r.events {
		n += 5*binary.MaxVarintLen64 + len(e.msg.ID) + len(e.msg.Subject) + len(e.msg.Data)
	}
	return n
}

func (r *record) appendTo(b []byte) []byte {
	b = append(b, recordVersion)
	var flags byte
	if r.live {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, r.commitRev)
	b = binary.AppendUvarint(b, r.markerRev)
	b = binary.AppendUvarint(b, r.nextSeq)
	b = appendBytes(b, r.health)
	b = appendBytes(b, r.snapshot)
	b = binary.AppendUvarint(b, uint64(len(r.events)))
	for _, e := range r.events {
		b = binary.AppendUvarint(b, e.seq)
		b = binary.AppendVarint(b, e.at.UnixNano())
		b = appendBytes(b, []byte(e.msg.ID))
		b = appendBytes(b, []byte(e.msg.Subject))
		b = appendBytes(b, e.msg.Data)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadRecord = errors.New("bad state record")

// decoder reads a record's fields in order; the first short or malformed
// field sets err and makes every later read return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, sharing d's memory.
func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if d.err != nil {
		return nil
	}
	if l > uint64(len(d.b)) {
		d.err = errBadRecord
		return nil
	}
	v := d.b[:l:l]
	d.b = d.b[l:]
	return v
}

// decodeRecord decodes v; with events false it stops before the pending
// events (Load needs only the state). The result shares v's memory, which
// the KV entry owns and nothing else writes.
func decodeRecord(v []byte, events bool) (record, error) {
	if len(v) < 2 || v[0] != recordVersion {
		return record{}, errBadRecord
	}
	r := record{live: v[1]&1 != 0}
	d := decoder{b: v[2:]}
	r.commitRev = d.uvarint()
	r.markerRev = d.uvarint()
	r.nextSeq = d.uvarint()
	r.health = d.bytes()
	r.snapshot = d.bytes()
	if len(r.snapshot) == 0 {
		r.snapshot = nil
	}
	n := d.uvarint()
	if d.err != nil {
		return record{}, d.err
	}
	if !events {
		return r, nil
	}
	if n > uint64(len(d.b)) { // each event takes at least one byte
		return record{}, errBadRecord
	}
	r.events = make([]pending, 0, n)
	for range n {
		var e pending
		e.seq = d.uvarint()
		e.at = time.Unix(0, d.varint()).UTC()
		e.msg.ID = string(d.bytes())
		e.msg.Subject = string(d.bytes())
		e.msg.Data = d.bytes()
		r.events = append(r.events, e)
	}
	if d.err != nil || len(d.b) != 0 {
		return record{}, errBadRecord
	}
	return r, nil
}
