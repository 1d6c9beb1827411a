package activity

import (
	"testing"
	"time"
)

// TestBudgetSetLimits: a change of limits applies from its instant on:
// tokens earned before it are earned at the old rate, a shallower bucket
// loses what it cannot hold, and a debt stays owed at the new rate.
func TestBudgetSetLimits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBudget(1, 10, t0)
	for range 10 {
		if d := b.Take(t0); d != 0 {
			t.Fatalf("a full bucket of 10 made a request wait %v", d)
		}
	}
	// 4 s at 1/s earn 4 tokens; then the rate goes to 10/s, burst 2.
	b.SetLimits(10, 2, t0.Add(4*time.Second))
	if r, n := b.Limits(); r != 10 || n != 2 {
		t.Fatalf("limits %v/s, %d; want 10/s, 2", r, n)
	}
	now := t0.Add(4 * time.Second)
	for i := range 2 {
		if d := b.Take(now); d != 0 {
			t.Fatalf("take %d: waited %v; the 2 tokens the new depth holds are there", i, d)
		}
	}
	// The third goes into debt, paid at the new rate: 0.1 s.
	if d := b.Take(now); d < 99*time.Millisecond || d > 101*time.Millisecond {
		t.Errorf("a request beyond the bucket waits %v, want 100ms at 10/s", d)
	}
	// A slower rate makes the debt take longer: 2 tokens owed at 1/s.
	b.Take(now)
	b.SetLimits(1, 2, now)
	if d := b.Wait(now); d < 2999*time.Millisecond || d > 3001*time.Millisecond {
		t.Errorf("wait with 2 tokens owed at 1/s: %v, want 3s (the debt and one token)", d)
	}
}
