package diff

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// gen turns fuzz bytes into values from small pools, so that random input
// hits the interesting cases (shared SIDs, duplicates, alert statuses,
// null dates) instead of never-repeating noise.
type gen struct{ b []byte }

func (g *gen) next() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

var fuzzStatuses = []string{"", "unknown", "queued", "sending", "sent", "delivered", "failed", "undelivered", "received", "new-thing"}

func (g *gen) status() string { return fuzzStatuses[int(g.next())%len(fuzzStatuses)] }
func (g *gen) sid() string {
	c := g.next() % 25
	if c == 24 {
		return "" // null: an item that cannot be identified
	}
	return fmt.Sprintf("KI%032x", c)
}

func (g *gen) time() time.Time {
	c := g.next()
	if c%8 == 0 {
		return time.Time{}
	}
	return t0.Add(time.Duration(int(c)-128) * time.Minute)
}

func (g *gen) listing() []proxy.Interaction {
	n := int(g.next() % 32)
	out := make([]proxy.Interaction, 0, n)
	for i := 0; i < n; i++ {
		it := proxy.Interaction{SID: g.sid(), Type: []string{"message", "voice", ""}[g.next()%3],
			InboundResourceStatus: g.status(), OutboundResourceStatus: g.status(), DateUpdated: g.time()}
		if g.next()%2 == 0 {
			it.OutboundResourceSID = fmt.Sprintf("SM%032x", g.next())
		}
		out = append(out, it)
	}
	return out
}

// snapshot builds an arbitrary valid snapshot, including states the diff
// would not produce on its own (stuck flags, odd since times).
func (g *gen) snapshot() Snapshot {
	s := Snapshot{Baselined: g.next()%4 != 0}
	for _, it := range g.listing() {
		s.Entries = append(s.Entries, Entry{SID: it.SID, Type: it.Type, InboundStatus: it.InboundResourceStatus,
			OutboundStatus: it.OutboundResourceStatus, OutboundResourceSID: it.OutboundResourceSID,
			DateUpdated: norm(it.DateUpdated), OutboundSince: g.time(), StuckReported: g.next()%3 == 0})
	}
	slices.SortStableFunc(s.Entries, func(a, b Entry) int { return cmpString(a.SID, b.SID) })
	s.Entries = slices.CompactFunc(s.Entries, func(a, b Entry) bool { return a.SID == b.SID })
	return s
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint8(0))
	f.Add([]byte{1, 3, 1, 0, 6, 6, 9, 1, 1, 2, 2, 4, 4, 7}, []byte{4, 1, 0, 6, 7, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, uint8(20))
	f.Add([]byte{3, 8, 5, 2, 4, 5, 200, 1, 1, 9, 2, 0, 3, 3, 3, 0, 0}, []byte{8, 5, 5, 2, 4, 7, 30, 1, 5, 5, 1, 7, 7, 80, 0, 5, 5}, uint8(250))
	r := DefaultRules()
	f.Fuzz(func(t *testing.T, prevData, listData []byte, at uint8) {
		prevGen, listGen := &gen{prevData}, &gen{listData}
		prev := prevGen.snapshot()
		listing := listGen.listing()
		now := t0.Add(time.Duration(int(at)-128) * time.Minute)
		prevEnc, _ := prev.MarshalBinary()

		evs, next := Diff(prev, listing, now, r)

		// A listing with an item that cannot be identified is not complete:
		// nothing happens, and prev stands.
		if slices.ContainsFunc(listing, func(it proxy.Interaction) bool { return it.SID == "" }) {
			if len(evs) != 0 || !next.Equal(prev) {
				t.Fatalf("listing with a null SID: %d events, next changed %v", len(evs), !next.Equal(prev))
			}
			return
		}
		listed := map[string]bool{}
		for _, it := range listing {
			listed[it.SID] = true
		}

		// No duplicate changes (so no duplicate event ids: the id is a hash
		// of interaction, kind, leg and status); changes in SID order.
		type key struct {
			sid  string
			kind Kind
			leg  Leg
		}
		seen := map[key]bool{}
		for i, e := range evs {
			k := key{e.InteractionSID, e.Kind, e.Leg}
			if seen[k] {
				t.Fatalf("duplicate change %s %s %s", e.InteractionSID, e.Kind, e.Leg)
			}
			seen[k] = true
			if i > 0 && evs[i-1].InteractionSID > e.InteractionSID {
				t.Fatalf("events out of SID order at %d", i)
			}
			if e.Kind == Failed && (!contains(r.AlertStatuses, e.Status) || contains(r.AlertStatuses, e.PrevStatus)) {
				t.Fatalf("failed %q -> %q", e.PrevStatus, e.Status)
			}
			if !prev.Baselined && e.Kind != Failed {
				t.Fatalf("baseline emitted %s", e.Kind)
			}
			// deleted only for a SID absent from the listing; every other
			// kind only for one in it.
			if (e.Kind == Deleted) == listed[e.InteractionSID] {
				t.Fatalf("%s for %s, listed %v", e.Kind, e.InteractionSID, listed[e.InteractionSID])
			}
		}
		// The next snapshot holds exactly the listing's SIDs, sorted, and is baselined.
		var want []string
		for _, it := range listing {
			want = append(want, it.SID)
		}
		slices.Sort(want)
		want = slices.Compact(want)
		var got []string
		for _, e := range next.Entries {
			got = append(got, e.SID)
		}
		if !slices.Equal(want, got) || !next.Baselined {
			t.Fatalf("next SIDs %v, listing SIDs %v, baselined %v", got, want, next.Baselined)
		}
		// prev is untouched.
		if after, _ := prev.MarshalBinary(); !bytes.Equal(prevEnc, after) {
			t.Fatal("Diff modified prev")
		}
		// The same listing against its own snapshot, at the same now, is nothing.
		again, next2 := Diff(next, listing, now, r)
		if len(again) != 0 {
			t.Fatalf("listing against its own snapshot: %d events, first %s %s", len(again), again[0].Kind, again[0].InteractionSID)
		}
		if !next2.Equal(next) {
			t.Fatal("listing against its own snapshot changed it")
		}
		// The encoding round-trips, canonically.
		for _, s := range []Snapshot{prev, next} {
			b, _ := s.MarshalBinary()
			var dec Snapshot
			if err := dec.UnmarshalBinary(b); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !dec.Equal(s) {
				t.Fatal("round trip differs")
			}
			if b2, _ := dec.MarshalBinary(); !bytes.Equal(b, b2) {
				t.Fatal("re-encoding differs")
			}
		}
	})
}
