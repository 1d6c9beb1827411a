package diff_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenTarget is the target of every scenario: its SIDs are part of the
// events, not of their ids.
var goldenTarget = proxy.Target{
	Source:         proxy.SourceParticipant,
	ServiceSID:     "KS" + strings.Repeat("0", 32),
	SessionSID:     "KC" + strings.Repeat("0", 32),
	ParticipantSID: "KP" + strings.Repeat("0", 32),
}

// A scenario (testdata/<name>.json) is a target's listings over time; its
// golden file (testdata/<name>.golden) is every event and the snapshot
// after each listing. The events are what the poller publishes: Diff's
// changes through event.FromChanges, so the golden ids pin the id rule
// across the seam (this file is package diff_test because event imports
// diff). Adding a scenario is adding a file and running
// `go test ./internal/diff -run TestGolden -update`; review the diff of the
// .golden files like code.
type scenario struct {
	Rules *struct {
		AlertStatuses       []string `json:"alert_statuses"`
		TerminalStatuses    []string `json:"terminal_statuses"`
		StuckAfter          string   `json:"stuck_after"`
		BaselineAlertRecent string   `json:"baseline_alert_recent"`
	} `json:"rules"`
	Steps []struct {
		Now     time.Time `json:"now"`
		Listing []struct {
			SID     string    `json:"sid"`
			Type    string    `json:"type"`
			In      string    `json:"in"`
			Out     string    `json:"out"`
			InSID   string    `json:"in_sid"`
			OutSID  string    `json:"out_sid"`
			Created time.Time `json:"created"`
			Updated time.Time `json:"updated"`
		} `json:"listing"`
	} `json:"steps"`
}

func (sc *scenario) rules(t *testing.T) diff.Rules {
	r := diff.DefaultRules()
	if sc.Rules == nil {
		return r
	}
	r.AlertStatuses = sc.Rules.AlertStatuses
	r.TerminalStatuses = sc.Rules.TerminalStatuses
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{sc.Rules.StuckAfter, &r.StuckAfter}, {sc.Rules.BaselineAlertRecent, &r.BaselineAlertRecent}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			t.Fatal(err)
		}
		*d.dst = v
	}
	return r
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var sc scenario
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&sc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got := runScenario(t, &sc)
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(want, got) {
				t.Fatalf("%s differs from the output (run with -update and review):\n%s", golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

func runScenario(t *testing.T, sc *scenario) []byte {
	r := sc.rules(t)
	var out bytes.Buffer
	var snap diff.Snapshot
	for i, st := range sc.Steps {
		listing := make([]proxy.Interaction, len(st.Listing))
		for j, l := range st.Listing {
			listing[j] = proxy.Interaction{
				SID: l.SID, Type: l.Type, InboundResourceStatus: l.In, OutboundResourceStatus: l.Out,
				InboundResourceSID: l.InSID, OutboundResourceSID: l.OutSID, DateCreated: l.Created, DateUpdated: l.Updated,
			}
		}
		changes, next := diff.Diff(snap, listing, st.Now, r)
		evs := event.FromChanges(goldenTarget, st.Now, changes)
		fmt.Fprintf(&out, "step %d at %s: %d listed, %d events\n", i, st.Now.Format(time.RFC3339), len(listing), len(evs))
		for _, e := range evs {
			leg := string(e.Leg)
			if leg == "" {
				leg = "-"
			}
			mark := ""
			if e.Baseline {
				mark = " baseline"
			}
			fmt.Fprintf(&out, "  %-14s %-8s %s %q -> %q id=%s%s\n", e.Kind, leg, e.InteractionSID, e.PrevStatus, e.Status, e.ID, mark)
		}
		fmt.Fprintf(&out, "  snapshot baselined=%v\n", next.Baselined)
		for _, e := range next.Entries {
			fmt.Fprintf(&out, "    %s type=%q in=%q out=%q since=%s stuck=%v\n", e.SID, e.Type, e.InboundStatus, e.OutboundStatus, fmtTime(e.OutboundSince), e.StuckReported)
		}
		snap = next
	}
	return out.Bytes()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "null"
	}
	return t.Format(time.RFC3339)
}

// lineDiff shows the first differing lines: enough to see what moved.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return "(no line differs)"
}
