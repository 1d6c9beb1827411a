package proxysim

import (
	"slices"
	"testing"
	"time"
)

// TestLastGeneratedWalk holds lastGenerated, which walks a session's slots
// back from now and stops early, to the plain maximum over every generated
// interaction, at each instant an interaction is created and just before
// it. The world is tuned to stress the early stop: ten-second slots, a
// burst in every fifth, two messages each, so that a session's first burst,
// which starts up to 30 s after its creation, often outlasts later ones.
func TestLastGeneratedWalk(t *testing.T) {
	epoch := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Seed: 3, Sessions: 400, Participants: 2, RateLimit: -1,
		Activity: &Activity{Window: 10 * time.Second, Share: 0.2, MinMessages: 2, MaxMessages: 2,
			ReplyGap: 10 * time.Second, History: 10 * time.Minute},
		Clock: func() time.Time { return epoch }})
	checked := 0
	for i := 0; i < 400; i++ {
		ses, ok := s.sessionAt(ixKey{sess: uint32(i)}, s.epoch)
		if !ok {
			t.Fatalf("session %d missing", i)
		}
		// The first two minutes of each session: its first burst and
		// the many after it.
		end := ses.created + 120
		var created []int64
		for p := 0; p < ses.participants; p++ {
			s.eachGenerated(s.participantOf(ses, uint8(p)), end, func(_ uint32, at int64, _ int) {
				created = append(created, at)
			})
		}
		slices.Sort(created)
		for _, c := range created {
			for _, now := range []int64{c - 1, c} {
				want := int64(0)
				for _, x := range created {
					if x <= now {
						want = x
					}
				}
				if got := s.lastGenerated(ses, now); got != want {
					t.Fatalf("session %d at %d (created %d): lastGenerated %d, newest interaction %d",
						i, now, ses.created, got, want)
				}
				checked++
			}
		}
	}
	if checked < 4000 {
		t.Errorf("only %d instants checked", checked)
	}
}
