package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/proxysim"
)

// TestActivityStateBadFiles: a saved planner state that cannot be read (not
// JSON, another version) is logged, naming the file, and the
// planners start cold; a save that cannot write fails with an error that
// says so and leaves no temporary file; a good save is restored.
func TestActivityStateBadFiles(t *testing.T) {
	sim := proxysim.New(proxysim.Options{Seed: 1, Services: 1})
	o := demoOptions{targets: 2, schedule: "@every 1m", failureRate: 0.2, seed: 1}
	cfg := demoConfig(o, sim, "http://127.0.0.1:1", "nats://127.0.0.1:1", t.TempDir())
	cfg.Poll.Mode = config.PollModeActivity
	dir := t.TempDir()

	for name, content := range map[string]string{
		"not-json":      "{",
		"other-version": `{"version":99}`,
	} {
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			w := newActivityWiring(cfg, zap.New(core))
			path := filepath.Join(dir, name+".activity")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			w.restore(path)
			warned := logs.FilterMessage("activity state not restored; planning from scratch").All()
			if len(warned) != 1 || warned[0].ContextMap()["path"] != path {
				t.Errorf("want one warning naming %s, got %v", path, logs.All())
			}
			if n := logs.FilterMessage("activity state restored").Len(); n != 0 {
				t.Errorf("a bad file was restored")
			}
		})
	}

	// A save into a directory that does not exist fails, and says what.
	w := newActivityWiring(cfg, zap.NewNop())
	w.statePath = filepath.Join(dir, "missing", "state.db.activity")
	if err := w.save(); err == nil || !strings.Contains(err.Error(), "save activity state") {
		t.Errorf("save into a missing directory: %v, want an error saying so", err)
	}

	// A good save round-trips, and leaves only its file behind.
	good := filepath.Join(t.TempDir(), "state.db.activity")
	w.statePath = good
	if err := w.save(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(good), "*")); len(left) != 1 {
		t.Errorf("files after a save: %v, want the state file only", left)
	}
	if fi, err := os.Stat(good); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("saved state file mode %v, want 0600", fi.Mode().Perm())
	}
	core, logs := observer.New(zap.InfoLevel)
	newActivityWiring(cfg, zap.New(core)).restore(good)
	if n := logs.FilterMessage("activity state restored").Len(); n != 1 {
		t.Errorf("a good save was not restored: %v", logs.All())
	}
}
