package discover

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/monitord/monitord/internal/twilio"
)

func TestMerge(t *testing.T) {
	a, b, c, d := tgt('1'), tgt('2'), tgt('3'), tgt('4')
	other := tgt('5')
	other.ServiceSID = "KS" + "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
	conf := func(t twilio.Target) Tracked { return Tracked{Target: t, Origin: OriginConfigured} }
	disc := func(t twilio.Target) Tracked { return Tracked{Target: t, Origin: OriginDiscovered} }

	tests := []struct {
		name       string
		configured []twilio.Target
		discovered map[string][]twilio.Target
		want       []Tracked
	}{
		{"nothing", nil, nil, []Tracked{}},
		{"configured only, order kept", []twilio.Target{b, a}, nil, []Tracked{conf(b), conf(a)}},
		{"discovered only, sorted", nil, map[string][]twilio.Target{a.ServiceSID: {c, a}}, []Tracked{disc(a), disc(c)}},
		{
			name:       "both configured and discovered: once, as configured",
			configured: []twilio.Target{b},
			discovered: map[string][]twilio.Target{a.ServiceSID: {a, b, c}},
			want:       []Tracked{conf(b), disc(a), disc(c)},
		},
		{
			name:       "two services sorted by service, duplicate discovered across entries once",
			configured: []twilio.Target{d},
			discovered: map[string][]twilio.Target{other.ServiceSID: {other}, a.ServiceSID: {a, a}},
			want:       []Tracked{conf(d), disc(a), disc(other)},
		},
		{"duplicate configured once", []twilio.Target{a, a}, nil, []Tracked{conf(a)}},
		{
			name:       "same SIDs, other source: two targets",
			configured: []twilio.Target{{Source: twilio.SourceSession, ServiceSID: a.ServiceSID, SessionSID: a.SessionSID}},
			discovered: map[string][]twilio.Target{a.ServiceSID: {a}},
			want: []Tracked{
				conf(twilio.Target{Source: twilio.SourceSession, ServiceSID: a.ServiceSID, SessionSID: a.SessionSID}),
				disc(a),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.configured, tt.discovered)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountByOrigin(t *testing.T) {
	a, b, c := tgt('1'), tgt('2'), tgt('3')
	n := CountByOrigin(Merge([]twilio.Target{a}, map[string][]twilio.Target{a.ServiceSID: {a, b, c}}))
	if want := map[Origin]int{OriginConfigured: 1, OriginDiscovered: 2}; !cmp.Equal(n, want) {
		t.Errorf("CountByOrigin = %v, want %v", n, want)
	}
	if n := CountByOrigin(nil); n[OriginConfigured] != 0 || n[OriginDiscovered] != 0 || len(n) != 2 {
		t.Errorf("CountByOrigin(nil) = %v, want both origins at 0", n)
	}
}
