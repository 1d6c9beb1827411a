package targets

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
)

func sid(prefix string, c byte) string { return prefix + strings.Repeat(string(c), 32) }

func tgt(svc string, n byte) proxy.Target {
	return proxy.Target{Source: proxy.SourceParticipant, ServiceSID: svc, SessionSID: sid("KC", n), ParticipantSID: sid("KP", n)}
}

func TestMerge(t *testing.T) {
	svc, other := sid("KS", 'a'), sid("KS", 'b')
	a, b, c, d := tgt(svc, '1'), tgt(svc, '2'), tgt(svc, '3'), tgt(svc, '4')
	o := tgt(other, '5')
	sessionA := proxy.Target{Source: proxy.SourceSession, ServiceSID: svc, SessionSID: a.SessionSID}
	conf := func(t proxy.Target) poller.TargetSpec {
		return poller.TargetSpec{Target: t, Schedule: "@every 10s", Origin: poller.OriginConfigured, Labels: map[string]string{"k": "v"}}
	}
	templates := map[string]poller.TargetSpec{
		svc:   {Schedule: "@every 1m", Labels: map[string]string{"d": "1"}},
		other: {Schedule: "@every 2m"},
	}
	disc := func(t proxy.Target) poller.TargetSpec {
		s := templates[t.ServiceSID]
		s.Target, s.Origin = t, poller.OriginDiscovered
		return s
	}
	tests := []struct {
		name       string
		configured []poller.TargetSpec
		discovered map[string][]proxy.Target
		templates  map[string]poller.TargetSpec
		want       []poller.TargetSpec
	}{
		{"nothing", nil, nil, templates, nil},
		{"configured only, order kept", []poller.TargetSpec{conf(b), conf(a)}, nil, templates, []poller.TargetSpec{conf(b), conf(a)}},
		{"discovered only, sorted", nil, map[string][]proxy.Target{svc: {c, a}}, templates, []poller.TargetSpec{disc(a), disc(c)}},
		{
			name:       "both configured and discovered: once, as configured",
			configured: []poller.TargetSpec{conf(b)},
			discovered: map[string][]proxy.Target{svc: {a, b, c}},
			templates:  templates,
			want:       []poller.TargetSpec{conf(b), disc(a), disc(c)},
		},
		{
			name:       "two Services sorted by Service, a duplicate discovered once",
			configured: []poller.TargetSpec{conf(d)},
			discovered: map[string][]proxy.Target{other: {o}, svc: {a, a}},
			templates:  templates,
			want:       []poller.TargetSpec{conf(d), disc(a), disc(o)},
		},
		{"duplicate configured once", []poller.TargetSpec{conf(a), conf(a)}, nil, templates, []poller.TargetSpec{conf(a)}},
		{
			name:       "same SIDs, other source: two targets",
			configured: []poller.TargetSpec{conf(sessionA)},
			discovered: map[string][]proxy.Target{svc: {a}},
			templates:  templates,
			want:       []poller.TargetSpec{conf(sessionA), disc(a)},
		},
		{
			name:       "a Service without a template is skipped",
			configured: []poller.TargetSpec{conf(a)},
			discovered: map[string][]proxy.Target{svc: {a, b}, other: {o}},
			templates:  map[string]poller.TargetSpec{svc: templates[svc]},
			want:       []poller.TargetSpec{conf(a), disc(b)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, nc, nd := Merge(tt.configured, tt.discovered, tt.templates)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(poller.TargetSpec{}, "Lister", "Messages")); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
			var wc, wd int
			for _, s := range tt.want {
				if s.Origin == poller.OriginConfigured {
					wc++
				} else {
					wd++
				}
			}
			if nc != wc || nd != wd {
				t.Errorf("counts %d configured, %d discovered; want %d, %d", nc, nd, wc, wd)
			}
		})
	}
}
