package admin

import (
	"fmt"
	"time"

	"github.com/monitord/monitord/internal/poller"
)

// TargetsView is what the status documents show of the targets: the
// poller's counts by health and each target's status.
type TargetsView interface {
	Summary() poller.Summary
	Status() []poller.TargetStatus
}

// Status builds the status documents (/status, systemd's STATUS= line, the
// monitord_targets gauge's counts) from the parts that own the data.
type Status struct {
	// Instance is the instance name, the one at start (a reload changes
	// it only after a restart).
	Instance func() string
	Targets  TargetsView
	// Outbox is the outbox's depth (state.DB.OutboxStats).
	Outbox func() (events int, bytes int64, oldest time.Time, err error)
	// NATS reports whether the publisher is connected.
	NATS func() bool
	// Classes, in poll.mode activity, returns each target's class (new,
	// hot, cold) by key; nil otherwise.
	Classes func() map[string]string
	// HA is this instance's share of a deployment of several (ha.enabled);
	// nil for a single instance.
	HA func() *HAView
}

// HAView is what /status shows of ha mode: which Services this instance
// owns (polls) now, of those it serves, and whether the shared state
// answers.
type HAView struct {
	Instance     string    `json:"instance"`
	Services     []string  `json:"services"`
	Owned        []HAOwned `json:"owned"`
	KV           string    `json:"kv"` // "ok" or the error reaching the bucket
	TicksSkipped int64     `json:"ticks_skipped"`
	Handovers    int64     `json:"handovers"` // Services handed over to balance the load (ha.balance)
}

// HAOwned is one Service this instance owns, since when.
type HAOwned struct {
	Service string    `json:"service"`
	Since   time.Time `json:"since"`
}

// StatusDoc is the /status document.
type StatusDoc struct {
	Instance  string                `json:"instance"`
	Mode      string                `json:"mode"` // single or ha
	HA        *HAView               `json:"ha,omitempty"`
	Targets   int                   `json:"targets"`
	Healthy   int                   `json:"healthy"`
	Failing   int                   `json:"failing"`
	Unknown   int                   `json:"unknown"`
	LastCycle time.Time             `json:"last_complete_cycle,omitzero"`
	NATS      bool                  `json:"nats_connected"`
	Outbox    int                   `json:"outbox_events"`
	Status    []poller.TargetStatus `json:"status"`
}

// Doc returns the /status document.
func (s Status) Doc() StatusDoc {
	sum := s.Targets.Summary()
	n, _, _, _ := s.Outbox()
	st := s.Targets.Status()
	if s.Classes != nil {
		classes := s.Classes()
		for i := range st {
			st[i].Class = classes[st[i].Key]
		}
	}
	mode, view := "single", (*HAView)(nil)
	if s.HA != nil {
		mode, view = "ha", s.HA()
	}
	return StatusDoc{Instance: s.Instance(), Mode: mode, HA: view, Targets: sum.Targets, Healthy: sum.Healthy, Failing: sum.Failing,
		Unknown: sum.Unknown, LastCycle: sum.LastCycle, NATS: s.NATS(), Outbox: n, Status: st}
}

// Line is systemd's one-line STATUS= at now.
func (s Status) Line(now time.Time) string {
	sum := s.Targets.Summary()
	n, _, _, _ := s.Outbox()
	nats := "connected"
	if !s.NATS() {
		nats = "disconnected"
	}
	cycle := "no complete cycle yet"
	if !sum.LastCycle.IsZero() {
		cycle = "last cycle " + now.Sub(sum.LastCycle).Round(time.Second).String() + " ago"
	}
	if s.HA != nil {
		// In ha mode this instance polls only the Services it owns: its
		// own cycle is not the deployment's.
		v := s.HA()
		cycle = fmt.Sprintf("ha: owns %d of %d services; kv %s", len(v.Owned), len(v.Services), v.KV)
	}
	return fmt.Sprintf("%d targets (%d healthy, %d failing); outbox %d; nats %s; %s",
		sum.Targets, sum.Healthy, sum.Failing, n, nats, cycle)
}

// ByHealth counts the targets by health: the monitord_targets gauge's
// source (Sources.Targets).
func (s Status) ByHealth() map[string]int {
	sum := s.Targets.Summary()
	return map[string]int{poller.HealthHealthy: sum.Healthy, poller.HealthFailing: sum.Failing, poller.HealthUnknown: sum.Unknown}
}
