//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// TestCompare shows the oracle has teeth: from a correct stream of events
// for a small record of changes, dropping, repeating, reordering or
// inventing an event is each reported.
func TestCompare(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tg := proxysim.Target{ServiceSID: "KS1", SessionSID: "KC1", ParticipantSID: "KP1"}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	changes := []proxysim.Change{
		{Time: at(-100), Target: tg, InteractionSID: "KI1", Kind: "created", To: "queued"},
		{Time: at(10), Target: tg, InteractionSID: "KI1", Kind: "status", Leg: proxysim.LegOutbound, From: "queued", To: "sent"},
		{Time: at(20), Target: tg, InteractionSID: "KI1", Kind: "status", Leg: proxysim.LegOutbound, From: "sent", To: "undelivered"},
		{Time: at(15), Target: tg, InteractionSID: "KI2", Kind: "created", To: "queued"},
		{Time: at(30), Target: tg, InteractionSID: "KI3", Kind: "created", To: "queued"},
		{Time: at(-100), Target: tg, InteractionSID: "KI4", Kind: "created", To: "delivered"},
		{Time: at(25), Target: tg, InteractionSID: "KI4", Kind: "deleted"},
	}
	seq := uint64(0)
	ev := func(kind, sid, leg, prev, status string, s int) received {
		seq++
		r := received{MsgID: kind + sid + leg + status, Subject: "monitord." + kind + ".KS1.KC1.KP1", StreamSeq: seq}
		r.CE.Time = at(s)
		r.CE.Data.ServiceSID, r.CE.Data.SessionSID, r.CE.Data.ParticipantSID = "KS1", "KC1", "KP1"
		r.CE.Data.InteractionSID, r.CE.Data.Leg, r.CE.Data.PreviousStatus, r.CE.Data.Status = sid, leg, prev, status
		return r
	}
	good := []received{
		ev("status_changed", "KI1", "outbound", "queued", "sent", 11),
		ev("created", "KI2", "", "", "queued", 16),
		ev("status_changed", "KI1", "outbound", "sent", "undelivered", 21),
		ev("failed", "KI1", "outbound", "sent", "undelivered", 21),
		ev("deleted", "KI4", "", "delivered", "", 26),
		ev("created", "KI3", "", "", "queued", 31),
	}
	start, baselined := at(-10), at(0)
	if v := compare(changes, good, start, baselined, nil); !v.OK() {
		t.Fatalf("a correct stream is reported wrong: %s", v)
	}
	without := func(i int) []received {
		out := append([]received(nil), good[:i]...)
		return append(out, good[i+1:]...)
	}
	swap := append([]received(nil), good...)
	swap[0], swap[2] = swap[2], swap[0]
	history := append(append([]received(nil), good...), ev("created", "KI1", "", "", "queued", 40))
	falseDel := append(append([]received(nil), good...), ev("deleted", "KI2", "", "queued", "", 40))
	phantom := append(append([]received(nil), good...), ev("status_changed", "KI3", "outbound", "queued", "delivered", 40))
	for _, c := range []struct {
		name string
		evs  []received
		want string
	}{
		{"first change lost", without(0), "broken chain"},
		{"last change lost", without(2), "missing"},
		{"failed lost", without(3), "missing"},
		{"deleted lost", without(4), "missing"},
		{"created lost", without(5), "missing"},
		{"repeated", append(append([]received(nil), good...), good[1]), "duplicate"},
		{"reordered", swap, "out of order"},
		{"created for history", history, "history"},
		{"false deleted", falseDel, "false deleted"},
		{"status never had", phantom, "never had that status"},
	} {
		v := compare(changes, c.evs, start, baselined, nil)
		if v.OK() || !strings.Contains(v.String(), c.want) {
			t.Errorf("%s: want a report with %q, got: %s", c.name, c.want, v)
		}
	}
}
