package errcode

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	info, ok := Lookup(30007)
	if !ok || info.Meaning != "message filtered by the carrier" {
		t.Fatalf("Lookup(30007) = %+v, %v", info, ok)
	}
	if got, want := info.URL(), "https://www.twilio.com/docs/api/errors/30007"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if _, ok := Lookup(99999); ok {
		t.Error("Lookup(99999) found a meaning for a code not in the table")
	}
	if got := Describe(99999); got != "Twilio error 99999" {
		t.Errorf("Describe(99999) = %q", got)
	}
}

// TestTable keeps every meaning one short lower-case line, so that it fits a
// terminal line and an alert annotation.
func TestTable(t *testing.T) {
	codes := Codes()
	if len(codes) < 10 {
		t.Fatalf("only %d codes", len(codes))
	}
	for i, c := range codes {
		if i > 0 && codes[i-1] >= c {
			t.Fatalf("Codes not ascending at %d", i)
		}
		m := Describe(c)
		if m == "" || len(m) > 70 || strings.ContainsAny(m, "\n.") || strings.ToLower(m[:1]) != m[:1] {
			t.Errorf("%d: meaning %q is not one short lower-case line without a full stop", c, m)
		}
	}
}
