//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxysim"
	"github.com/monitord/monitord/internal/state"
)

// rig is one scenario's world: the simulator, NATS, the subscriber and the
// config of the monitord processes it starts.
type rig struct {
	t       *testing.T
	bin     string
	dir     string
	sim     *simServer
	nats    *natsServer
	rec     *recorder
	cfg     daemonConfig
	cfgPath string
}

// rigOptions shape the world and the daemon's config.
type rigOptions struct {
	Sim      proxysim.Options
	Schedule string
	StateDir string // "" = a temp dir
	Config   func(*daemonConfig)
}

// newRig starts the simulator and NATS and writes monitord's config; the
// subscriber starts with the first daemon (the stream is monitord's).
func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, bin: monitordBinary(t), dir: t.TempDir()}
	r.sim = startSim(t, o.Sim)
	r.nats = startNATS(t)
	stateDir := o.StateDir
	if stateDir == "" {
		stateDir = r.dir
	}
	r.cfg = daemonConfig{
		SimURL:    r.sim.URL,
		Creds:     r.sim.Credentials(),
		NATSURL:   r.nats.URL(),
		StatePath: filepath.Join(stateDir, "monitord.db"),
		AdminAddr: freeLoopbackAddr(t),
		Targets:   r.sim.Targets(),
		Schedule:  o.Schedule,
		Mode:      scenarioMode,
	}
	if o.Config != nil {
		o.Config(&r.cfg)
	}
	r.cfgPath = writeConfig(t, r.dir, r.cfg)
	return r
}

// start execs a monitord run; the first start also starts the subscriber.
func (r *rig) start(env ...string) *daemon {
	r.t.Helper()
	d := startDaemon(r.t, r.bin, r.cfgPath, r.cfg.AdminAddr, env...)
	if r.rec == nil {
		r.rec = startRecorder(r.t, r.nats.URL(), 30*time.Second)
	}
	return d
}

// finish freezes the world, waits until monitord has polled every target
// (but skip) after the freeze and published everything, waits until the
// subscriber has every message of the stream, stops monitord with SIGTERM
// (exit 0 expected) and returns the comparison with the simulator's record.
func (r *rig) finish(d *daemon, firstStart, baselined time.Time, skip map[string]bool, extra []proxysim.Change) verdict {
	r.t.Helper()
	frozen := r.sim.Clock.Freeze()
	d.WaitSettled(frozen, skip, 60*time.Second)
	r.rec.WaitCaughtUp(r.t, 30*time.Second)
	if code := d.Stop(30 * time.Second); code != 0 {
		r.t.Errorf("monitord exited %d after SIGTERM, want 0\n%s", code, d.LogTail(20))
	}
	if err := r.rec.DecodeError(); err != nil {
		r.t.Errorf("subscriber: %v", err)
	}
	if dups := r.rec.Duplicates(); len(dups) > 0 {
		r.t.Errorf("subscriber received %d ids more than once: %v", len(dups), dups)
	}
	changes := append(r.sim.Changes(), extra...)
	return compare(changes, r.rec.Events(), firstStart, baselined, skip)
}

// stateReport is what checkState found in a state file.
type stateReport struct {
	Targets   int
	Outbox    int
	OutboxIDs []string
	Took      time.Duration
}

// checkState opens the state file as monitord does, reads every target and
// the whole outbox, and closes it: a file that a crash left unreadable or
// inconsistent fails here.
func checkState(path string) (rep stateReport, err error) {
	start := time.Now()
	db, err := state.Open(path, state.Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		return stateReport{}, fmt.Errorf("open: %w", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	keys, err := db.Keys()
	if err != nil {
		return stateReport{}, fmt.Errorf("keys: %w", err)
	}
	for _, k := range keys {
		if _, rev, err := db.Load(k); err != nil || rev == 0 {
			return stateReport{}, fmt.Errorf("load %s: revision %d, %v", k, rev, err)
		}
	}
	n, _, _, err := db.OutboxStats()
	if err != nil {
		return stateReport{}, fmt.Errorf("outbox stats: %w", err)
	}
	var after event.Position
	seen := 0
	var ids []string
	for range n + 1 {
		recs, err := db.Peek(after, 1000)
		if err != nil {
			return stateReport{}, fmt.Errorf("peek after %+v: %w", after, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			if (rec.Target == after.Target && rec.Seq <= after.Seq) || rec.ID == "" || rec.Subject == "" || len(rec.Data) == 0 {
				return stateReport{}, fmt.Errorf("outbox record %+v after %+v is malformed", rec.Position, after)
			}
			after = rec.Position
			seen++
			ids = append(ids, rec.ID)
		}
	}
	if seen != n {
		return stateReport{}, fmt.Errorf("outbox stats say %d events, peek found %d", n, seen)
	}
	return stateReport{Targets: len(keys), Outbox: n, OutboxIDs: ids, Took: time.Since(start)}, nil
}

// figure prints one result line; the docs quote these.
func figure(t *testing.T, format string, a ...any) {
	t.Helper()
	t.Logf("FIGURE "+format, a...)
}

// targetKey is service/session/participant, as received.TargetKey.
func targetKey(t proxysim.Target) string { return t.String() }
