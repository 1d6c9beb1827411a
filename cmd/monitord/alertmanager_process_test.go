// The real Alertmanager process that TestAlertmanagerPipeline talks to: found
// on PATH or built from the module proxy, started and stopped on one port.
package main

import (
	"encoding/json"
	"fmt"
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
