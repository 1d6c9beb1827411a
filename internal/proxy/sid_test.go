package proxy

import (
	"strings"
	"testing"
)

func TestCanonicalSID(t *testing.T) {
	for in, want := range map[string]string{
		"KI0123456789ABCDEF0123456789abcdef": "KI0123456789abcdef0123456789abcdef",
		"KI0123456789abcdef0123456789abcdef": "KI0123456789abcdef0123456789abcdef",
		"sm0123456789abcdef0123456789ABCDEF": "sm0123456789abcdef0123456789abcdef", // the letters are kept
	} {
		if got := CanonicalSID(in); got != want {
			t.Errorf("CanonicalSID(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestValidSID(t *testing.T) {
	hex := strings.Repeat("0a", 16)
	cases := []struct {
		prefix, sid string
		want        bool
	}{
		{"KS", "KS" + hex, true},
		{"KS", "KC" + hex, false},
		{"KS", "KS" + hex[:31], false},
		{"KS", "KS" + hex[:31] + "g", false},
		{"", "SM" + hex, true},
		{"", "S1" + hex, false},
		{"KS", "", false},
	}
	for _, c := range cases {
		if got := ValidSID(c.prefix, c.sid); got != c.want {
			t.Errorf("ValidSID(%q, %q) = %v, want %v", c.prefix, c.sid, got, c.want)
		}
	}
	err := CheckSID("service_sid", "KS", "KS123")
	if err == nil || err.Error() != `service_sid: "KS123" does not match ^KS[0-9a-fA-F]{32}$` {
		t.Errorf("CheckSID error = %v", err)
	}
}

func TestTargetKeyAndValidate(t *testing.T) {
	hex := strings.Repeat("0a", 16)
	p := Target{Source: SourceParticipant, ServiceSID: "KS" + hex, SessionSID: "KC" + hex, ParticipantSID: "KP" + hex}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Key(), "participant/KS"+hex+"/KC"+hex+"/KP"+hex; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	s := Target{Source: SourceSession, ServiceSID: "KS" + hex, SessionSID: "KC" + hex}
	if err := s.Validate(); err != nil || s.Key() != "session/KS"+hex+"/KC"+hex {
		t.Errorf("session target: %v, key %q", err, s.Key())
	}
	s.ParticipantSID = "KP" + hex
	if err := s.Validate(); err == nil {
		t.Error("a session target with a participant validated")
	}
	if err := (Target{Source: "other"}).Validate(); err == nil {
		t.Error("an unknown source validated")
	}
}
