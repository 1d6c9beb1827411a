package diff

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

func TestEncodingRoundTrip(t *testing.T) {
	s := Snapshot{Baselined: true, Entries: []Entry{
		{SID: sid(1), Type: "message", InboundStatus: "received", OutboundStatus: "delivered",
			InboundResourceSID: "SM" + strings.Repeat("ab", 16), OutboundResourceSID: "SM" + strings.Repeat("cd", 16),
			DateCreated: t0, DateUpdated: t0.Add(time.Second), OutboundSince: t0.Add(1500 * time.Millisecond), StuckReported: true},
		// Values outside the tables and SIDs that cannot be packed.
		{SID: sid(2), Type: "fax", InboundStatus: "", OutboundStatus: "brand-new",
			InboundResourceSID: "SMABCDEF" + strings.Repeat("0", 26), OutboundResourceSID: "short"},
		{SID: sid(3), DateCreated: time.Unix(-5, 7).UTC()},
	}}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Snapshot
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	b2, _ := got.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	// Packed SIDs cost 19 bytes, not 35: the whole entry stays under 90.
	one, _ := Snapshot{Entries: s.Entries[:1]}.MarshalBinary()
	if len(one) > 90 {
		t.Fatalf("one entry encodes to %d bytes", len(one))
	}
}

func TestEncodingEmpty(t *testing.T) {
	for _, s := range []Snapshot{{}, {Baselined: true}} {
		b, _ := s.MarshalBinary()
		var got Snapshot
		if err := got.UnmarshalBinary(b); err != nil || !got.Equal(s) {
			t.Fatalf("%+v: got %+v, %v", s, got, err)
		}
	}
}

func TestEncodingRejects(t *testing.T) {
	good, _ := baselined(t, []proxy.Interaction{ix(1, "received", "sent", t0), ix(2, "received", "sent", t0)}, t0, DefaultRules()).MarshalBinary()
	unsorted := Snapshot{Entries: []Entry{{SID: sid(2)}, {SID: sid(1)}}}
	ub, _ := unsorted.MarshalBinary()
	cases := map[string][]byte{
		"empty":          nil,
		"newer version":  append([]byte{2}, good[1:]...),
		"unknown flags":  append([]byte{1, 0x80}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"unsorted":       ub,
		"huge count":     {1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		// A count of 0 in two bytes: one encoding per value.
		"overlong count": {1, 1, 0x80, 0x00},
	}
	for name, b := range cases {
		var s Snapshot
		err := s.UnmarshalBinary(b)
		if !errors.Is(err, ErrEncoding) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// FuzzUnmarshal: arbitrary bytes never panic, and whatever decodes
// re-encodes to exactly the same bytes (one encoding per snapshot, so
// comparing encodings is comparing snapshots).
func FuzzUnmarshal(f *testing.F) {
	s, _ := baselinedSnapshot().MarshalBinary()
	f.Add(s)
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var dec Snapshot
		if err := dec.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := dec.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatalf("decoded %x, re-encoded %x", b, out)
		}
	})
}

func baselinedSnapshot() Snapshot {
	_, s := Diff(Snapshot{}, []proxy.Interaction{ix(1, "received", "queued", t0), ix(2, "failed", "weird", time.Time{})}, t0, DefaultRules())
	return s
}

func BenchmarkSnapshotMarshal(b *testing.B) {
	_, s := Diff(Snapshot{}, benchTarget(200), t0, DefaultRules())
	buf, _ := s.MarshalBinary()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, _ = s.AppendBinary(buf[:0])
	}
}

func BenchmarkSnapshotUnmarshal(b *testing.B) {
	_, s := Diff(Snapshot{}, benchTarget(200), t0, DefaultRules())
	buf, _ := s.MarshalBinary()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d Snapshot
		if err := d.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}
