package main

import (
	"testing"
	"time"

	"github.com/monitord/monitord/internal/config"
)

// TestReasonWaits: the polls allowed to wait for reasons are what the
// accounts' FetchMessage budgets serve within one timeout.
func TestReasonWaits(t *testing.T) {
	cfg := &config.Config{Reasons: config.Reasons{Enabled: true, Rate: 10, Concurrency: 4, Timeout: 5 * time.Second},
		Accounts: []config.Account{{Name: "a"}, {Name: "b"}}}
	if got := reasonWaits(cfg); got != 2*(50+4) {
		t.Errorf("two accounts at 10/s × 5 s + 4: %d, want 108", got)
	}
	cfg.Accounts = cfg.Accounts[:1]
	cfg.Reasons.Rate, cfg.Reasons.Timeout = 0.5, time.Second
	if got := reasonWaits(cfg); got != 16 {
		t.Errorf("a tiny budget: %d, want the floor of 16", got)
	}
	cfg.Reasons.Enabled = false
	if got := reasonWaits(cfg); got != 0 {
		t.Errorf("reasons off: %d, want 0 (the poller's default)", got)
	}
}
