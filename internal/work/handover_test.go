package work

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/poller"
)

// TestClusterHandOver: the owner of a Service hands it over; the standby
// is pinned and polls it, and no poll was cut short or overlapped the
// other instance's. The old owner, back as a standby after its hold-off,
// takes the Service over when the new owner dies. A hand-over of a Service
// the worker does not serve is refused.
func TestClusterHandOver(t *testing.T) {
	cl := natstest.StartCluster(t, 1)
	c := testConfig()
	c.Replicas = 1
	targets := makeTargets(1, 4)
	svc := targets[0].ServiceSID
	ensure(t, cl, c, targets)
	j := newJournal()
	every := 300 * time.Millisecond
	a := startInstance(t, "a", cl.URLs(), c, targets, every, j)
	j.waitUntil(t, "a polling", 30*time.Second, func(ps []poll) bool { return len(ps) >= 4 })
	b := startInstance(t, "b", cl.URLs(), c, targets, every, j)
	if a.w.HandOver(sid("KS", 99), c.PinnedTTL) {
		t.Error("HandOver of a Service the worker does not serve accepted")
	}

	handed := time.Now()
	if !a.w.HandOver(svc, c.PinnedTTL) {
		t.Fatal("HandOver refused")
	}
	j.waitUntil(t, "b polling after the hand-over", 30*time.Second, func(ps []poll) bool {
		for _, p := range ps {
			if p.inst == "b" && p.start.After(handed) {
				return true
			}
		}
		return false
	})
	t.Logf("b polled %v after the hand-over", time.Since(handed).Round(time.Millisecond))
	if b.pinnedAt(svc).IsZero() {
		t.Error("b polled without OnPinned")
	}
	for _, p := range j.snapshot() {
		if p.result == poller.ResultCancelled {
			t.Errorf("%s's poll of %s cancelled by the hand-over", p.inst, p.tickID)
		}
	}

	// b dies: a, a standby again once its hold-off is over, takes over.
	killed := time.Now()
	b.kill()
	j.waitUntil(t, "a polling again after b died", 30*time.Second, func(ps []poll) bool {
		for _, p := range ps {
			if p.inst == "a" && p.start.After(killed) {
				return true
			}
		}
		return false
	})
	if msg := overlaps(j.snapshot()); msg != "" {
		t.Error(msg)
	}
}
