package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/natstest"
	"github.com/monitord/monitord/internal/proxysim"
)

// haDaemonConfig writes the config of one instance of an ha deployment:
// the same targets, bucket and tasks for all, its own name, admin port and
// (unused) state path.
func haDaemonConfig(t *testing.T, dir, name, simURL string, cr proxysim.Credentials, natsURLs []string,
	targets []proxysim.Target, adminAddr string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "instance: %s\n", name)
	fmt.Fprintf(&b, "twilio:\n  base_url: %s\n  messages_base_url: %s\n  account_sid: %s\n  api_key_sid: %s\n  api_key_secret: %s\n",
		simURL, simURL, cr.AccountSID, cr.APIKeySID, cr.APIKeySecret)
	b.WriteString("  limits: {max_attempts: 1, request_timeout: 5s}\n")
	b.WriteString("targets:\n")
	for _, tg := range targets {
		fmt.Fprintf(&b, "  - {service_sid: %s, session_sid: %s, participant_sid: %s}\n", tg.ServiceSID, tg.SessionSID, tg.ParticipantSID)
	}
	b.WriteString("poll: {schedule: \"@every 1s\", heartbeat_interval: 1s, shutdown_timeout: 5s}\n")
	b.WriteString("rules: {stuck_after: 24h}\n")
	fmt.Fprintf(&b, "state: {path: %s}\n", filepath.Join(dir, name+".db"))
	fmt.Fprintf(&b, "nats: {urls: [%s], stream: {replicas: 3}}\n", strings.Join(natsURLs, ", "))
	b.WriteString("ha:\n  enabled: true\n  tasks: {pinned_ttl: 2s, pull_expiry: 1s, ack_wait: 2s}\n")
	fmt.Fprintf(&b, "admin: {listen: %q}\n", adminAddr)
	b.WriteString("log: {level: debug}\n")
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func haStatus(t *testing.T, addr string) admin.StatusDoc {
	t.Helper()
	code, body := httpGet("http://" + addr + "/status")
	var doc admin.StatusDoc
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil {
		return admin.StatusDoc{}
	}
	return doc
}

// owner returns the instance of addrs whose /status says it owns svc, or "".
func owner(t *testing.T, addrs map[string]string, svc string) string {
	t.Helper()
	var found []string
	for name, addr := range addrs {
		doc := haStatus(t, addr)
		if doc.HA == nil {
			continue
		}
		for _, o := range doc.HA.Owned {
			if o.Service == svc {
				found = append(found, name)
			}
		}
	}
	if len(found) != 1 {
		return ""
	}
	return found[0]
}

// TestHADaemonsShareServices runs three `monitord run` with ha.enabled on a
// 3-node JetStream cluster: each Service is owned by one of them (their
// /status and `monitord status --cluster` agree), no state file is opened,
// a new failure is published once; the owner of its Service stops, another
// takes the Service over, and the next failure is published once too.
func TestHADaemonsShareServices(t *testing.T) {
	noLeaks(t)
	cl := natstest.StartCluster(t, 3)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 7, Services: 2, Sessions: 1, Participants: 2, Interactions: 2})
	all := sim.Targets()
	dir := t.TempDir()
	urls := strings.Split(cl.URLs(), ",")
	addrs, paths, procs := map[string]string{}, map[string]string{}, map[string]*runProc{}
	for _, name := range []string{"a", "b", "c"} {
		addrs[name] = freePort(t)
		paths[name] = haDaemonConfig(t, dir, name, simURL, sim.Credentials(), urls, all, addrs[name])
		ctx, cancel := context.WithCancel(context.Background())
		done, _ := startRun(t, ctx, paths[name])
		procs[name] = &runProc{cancel: cancel, done: done}
		t.Cleanup(func() { procs[name].stop() })
	}
	for name, addr := range addrs {
		var last string
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s /readyz: %s", name, last)
			}
		})
		waitFor(t, name+" /readyz", 30*time.Second, func() bool {
			if procs[name].exited() {
				t.Fatalf("%s: run returned %v", name, procs[name].stop())
			}
			c, body := httpGet("http://" + addr + "/readyz")
			last = body
			return c == 200
		})
	}
	services := sim.Services()
	owners := map[string]string{}
	waitFor(t, "each Service owned by one instance", 20*time.Second, func() bool {
		for _, svc := range services {
			if owners[svc] = owner(t, addrs, svc); owners[svc] == "" {
				return false
			}
		}
		return true
	})
	for name, addr := range addrs {
		doc := haStatus(t, addr)
		if doc.Mode != "ha" || doc.HA == nil || doc.HA.KV != "ok" || !slices.Equal(doc.HA.Services, services) {
			t.Errorf("%s /status: mode %q, ha %+v; want ha, kv ok, serving %v", name, doc.Mode, doc.HA, services)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".db")); !os.IsNotExist(err) {
			t.Errorf("%s: state file exists (%v): ha mode must not open it", name, err)
		}
	}
	var out, errb bytes.Buffer
	waitFor(t, "status --cluster listing the owners", 10*time.Second, func() bool {
		out.Reset()
		if err := run(context.Background(), []string{"status", "--cluster", "-c", paths["a"]}, &out, &errb); err != nil {
			t.Fatalf("status --cluster: %v\n%s", err, errb.String())
		}
		for _, svc := range services {
			if !strings.Contains(out.String(), svc+"  "+owners[svc]) {
				return false
			}
		}
		for name := range addrs {
			if !regexp.MustCompile(`(?m)^` + name + `\s+\d+\s+` + strconv.Itoa(len(services)) + `\s+\d+s ago$`).MatchString(out.String()) {
				return false // its instance record: live, serving every Service
			}
		}
		return true
	})

	se := followStream(t, context.Background(), cl.URLs())
	tg := all[0]
	if _, err := sim.AddInteraction(tg, "undelivered"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed event", 20*time.Second, func() bool { return countKind(se, "failed") == 1 })

	// The owner of the failing target's Service stops: another takes over.
	victim := owners[tg.ServiceSID]
	if err := procs[victim].stop(); err != nil {
		t.Fatalf("%s: run = %v, want nil after a clean stop", victim, err)
	}
	delete(addrs, victim)
	waitFor(t, "another instance owning "+tg.ServiceSID, 20*time.Second, func() bool {
		return owner(t, addrs, tg.ServiceSID) != ""
	})
	if _, err := sim.AddInteraction(tg, "failed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second failed event", 20*time.Second, func() bool { return countKind(se, "failed") == 2 })
	se.mu.Lock()
	defer se.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range se.events {
		if seen[e.ID] {
			t.Errorf("event %s (%s) twice", e.ID, e.Subject)
		}
		seen[e.ID] = true
	}
}

func countKind(se *streamEvents, kind string) int {
	n := 0
	for _, k := range se.kinds() {
		if strings.HasPrefix(k, kind+"/") {
			n++
		}
	}
	return n
}

// runProc is one `monitord run` of a test, stopped once.
type runProc struct {
	cancel  context.CancelFunc
	done    <-chan error
	err     error
	stopped bool
}

// exited reports whether run returned without being stopped.
func (p *runProc) exited() bool {
	if p.stopped {
		return true
	}
	select {
	case p.err = <-p.done:
		p.stopped = true
		return true
	default:
		return false
	}
}

// stop cancels run's context and returns its result.
func (p *runProc) stop() error {
	if !p.stopped {
		p.cancel()
		p.err = <-p.done
		p.stopped = true
	}
	p.cancel()
	return p.err
}

// TestHACommandsOnConfig: with ha.enabled, `once` refuses to poll outside
// the work queue (exit 2, naming the key), and `nats-assets` prints one
// bucket, one stream and a consumer per Service of the config, without
// connecting anywhere.
func TestHACommandsOnConfig(t *testing.T) {
	dir := t.TempDir()
	targets := []proxysim.Target{
		{ServiceSID: "KS" + strings.Repeat("1", 32), SessionSID: "KC" + strings.Repeat("1", 32), ParticipantSID: "KP" + strings.Repeat("1", 32)},
		{ServiceSID: "KS" + strings.Repeat("2", 32), SessionSID: "KC" + strings.Repeat("2", 32), ParticipantSID: "KP" + strings.Repeat("2", 32)},
	}
	cr := proxysim.Credentials{AccountSID: "AC" + strings.Repeat("0", 32), APIKeySID: "SK" + strings.Repeat("0", 32), APIKeySecret: "x"}
	path := haDaemonConfig(t, dir, "a", "https://127.0.0.1:1", cr, []string{"nats://127.0.0.1:1"}, targets, "127.0.0.1:0")

	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"once", "-c", path}, &out, &errb)
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "ha.enabled") {
		t.Errorf("once with ha.enabled = %v, want a usage error naming ha.enabled", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"nats-assets", "-c", path}, &out, &errb); err != nil {
		t.Fatalf("nats-assets: %v\n%s", err, errb.String())
	}
	var kv, stream, consumers int
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		switch {
		case strings.HasPrefix(line, "nats kv add monitord_state "):
			kv++
		case strings.HasPrefix(line, "nats stream add MONITORD_TASKS "):
			stream++
		case strings.HasPrefix(line, "nats consumer add MONITORD_TASKS tasks_KS"):
			consumers++
		}
	}
	if kv != 1 || stream != 1 || consumers != 2 {
		t.Errorf("nats-assets printed %d bucket, %d stream, %d consumer commands; want 1, 1, 2:\n%s", kv, stream, consumers, out.String())
	}

	// A Service watched by discovery has its consumer from the start: its
	// refresh tasks are delivered through it.
	discovered := "KS" + strings.Repeat("3", 32)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("discover:\n  - {service_sid: " + discovered + "}\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"nats-assets", "-c", path}, &out, &errb); err != nil {
		t.Fatalf("nats-assets with a discover entry: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "nats consumer add MONITORD_TASKS tasks_"+discovered+" ") {
		t.Errorf("nats-assets printed no consumer of the discovered Service %s:\n%s", discovered, out.String())
	}
}
