package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/monitord/monitord/internal/alertmgr"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
)

// exportedMetrics returns every metric name the daemon registers, with its
// label names: built by startDaemon exactly as `run` builds it, discovery
// included, and read through Describe so that vectors no poll has touched
// yet are listed too. Those of `monitord alertmanager` are added.
func exportedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	sim := proxysim.New(proxysim.Options{Seed: 1, Services: 2})
	o := demoOptions{targets: 4, schedule: "@every 1m", discover: true, failureRate: 0.2, seed: 1}
	cfg := demoConfig(o, sim, "http://127.0.0.1:1", "nats://127.0.0.1:1", t.TempDir())
	d, err := startDaemon(context.Background(), cfg, zap.NewNop(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	// poll.mode activity exports the planners' metrics besides.
	acfg := demoConfig(o, sim, "http://127.0.0.1:1", "nats://127.0.0.1:1", t.TempDir())
	acfg.Poll.Mode = config.PollModeActivity
	acfg.Admin.Listen = ""
	ad, err := startDaemon(context.Background(), acfg, zap.NewNop(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ad.close()

	ch := make(chan *prometheus.Desc, 64)
	go func() {
		d.metrics.Registry().Describe(ch)
		ad.metrics.Registry().Describe(ch)
		alertmgr.NewMetrics().Registry().Describe(ch)
		close(ch)
	}()
	nameRE := regexp.MustCompile(`fqName: "([^"]+)"`)
	labelsRE := regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
	out := map[string]map[string]bool{}
	for desc := range ch {
		s := desc.String()
		m := nameRE.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("cannot read the name of %s", s)
		}
		labels := map[string]bool{"instance": true, "job": true} // added by the scrape
		if l := labelsRE.FindStringSubmatch(s); l != nil && l[1] != "" {
			for _, n := range strings.Split(l[1], ",") {
				labels[n] = true
			}
		}
		out[m[1]] = labels
	}
	if len(out) < 20 {
		t.Fatalf("only %d metrics described: %v", len(out), out)
	}
	return out
}

var (
	metricRefRE = regexp.MustCompile(`\b(monitord_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	matcherRE   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
)

// checkMetricRefs reports every monitord_* name in text that the daemon
// does not export, and every label matcher on a label the metric lacks.
func checkMetricRefs(t *testing.T, where, text string, metrics map[string]map[string]bool) int {
	t.Helper()
	refs := 0
	for _, m := range metricRefRE.FindAllStringSubmatch(text, -1) {
		name := m[1]
		labels, ok := metrics[name]
		if !ok {
			// A histogram's series: _bucket, _sum, _count.
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suf); cut {
					labels, ok = metrics[base]
					if ok && suf == "_bucket" {
						labels = withLabel(labels, "le")
					}
					break
				}
			}
		}
		if !ok {
			t.Errorf("%s: metric %s is not exported by the daemon", where, name)
			continue
		}
		refs++
		for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			if !labels[lm[1]] {
				t.Errorf("%s: %s has no label %q (it has %v)", where, name, lm[1], keys(labels))
			}
		}
	}
	return refs
}

func withLabel(l map[string]bool, name string) map[string]bool {
	out := map[string]bool{name: true}
	for k := range l {
		out[k] = true
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules keeps docs/alerts/monitord.rules.yml in step with the
// code: it is well-formed Prometheus rule YAML (unknown keys refused), and
// every metric and label it uses is one the daemon exports.
func TestAlertRules(t *testing.T) {
	metrics := exportedMetrics(t)
	raw, err := os.ReadFile("../../docs/alerts/monitord.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("rules file: %v", err)
	}
	if len(f.Groups) == 0 {
		t.Fatal("rules file has no groups")
	}
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert
			switch {
			case r.Alert == "":
				t.Errorf("%s: a rule without an alert name", g.Name)
			case seen[r.Alert]:
				t.Errorf("%s: alert name used twice", where)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("%s: empty expr", where)
			case r.Labels["severity"] != "page" && r.Labels["severity"] != "warning":
				t.Errorf("%s: severity %q, want page or warning", where, r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Errorf("%s: no summary annotation", where)
			}
			seen[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", where, r.Expr)
			}
			if n := checkMetricRefs(t, where, r.Expr, metrics); n == 0 && !strings.Contains(r.Expr, "up{") {
				t.Errorf("%s: expr uses no monitord metric: %q", where, r.Expr)
			}
		}
	}
	// What issue 6 asks the rules to cover.
	for _, want := range []string{"MonitordMessagesFailed", "MonitordTargetsUnhealthy", "MonitordOutboxBackingUp",
		"MonitordNoSuccessfulPoll", "MonitordHeartbeatAbsent"} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestDocsMetricNames: every metric the README and the docs name is one the
// daemon exports.
func TestDocsMetricNames(t *testing.T) {
	metrics := exportedMetrics(t)
	for _, path := range []string{"../../README.md", "../../docs/operations.md", "../../docs/daemon.md",
		"../../docs/events.md", "../../docs/alerts.md", "../../docs/performance.md", "../../docs/reliability.md", "../../systemd/README.md"} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkMetricRefs(t, strings.TrimPrefix(path, "../../"), string(raw), metrics)
	}
}
