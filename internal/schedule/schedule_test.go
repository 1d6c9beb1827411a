package schedule

import (
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on machines without a zoneinfo database

	"github.com/robfig/cron/v3"
)

func TestParse(t *testing.T) {
	for _, spec := range []string{"@every 30s", "@every 1m", "@every 1h30m", "*/10 * * * * *", "0 */5 * * * *",
		"*/5 * * * *", "@hourly", "@daily", "TZ=Europe/Berlin 0 9 * * MON-FRI", "CRON_TZ=UTC 0 9 * * *"} {
		if _, err := Parse(spec); err != nil {
			t.Errorf("%q: %v", spec, err)
		}
	}
	for spec, want := range map[string]string{
		"":              `"" is not a cron spec: empty spec string`,
		"@every 100ms":  `"@every 100ms": interval must be whole seconds, at least 1s`,
		"@every 1500ms": `"@every 1500ms": interval must be whole seconds, at least 1s`,
		"* * *":         `"* * *" is not a cron spec: expected 5 to 6 fields, found 3: [* * *]`,
		"0 0 30 2 *":    `"0 0 30 2 *" never fires`,
		"@every banana": `"@every banana" is not a cron spec: failed to parse duration @every banana: time: invalid duration "banana"`,
		"@every":        `"@every" is not a cron spec: unrecognized descriptor: @every`,
		"61 * * * *":    `"61 * * * *" is not a cron spec: end of range (61) above maximum (59): 61`,
	} {
		_, err := Parse(spec)
		if err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", spec, err, want)
		}
	}
}

// TestParseKeepsRobfigTypes: the poller puts "@every" schedules on an
// epoch grid by recognising robfig's ConstantDelaySchedule, so Parse must
// hand back robfig's own types, not a wrapper.
func TestParseKeepsRobfigTypes(t *testing.T) {
	s, err := Parse("@every 30s")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := s.(cron.ConstantDelaySchedule); !ok || c.Delay != 30*time.Second {
		t.Errorf("@every 30s parsed as %T %+v", s, s)
	}
	s, err = Parse("0 */5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 5, 10, 1, 0, 0, time.UTC)
	if got, want := s.Next(t0), time.Date(2026, 1, 5, 10, 5, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next %s, want %s", got, want)
	}
}
