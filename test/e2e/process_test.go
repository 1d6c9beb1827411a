//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/admin"
)

// daemon is one `monitord run -c FILE` child process.
type daemon struct {
	t       testing.TB
	cmd     *exec.Cmd
	admin   string // host:port of the admin listener
	started time.Time
	exited  chan struct{}
	waitErr error

	mu     sync.Mutex
	stderr bytes.Buffer // the JSON log
}

// startDaemon execs monitord run with the config at path. extraEnv is
// added to the environment. The test's cleanup kills it if still running.
func startDaemon(t testing.TB, bin, path, admin string, extraEnv ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, admin: admin, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "run", "-c", path)
	d.cmd.Env = append(os.Environ(), extraEnv...)
	d.cmd.Stdout = io.Discard
	d.cmd.Stderr = lockedWriter{&d.mu, &d.stderr}
	// The child dies with the test process, whatever happens to it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start monitord: %v", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if d.Running() {
			d.cmd.Process.Kill()
			<-d.exited
		}
	})
	return d
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Running reports whether the process has not exited.
func (d *daemon) Running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Log returns the process's stderr so far.
func (d *daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// LogTail is the last n lines of the log, for failure messages.
func (d *daemon) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(d.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) Kill() {
	d.t.Helper()
	if !d.Running() {
		d.t.Fatalf("monitord exited before it was killed: %v\n%s", d.waitErr, d.LogTail(30))
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// Stop sends SIGTERM and returns the exit code, failing after d.
func (d *daemon) Stop(within time.Duration) int {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(within):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Fatalf("monitord did not exit within %v of SIGTERM\n%s", within, d.LogTail(30))
	}
	return d.cmd.ProcessState.ExitCode()
}

var adminClient = &http.Client{Timeout: 5 * time.Second}

// get fetches an admin path; code 0 means the listener did not answer.
func (d *daemon) get(path string) (int, []byte) {
	resp, err := adminClient.Get("http://" + d.admin + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// WaitReady waits until /readyz answers 200 (state open, NATS connected, a
// complete poll cycle) and returns how long after exec that was.
func (d *daemon) WaitReady(within time.Duration) time.Duration {
	d.t.Helper()
	err := waitFor(within, 50*time.Millisecond, func() (bool, error) {
		if !d.Running() {
			return false, fmt.Errorf("monitord exited: %v", d.waitErr)
		}
		code, _ := d.get("/readyz")
		return code == http.StatusOK, nil
	})
	if err != nil {
		_, body := d.get("/readyz")
		d.t.Fatalf("monitord not ready within %v: %v (readyz: %s)\n%s", within, err, body, d.LogTail(30))
	}
	return time.Since(d.started)
}

// Metrics scrapes /metrics into name{labels} → value. Labels are kept as
// written ("monitord_polls_total{result=\"ok\"}").
func (d *daemon) Metrics() (map[string]float64, error) {
	code, body := d.get("/metrics")
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d", code)
	}
	return admin.ParseMetrics(bytes.NewReader(body))
}

// MustMetrics is Metrics or a fatal error.
func (d *daemon) MustMetrics() map[string]float64 {
	d.t.Helper()
	m, err := d.Metrics()
	if err != nil {
		d.t.Fatalf("scrape: %v\n%s", err, d.LogTail(20))
	}
	return m
}

// targetStatus is the part of /status the harness reads.
type targetStatus struct {
	ServiceSID     string    `json:"service_sid"`
	SessionSID     string    `json:"session_sid"`
	ParticipantSID string    `json:"participant_sid"`
	Health         string    `json:"health"`
	LastSuccess    time.Time `json:"last_success"`
	LastAttempt    time.Time `json:"last_attempt"`
}

type statusDoc struct {
	Outbox int            `json:"outbox_events"`
	NATS   bool           `json:"nats_connected"`
	Status []targetStatus `json:"status"`
}

// Status fetches /status.
func (d *daemon) Status() (statusDoc, error) {
	var s statusDoc
	code, body := d.get("/status")
	if code != http.StatusOK {
		return s, fmt.Errorf("/status answered %d", code)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("/status: %w", err)
	}
	return s, nil
}

// WaitSettled waits until every target except those in skip has completed
// a poll that started after since, and the outbox is empty: everything the
// world showed at since has been committed and published.
func (d *daemon) WaitSettled(since time.Time, skip map[string]bool, within time.Duration) {
	d.t.Helper()
	var last string
	err := waitFor(within, 200*time.Millisecond, func() (bool, error) {
		if !d.Running() {
			return false, fmt.Errorf("monitord exited: %v", d.waitErr)
		}
		s, err := d.Status()
		if err != nil {
			last = err.Error()
			return false, nil
		}
		behind := 0
		for _, ts := range s.Status {
			if skip[ts.ServiceSID+"/"+ts.SessionSID+"/"+ts.ParticipantSID] {
				continue
			}
			// LastSuccess is when the poll completed; one that completed
			// a second after since started after since (polls of a page
			// take milliseconds here, and the world is frozen anyway).
			if !ts.LastSuccess.After(since.Add(time.Second)) {
				behind++
			}
		}
		last = fmt.Sprintf("%d targets not polled since the freeze, outbox %d, nats %v", behind, s.Outbox, s.NATS)
		return behind == 0 && s.Outbox == 0, nil
	})
	if err != nil {
		d.t.Fatalf("monitord did not settle within %v: %v (%s)\n%s", within, err, last, d.LogTail(20))
	}
}
