package discover

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/monitord/monitord/internal/proxy"
)

func tgt(n byte) proxy.Target {
	hex := func(c byte) string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = c
		}
		return string(b)
	}
	return proxy.Target{
		Source:         proxy.SourceParticipant,
		ServiceSID:     "KS" + hex('a'),
		SessionSID:     "KC" + hex(n),
		ParticipantSID: "KP" + hex(n),
	}
}

func TestNextSet(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	grace := time.Hour
	live := sighting{live: true}
	endedAt := func(d time.Duration) sighting { return sighting{endedAt: t0.Add(d)} }
	var zero time.Time
	a, b, c := tgt('1'), tgt('2'), tgt('3')

	tests := []struct {
		name        string
		prev        map[proxy.Target]time.Time
		seen        map[proxy.Target]sighting
		now         time.Time
		grace       time.Duration
		want        map[proxy.Target]time.Time
		wantDropped int
	}{
		{
			name: "first refresh: everything seen live is tracked live",
			seen: map[proxy.Target]sighting{a: live, b: live},
			now:  t0,
			want: map[proxy.Target]time.Time{a: zero, b: zero},
		},
		{
			name: "still live stays live",
			prev: map[proxy.Target]time.Time{a: zero},
			seen: map[proxy.Target]sighting{a: live},
			now:  t0,
			want: map[proxy.Target]time.Time{a: zero},
		},
		{
			name: "live target missed: grace starts now",
			prev: map[proxy.Target]time.Time{a: zero, b: zero},
			seen: map[proxy.Target]sighting{a: live},
			now:  t0,
			want: map[proxy.Target]time.Time{a: zero, b: t0},
		},
		{
			name: "in grace, still missing, grace not over: keeps its start",
			prev: map[proxy.Target]time.Time{b: t0},
			now:  t0.Add(59 * time.Minute),
			want: map[proxy.Target]time.Time{b: t0},
		},
		{
			name:        "grace over exactly: dropped",
			prev:        map[proxy.Target]time.Time{b: t0},
			now:         t0.Add(time.Hour),
			want:        map[proxy.Target]time.Time{},
			wantDropped: 1,
		},
		{
			name:        "grace long over: dropped",
			prev:        map[proxy.Target]time.Time{a: zero, b: t0},
			seen:        map[proxy.Target]sighting{a: live},
			now:         t0.Add(3 * time.Hour),
			want:        map[proxy.Target]time.Time{a: zero},
			wantDropped: 1,
		},
		{
			name: "in grace, seen live again: live, grace cleared",
			prev: map[proxy.Target]time.Time{b: t0},
			seen: map[proxy.Target]sighting{b: live},
			now:  t0.Add(30 * time.Minute),
			want: map[proxy.Target]time.Time{b: zero},
		},
		{
			name: "tracked target seen ended: grace from when monitord noticed, not date_ended",
			prev: map[proxy.Target]time.Time{a: zero},
			seen: map[proxy.Target]sighting{a: endedAt(-50 * time.Minute)},
			now:  t0,
			want: map[proxy.Target]time.Time{a: t0},
		},
		{
			name: "in grace and seen ended again: keeps its start",
			prev: map[proxy.Target]time.Time{a: t0},
			seen: map[proxy.Target]sighting{a: endedAt(-50 * time.Minute)},
			now:  t0.Add(10 * time.Minute),
			want: map[proxy.Target]time.Time{a: t0},
		},
		{
			name: "untracked, ended recently (restart): tracked from date_ended",
			seen: map[proxy.Target]sighting{c: endedAt(-20 * time.Minute)},
			now:  t0,
			want: map[proxy.Target]time.Time{c: t0.Add(-20 * time.Minute)},
		},
		{
			name: "untracked, ended longer ago than grace: ignored",
			seen: map[proxy.Target]sighting{c: endedAt(-time.Hour)},
			now:  t0,
			want: map[proxy.Target]time.Time{},
		},
		{
			name: "untracked, ended in the future (clock skew): from now",
			seen: map[proxy.Target]sighting{c: endedAt(5 * time.Minute)},
			now:  t0,
			want: map[proxy.Target]time.Time{c: t0},
		},
		{
			name:        "zero grace: dropped at the first miss",
			prev:        map[proxy.Target]time.Time{a: zero, b: zero},
			seen:        map[proxy.Target]sighting{a: live, c: endedAt(-time.Second)},
			now:         t0,
			grace:       -1, // replaced by 0 below
			want:        map[proxy.Target]time.Time{a: zero},
			wantDropped: 1,
		},
		{
			name: "nothing seen, nothing tracked",
			now:  t0,
			want: map[proxy.Target]time.Time{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := grace
			if tt.grace < 0 {
				g = 0
			}
			prevCopy := map[proxy.Target]time.Time{}
			for k, v := range tt.prev {
				prevCopy[k] = v
			}
			got, dropped := nextSet(tt.prev, tt.seen, tt.now, g)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("next set (-want +got):\n%s", diff)
			}
			if dropped != tt.wantDropped {
				t.Errorf("dropped = %d, want %d", dropped, tt.wantDropped)
			}
			if len(tt.prev) > 0 && !cmp.Equal(prevCopy, tt.prev) {
				t.Errorf("nextSet modified prev")
			}
		})
	}
}

// TestNextSetWalk follows one target through its life across refreshes.
func TestNextSetWalk(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := tgt('1')
	step := 5 * time.Minute
	var set map[proxy.Target]time.Time
	for i := 0; i <= 20; i++ {
		now := t0.Add(time.Duration(i) * step)
		seen := map[proxy.Target]sighting{}
		if i < 4 { // live for the first four refreshes, then the session closes
			seen[a] = sighting{live: true}
		}
		set, _ = nextSet(set, seen, now, time.Hour)
		_, tracked := set[a]
		// Missed first at i=4 (t0+20m); grace ends at t0+80m, i=16.
		if want := i < 16; tracked != want {
			t.Fatalf("refresh %d (t0+%s): tracked=%v, want %v", i, now.Sub(t0), tracked, want)
		}
	}
}
