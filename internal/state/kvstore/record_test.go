package kvstore

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
)

// Target keys map to KV key names and back, readable when they can be,
// and two different keys never share a name.
func TestKeyNameRoundTrip(t *testing.T) {
	cases := []struct{ key, name string }{
		{"participant/KS1/KC2/KP3", "participant/KS1/KC2/KP3"},
		{"a_b-c=d", "a_b-c=d"},
		{"with.dot", "=d2l0aC5kb3Q"},
		{"=d2l0aC5kb3Q", "=PWQybDBhQzVrYjNR"}, // a readable key that looks encoded
		{"space and ünïcode", "=c3BhY2UgYW5kIMO8bsOvY29kZQ"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		name := keyName(c.key)
		if name != c.name {
			t.Errorf("keyName(%q) = %q, want %q", c.key, name, c.name)
		}
		if back, err := targetKey(name); err != nil || back != c.key {
			t.Errorf("targetKey(%q) = %q, %v; want %q", name, back, err, c.key)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("%q and %q share the name %q", other, c.key, name)
		}
		seen[name] = c.key
	}
}

// A record decodes to what was encoded, and a truncated one is an error,
// never a panic or a shorter record.
func TestRecordRoundTripAndTruncation(t *testing.T) {
	r := record{live: true, commitRev: 7, markerRev: 9, nextSeq: 3, health: []byte{1, 0, 0, 0, 0, 0, 0, 0}, snapshot: []byte("snap"),
		events: []pending{{seq: 1, at: time.Unix(0, 42).UTC(), msg: event.Message{ID: "a", Subject: "s", Data: []byte("d")}}, {seq: 2, at: time.Unix(0, 43).UTC(), msg: event.Message{ID: "b"}}}}
	v := r.appendTo(nil)
	got, err := decodeRecord(v, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.live != r.live || got.commitRev != 7 || got.markerRev != 9 || got.nextSeq != 3 || string(got.snapshot) != "snap" ||
		len(got.events) != 2 || got.events[0].msg.ID != "a" || string(got.events[0].msg.Data) != "d" || !got.events[1].at.Equal(r.events[1].at) {
		t.Fatalf("round trip: %+v", got)
	}
	for n := range len(v) {
		if _, err := decodeRecord(v[:n], true); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", n, len(v))
		}
	}
}
