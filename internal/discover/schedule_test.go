package discover

import (
	"strings"
	"testing"

	"github.com/monitord/monitord/internal/twilio"
)

// TestNewUsesTheOneScheduleParser: discovery reads its schedule with
// internal/schedule like config and the poller, so it refuses what raw
// robfig/cron would quietly change ("@every 100ms" ran every second) or a
// spec that never fires (its Next is zero: the refresh loop would spin).
func TestNewUsesTheOneScheduleParser(t *testing.T) {
	var c *twilio.Client // never called: New refuses the entry first
	ok := "KS" + strings.Repeat("0", 32)
	for spec, want := range map[string]string{
		"@every 100ms": `discover[0].schedule: "@every 100ms": interval must be whole seconds, at least 1s`,
		"0 0 30 2 *":   `discover[0].schedule: "0 0 30 2 *" never fires`,
	} {
		rec := newRecorder()
		_, err := New(Config{Lister: c, Entries: []Entry{rec.entry(0, Entry{ServiceSID: ok, Schedule: spec})}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("schedule %q: New error %v, want %s", spec, err, want)
		}
	}
}
