package targets

import (
	"sort"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
)

// Merge is the poller's target list: every configured spec in its order,
// then every discovered target not also configured, by Service and key,
// polled as its Service's template says (a Service without a template is
// skipped). A target both configured and discovered appears once, as
// configured: the config's schedule and labels apply, and discovery
// dropping it after its session's grace period does not stop its polls.
// It also returns how many of each origin the list holds.
func Merge(configured []poller.TargetSpec, discovered map[string][]proxy.Target,
	templates map[string]poller.TargetSpec) (specs []poller.TargetSpec, nConfigured, nDiscovered int) {
	specs = make([]poller.TargetSpec, 0, len(configured))
	have := make(map[proxy.Target]bool, len(configured))
	for _, s := range configured {
		if have[s.Target] {
			continue
		}
		have[s.Target] = true
		s.Origin = poller.OriginConfigured
		specs = append(specs, s)
		nConfigured++
	}
	services := make([]string, 0, len(discovered))
	for svc := range discovered {
		services = append(services, svc)
	}
	sort.Strings(services)
	for _, svc := range services {
		tmpl, ok := templates[svc]
		if !ok {
			continue
		}
		ts := append([]proxy.Target(nil), discovered[svc]...)
		sort.Slice(ts, func(i, j int) bool { return ts[i].Key() < ts[j].Key() })
		for _, t := range ts {
			if have[t] {
				continue
			}
			have[t] = true
			spec := tmpl
			spec.Target, spec.Origin = t, poller.OriginDiscovered
			specs = append(specs, spec)
			nDiscovered++
		}
	}
	return specs, nConfigured, nDiscovered
}
