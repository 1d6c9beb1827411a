package discover

import (
	"sort"

	"github.com/monitord/monitord/internal/twilio"
)

// Origin says where a polled target came from, for /status and metrics.
type Origin string

// The origins. A target both configured and discovered is configured: the
// config's schedule and labels apply, and discovery dropping it after a
// session's grace period does not stop it being polled.
const (
	OriginConfigured Origin = "configured"
	OriginDiscovered Origin = "discovered"
)

// Tracked is a target with its origin.
type Tracked struct {
	Target twilio.Target
	Origin Origin
}

// Merge is the poller's target list: every configured target in its order,
// then every discovered target not also configured, by Service and key. A
// target both configured and discovered appears once, as configured, so it
// is polled once.
func Merge(configured []twilio.Target, discovered map[string][]twilio.Target) []Tracked {
	out := make([]Tracked, 0, len(configured))
	have := make(map[twilio.Target]bool, len(configured))
	for _, t := range configured {
		if have[t] {
			continue
		}
		have[t] = true
		out = append(out, Tracked{Target: t, Origin: OriginConfigured})
	}
	services := make([]string, 0, len(discovered))
	for svc := range discovered {
		services = append(services, svc)
	}
	sort.Strings(services)
	for _, svc := range services {
		ts := append([]twilio.Target(nil), discovered[svc]...)
		sortTargets(ts)
		for _, t := range ts {
			if have[t] {
				continue
			}
			have[t] = true
			out = append(out, Tracked{Target: t, Origin: OriginDiscovered})
		}
	}
	return out
}

// CountByOrigin counts merged targets by origin (the targets-by-origin
// metric).
func CountByOrigin(ts []Tracked) map[Origin]int {
	n := map[Origin]int{OriginConfigured: 0, OriginDiscovered: 0}
	for _, t := range ts {
		n[t.Origin]++
	}
	return n
}
