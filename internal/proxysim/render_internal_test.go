package proxysim

import (
	"testing"
	"time"
)

func TestAppendTimeMatchesTimeFormat(t *testing.T) {
	for _, sec := range []int64{0, 1, 86399, 86400, 951782400, 951868800, 1709251199, 4102444800, 253402300799} {
		want := `"` + time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05Z") + `"`
		if got := string(appendTime(nil, sec)); got != want {
			t.Errorf("%d: %s, want %s", sec, got, want)
		}
	}
	for sec := int64(1600000000); sec < 1900000000; sec += 86400*7 + 3607 {
		want := `"` + time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05Z") + `"`
		if got := string(appendTime(nil, sec)); got != want {
			t.Fatalf("%d: %s, want %s", sec, got, want)
		}
	}
}

func TestSealRoundTrip(t *testing.T) {
	s := newSealer(99)
	for _, k := range []ixKey{{}, {svc: 9, sess: 1234, part: 1, idx: 55}, {svc: 65535, sess: addedFlag | 7, part: 254, idx: addedFlag | 3}} {
		sid := s.sid("KI", kindInteraction, k)
		got, ok := s.parseSID("KI", kindInteraction, sid)
		if !ok || got != k {
			t.Errorf("%+v → %s → %+v %v", k, sid, got, ok)
		}
		if _, ok := s.parseSID("KI", kindSession, sid); ok {
			t.Errorf("%s opened as another kind", sid)
		}
		if _, ok := newSealer(100).parseSID("KI", kindInteraction, sid); ok {
			t.Errorf("%s opened with another seed", sid)
		}
	}
	tok := s.pageToken("/a", 1<<40|77)
	if after, ok := s.parsePageToken("/a", tok); !ok || after != 1<<40|77 {
		t.Errorf("token round trip: %d %v", after, ok)
	}
	if _, ok := s.parsePageToken("/b", tok); ok {
		t.Error("token opened for another scope")
	}
}
