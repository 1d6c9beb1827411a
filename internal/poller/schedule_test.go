package poller

import (
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on machines without a zoneinfo database

	"github.com/monitord/monitord/internal/schedule"
)

func TestInterval(t *testing.T) {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC) // a Monday
	for spec, want := range map[string]time.Duration{
		"@every 30s":     30 * time.Second,
		"*/10 * * * * *": 10 * time.Second,
		"*/5 * * * *":    5 * time.Minute,
		"@hourly":        time.Hour,
		"0 0 9 * * *":    24 * time.Hour,
	} {
		s, err := schedule.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := Interval(s, now); got != want {
			t.Errorf("%q: interval %s, want %s", spec, got, want)
		}
	}
}

// TestSpreadEvery checks that 10,000 targets on @every 1m fire at 10,000
// spread instants, each exactly once a minute, at a phase that does not
// depend on when the schedule was made.
func TestSpreadEvery(t *testing.T) {
	s, _ := schedule.Parse("@every 1m")
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	const n = 10000
	perSecond := make(map[int]int)
	for i := range n {
		key := fmt.Sprintf("participant/KS%032d/KC%032d/KP%032x", i%10, i, i)
		a := Spread(key, s, t0, 0)
		b := Spread(key, s, t0.Add(17*time.Second+time.Millisecond), 0) // made later, e.g. after a reload
		first := a.Next(t0)
		if d := first.Sub(t0); d <= 0 || d > time.Minute {
			t.Fatalf("%s: first activation %s after start", key, d)
		}
		if second := a.Next(first); second.Sub(first) != time.Minute {
			t.Fatalf("%s: period %s", key, second.Sub(first))
		}
		if got := b.Next(first.Add(-time.Millisecond)); !got.Equal(first) {
			t.Fatalf("%s: phase moved: %s vs %s", key, got, first)
		}
		perSecond[first.Second()]++
	}
	// Evenly spread: ~167 per second of the minute; allow generous noise.
	for sec := range 60 {
		if c := perSecond[sec]; c < 100 || c > 240 {
			t.Errorf("second %d: %d of %d activations", sec, c, n)
		}
	}
}

func TestSpreadCalendar(t *testing.T) {
	s, _ := schedule.Parse("0 */5 * * * *") // every 5 minutes on the minute
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	key := "session/KS00000000000000000000000000000001/KC00000000000000000000000000000001"
	off := Offset(key, 5*time.Minute, 0)
	if off <= 0 || off >= 5*time.Minute {
		t.Fatalf("offset %s", off)
	}
	sp := Spread(key, s, t0, 0)
	n1 := sp.Next(t0)
	if want := t0.Add(off); !n1.Equal(want) {
		t.Errorf("first %s, want %s", n1, want)
	}
	if n2 := sp.Next(n1); n2.Sub(n1) != 5*time.Minute {
		t.Errorf("period %s", n2.Sub(n1))
	}
	// MaxSpread caps the offset.
	capped := Spread(key, s, t0, 10*time.Second).Next(t0)
	if d := capped.Sub(t0); d >= 10*time.Second {
		t.Errorf("capped offset %s", d)
	}
	// The location is kept: cron evaluates calendar specs in it.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if loc := sp.Next(t0.In(berlin)).Location(); loc != berlin {
		t.Errorf("location %v", loc)
	}
}

func TestAlignedEvery(t *testing.T) {
	s, _ := schedule.Parse("@every 30s")
	a := Aligned(s)
	t0 := time.Date(2026, 1, 5, 10, 0, 7, 123, time.UTC)
	if got, want := a.Next(t0), time.Date(2026, 1, 5, 10, 0, 30, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next %s, want %s", got, want)
	}
	// Strictly after: a grid instant maps to the next one.
	if got := a.Next(time.Date(2026, 1, 5, 10, 0, 30, 0, time.UTC)); got.Second() != 0 || got.Minute() != 1 {
		t.Errorf("next after grid instant %s", got)
	}
	if !strings.Contains(fmt.Sprint(Offset("x", 0, 0)), "0s") {
		t.Error("zero interval must give zero offset")
	}
}
