package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/admin"
	"github.com/monitord/monitord/internal/alertmgr"
	"github.com/monitord/monitord/internal/proxysim"
)

// alertmanagerModule is what the test builds when no Alertmanager binary is
// on PATH, so that `go test ./...` needs only Go (README).
const alertmanagerModule = "github.com/prometheus/alertmanager@v0.35.0"

var (
	amBinOnce sync.Once
	amBin     string
	amBinErr  error
)

// alertmanagerBinary returns Debian's prometheus-alertmanager (or an
// alertmanager) from PATH, or else builds the module above into the user's
// cache directory once: the module proxy serves its source without the
// web UI's built assets, which the binary embeds, so empty placeholders
// stand in for them (the API needs none).
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	amBinOnce.Do(func() { amBin, amBinErr = findOrBuildAlertmanager() })
	if amBinErr != nil {
		t.Fatalf("alertmanager binary: %v", amBinErr)
	}
	return amBin
}

func findOrBuildAlertmanager() (string, error) {
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "monitord-test", strings.ReplaceAll(filepath.Base(alertmanagerModule), "@", "-"))
	bin := filepath.Join(dir, "alertmanager")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	work, err := os.MkdirTemp("", "monitord-am-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	// CGO off: a static binary that needs no C compiler on the machine.
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
	dl := exec.Command("go", "mod", "download", "-json", alertmanagerModule)
	dl.Dir, dl.Env = work, env
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", alertmanagerModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no directory in %s", alertmanagerModule, out)
	}
	src := filepath.Join(work, "src")
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		return "", fmt.Errorf("copy module: %w", err)
	}
	for _, ui := range []string{"elm", "mantine"} {
		d := filepath.Join(src, "ui", "app", "dist", ui)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(d, "index.html"), []byte("built for monitord's tests: API only\n"), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, fmt.Sprintf("alertmanager.%d", os.Getpid()))
	build := exec.Command("go", "build", "-o", tmp, "./cmd/alertmanager")
	build.Dir, build.Env = src, env
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", alertmanagerModule, err, out)
	}
	return bin, os.Rename(tmp, bin) // atomic: a concurrent build wins or loses whole
}

// amProcess is a real Alertmanager started by the test.
type amProcess struct {
	t                     *testing.T
	bin, addr, cfg, store string
	cmd                   *exec.Cmd
	logs                  *syncBuffer
	exited                chan struct{}
}

// amConfig groups as docs/alerts/alertmanager.yml does, with short waits,
// and notifies a webhook of the test (%s): the pages on-call would get.
const amConfig = `route:
  receiver: hook
  group_by: [alertname, service, error_code]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: false
`

// pages records the notifications Alertmanager sends to the webhook.
type pages struct {
	mu    sync.Mutex
	byKey map[string]int // group key → alerts in its latest notification
}

func newPages(t *testing.T) (*pages, string) {
	p := &pages{byKey: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			GroupKey string `json:"groupKey"`
			Alerts   []any  `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		p.mu.Lock()
		p.byKey[msg.GroupKey] = len(msg.Alerts)
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL + "/hook"
}

// latest returns, per notified group, the alerts of its latest page.
func (p *pages) latest() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.byKey {
		out[k] = v
	}
	return out
}

func startAlertmanagerProcess(t *testing.T, addr, hookURL string) *amProcess {
	t.Helper()
	dir := t.TempDir()
	a := &amProcess{t: t, bin: alertmanagerBinary(t), addr: addr, cfg: filepath.Join(dir, "am.yml"),
		store: filepath.Join(dir, "data"), logs: &syncBuffer{}}
	if err := os.WriteFile(a.cfg, []byte(fmt.Sprintf(amConfig, hookURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("alertmanager logs:\n%s", a.logs.String())
		}
	})
	return a
}

func (a *amProcess) start() {
	a.t.Helper()
	a.cmd = exec.Command(a.bin, "--config.file="+a.cfg, "--storage.path="+a.store,
		"--web.listen-address="+a.addr, "--cluster.listen-address=") // no gossip port to collide on
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(a.cmd, a.exited)
	waitFor(a.t, "alertmanager ready", 30*time.Second, func() bool {
		select {
		case <-a.exited:
			a.t.Fatalf("alertmanager exited:\n%s", a.logs.String())
		default:
		}
		c, _ := httpGet("http://" + a.addr + "/-/ready")
		return c == 200
	})
}

func (a *amProcess) stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

// amGroup is one group of GET /api/v2/alerts/groups.
type amGroup struct {
	Labels map[string]string `json:"labels"`
	Alerts []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Status      struct {
			State string `json:"state"`
		} `json:"status"`
	} `json:"alerts"`
}

func (a *amProcess) groups() []amGroup {
	resp, err := http.Get("http://" + a.addr + "/api/v2/alerts/groups")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var gs []amGroup
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&gs) != nil {
		return nil
	}
	return gs
}

// interactions returns the interaction label of every alert Alertmanager
// holds, sorted.
func interactions(gs []amGroup) []string {
	var out []string
	for _, g := range gs {
		for _, al := range g.Alerts {
			out = append(out, al.Labels["interaction"])
		}
	}
	slices.Sort(out)
	return out
}

// TestAlertmanagerPipeline runs the real pipeline: simulator → monitord run
// → JetStream → monitord alertmanager → a real Alertmanager process. A
// burst of failures on one Service with one code is one alert group whose
// alerts carry the SIDs and the code; Alertmanager down for a while (and
// restarted empty, on the same port) loses nothing.
func TestAlertmanagerPipeline(t *testing.T) {
	noLeaks(t)
	amAddr := freePort(t)
	hook, hookURL := newPages(t)
	am := startAlertmanagerProcess(t, amAddr, hookURL)
	ns := testNATS(t)
	sim, simURL := frozenSim(t, proxysim.Options{Seed: 7, Sessions: 1, Participants: 1, Interactions: 2})
	tg := sim.Targets()[0]
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "monitord.yaml")
	adminAddr, bridgeAddr := freePort(t), freePort(t)
	e2eConfig{
		SimURL: simURL, Creds: sim.Credentials(), NATSURL: ns.ClientURL(),
		State: filepath.Join(dir, "state.db"), Admin: adminAddr, Targets: []proxysim.Target{tg}, Schedule: "@every 1s",
	}.write(t, cfgPath)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "alertmanager: {urls: [http://%s], timeout: 2s, min_backoff: 100ms, max_backoff: 500ms, ack_wait: 10s, "+
		"resend_interval: 1s, listen: %q}\n", amAddr, bridgeAddr)
	f.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, _ := startRun(t, ctx, cfgPath)
	bridgeLogs := &syncBuffer{}
	bridgeDone := make(chan error, 1)
	go func() { bridgeDone <- run(ctx, []string{"alertmanager", "-c", cfgPath}, io.Discard, bridgeLogs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", bridgeLogs.String())
		}
	})
	waitFor(t, "/readyz", 20*time.Second, func() bool { c, _ := httpGet("http://" + adminAddr + "/readyz"); return c == 200 })

	// The burst: 20 messages on one Service fail.
	var want []string
	add := func(n int) {
		for range n {
			sid, err := sim.AddInteraction(tg, "undelivered")
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, sid)
		}
		slices.Sort(want)
	}
	add(20)
	waitFor(t, "20 alerts in Alertmanager", 30*time.Second, func() bool { return slices.Equal(interactions(am.groups()), want) })
	gs := am.groups()
	codes := map[string]bool{}
	for _, g := range gs {
		if g.Labels["alertname"] != alertmgr.AlertFailed || g.Labels["service"] != tg.ServiceSID {
			t.Errorf("group %v: want alertname %s, service %s", g.Labels, alertmgr.AlertFailed, tg.ServiceSID)
		}
		code := g.Labels["error_code"]
		if code == "" || codes[code] {
			t.Errorf("group %v: error_code missing or grouped twice", g.Labels)
		}
		codes[code] = true
		for _, al := range g.Alerts {
			an := al.Annotations
			switch {
			case al.Labels["error_code"] != code:
				t.Errorf("alert %v in the group of code %s", al.Labels, code)
			case an["interaction_sid"] != al.Labels["interaction"] || !strings.HasPrefix(an["message_sid"], "SM") ||
				an["session_sid"] != tg.SessionSID || an["participant_sid"] != tg.ParticipantSID || an["summary"] == "":
				t.Errorf("alert %v lacks its SIDs: %v", al.Labels, an)
			case al.Status.State != "active":
				t.Errorf("alert %v is %s", al.Labels, al.Status.State)
			}
		}
	}
	// Today's simulator gives no error codes: the burst is one group
	// (error_code "unknown"); with codes, one group per code.
	if len(gs) != len(codes) || len(gs) == 0 {
		t.Errorf("%d groups for %d codes", len(gs), len(codes))
	}
	t.Logf("burst: %d alerts in %d group(s) %v", len(want), len(gs), codes)
	// What on-call gets: one notification group per code, whose latest
	// page lists every alert of the burst (a poll cycle may split the
	// burst over two notifications of the same group, never two groups).
	waitFor(t, "the burst paged as one group per code", 30*time.Second, func() bool {
		l := hook.latest()
		total := 0
		for _, n := range l {
			total += n
		}
		return len(l) == len(codes) && total == len(want)
	})

	// Alertmanager goes down; 15 more messages fail meanwhile, and the
	// bridge retries.
	am.stop()
	posted := func() map[string]float64 {
		resp, err := http.Get("http://" + bridgeAddr + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		m, _ := admin.ParseMetrics(resp.Body)
		return m
	}
	add(15)
	waitFor(t, "the bridge to fail posting", 30*time.Second, func() bool {
		return posted()["monitord_alertmanager_post_errors_total"] >= 3
	})
	// Back on the same port, empty (Alertmanager keeps alerts in memory):
	// the new alerts arrive from the stream, the older ones re-sent.
	am.start()
	waitFor(t, "all 35 alerts after the outage", 30*time.Second, func() bool {
		return slices.Equal(interactions(am.groups()), want)
	})
	// Each event was posted from the stream once (the rest were re-sends).
	waitFor(t, "35 events posted and acked", 10*time.Second, func() bool {
		return posted()["monitord_alertmanager_alerts_posted_total"] == 35
	})

	cancel()
	for name, ch := range map[string]<-chan error{"run": done, "alertmanager": bridgeDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s returned %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not return after cancel", name)
		}
	}
}
