package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/activity"
)

// The activity planners' state is kept in a small JSON file next to the
// state file (<state.path>.activity), not in the bbolt file: it only
// decides *when* targets are polled, never what an event is, so losing it
// (a crash between two saves, a deleted or unreadable file) costs requests
// at the next start, never an event; and the state file's schema and its
// migrations stay as they are. It is written every activitySaveEvery and
// at shutdown, to a temporary file renamed over the old one.

// activitySaveEvery is how often the planners' state is saved while the
// daemon runs: a crash loses at most this much of it (the next start
// then polls a little more than needed).
const activitySaveEvery = time.Minute

// activityStateVersion is the file's format; another is ignored.
const activityStateVersion = 1

// activityStatePath is where cfg's planners' state is kept.
func activityStatePath(statePath string) string { return statePath + ".activity" }

type activityState struct {
	Version  int                             `json:"version"`
	Saved    time.Time                       `json:"saved"`
	Services map[string]activityServiceState `json:"services"`
}

type activityServiceState struct {
	// Planner is the index and each target's class and due time.
	Planner activity.Snapshot `json:"planner"`
	// Participants are discovery's participants of each live session
	// (discovered Services only): with them a restart lists none again.
	Participants map[string][]string `json:"participants,omitempty"`
}

// participantKeeper is discovery's half of the saved state
// (*discover.Discoverer).
type participantKeeper interface {
	Participants(serviceSID string) map[string][]string
	RestoreParticipants(serviceSID string, bySession map[string][]string)
}

// restore reads the planners' state saved by an earlier run at path and
// hands it to the planners and to discovery; called once, before the
// first targets. A missing file is a first start; an unreadable one is
// logged and ignored: the planners start cold, as before issue 13.
func (w *activityWiring) restore(path string) {
	w.statePath = path
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var st activityState
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err == nil && st.Version != activityStateVersion {
		err = fmt.Errorf("version %d, want %d", st.Version, activityStateVersion)
	}
	if err != nil {
		w.log.Warn("activity state not restored; planning from scratch", zap.String("path", path), zap.Error(err))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	targets := 0
	for svc, s := range st.Services {
		l, ok := w.services[svc]
		if !ok {
			continue // no longer in the config
		}
		l.pl.Restore(s.Planner)
		targets += len(s.Planner.Targets)
		if k, ok := w.keepers[svc]; ok && len(s.Participants) > 0 {
			k.RestoreParticipants(svc, s.Participants)
		}
	}
	w.log.Info("activity state restored", zap.String("path", path), zap.Time("saved", st.Saved),
		zap.Int("services", len(st.Services)), zap.Int("targets", targets))
}

// save writes the planners' state to w.statePath ("" : nowhere).
func (w *activityWiring) save() error {
	if w.statePath == "" {
		return nil
	}
	now := time.Now()
	st := activityState{Version: activityStateVersion, Saved: now.UTC(), Services: map[string]activityServiceState{}}
	// Copied under w.mu and read without it: a discovery refresh holds
	// its entry's lock (which Participants takes) while it hands its
	// targets to SetTargets, which takes w.mu.
	w.mu.Lock()
	loops := make(map[string]*serviceLoop, len(w.services))
	keepers := make(map[string]participantKeeper, len(w.keepers))
	maps.Copy(loops, w.services)
	maps.Copy(keepers, w.keepers)
	w.mu.Unlock()
	for svc, l := range loops {
		s := activityServiceState{Planner: l.pl.Snapshot(now)}
		if k, ok := keepers[svc]; ok {
			s.Participants = k.Participants(svc)
		}
		st.Services[svc] = s
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save activity state: %w", err)
	}
	if err := writePrivateFile(w.statePath, b); err != nil {
		return fmt.Errorf("save activity state: %w", err)
	}
	return nil
}
