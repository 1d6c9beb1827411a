package activity

import (
	"time"
)

// Saved is what the planner keeps of one target across a restart: its
// class, when it is due, and its back-off step. The listing's fingerprint
// is not kept (its hash seed is the process's), so the first listing after
// a restart counts as a change: a hot target's back-off starts again at
// HotMin, the cautious side.
type Saved struct {
	Class Class         `json:"class"`
	Due   time.Time     `json:"due"`
	Every time.Duration `json:"every,omitempty"` // the interval ending at Due
	Step  uint          `json:"step,omitempty"`
}

// Snapshot is the planner's state worth keeping across a restart: the
// index (session SID → date_last_interaction) and each target's Saved, by
// key. Without it a restart baselines the index again (sessions that moved
// while monitord was down are not polled as new) and sweeps every target
// at once, as cold.
type Snapshot struct {
	Index   map[string]time.Time `json:"index,omitempty"`
	Targets map[string]Saved     `json:"targets,omitempty"`
}

// Snapshot returns the planner's state now. A target in flight or waiting
// as new activity is saved as due at once.
func (p *Planner) Snapshot(now time.Time) Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Snapshot{Targets: make(map[string]Saved, len(p.byKey))}
	if p.indexed {
		s.Index = make(map[string]time.Time, len(p.index))
		for sid, at := range p.index {
			s.Index[sid] = at
		}
	}
	for k, r := range p.byKey {
		sv := Saved{Class: r.class, Due: r.due, Every: r.interval, Step: r.step}
		if r.queue != qHeap {
			sv.Due = now
		}
		s.Targets[k] = sv
	}
	return s
}

// Restore takes a Snapshot of an earlier run, before the planner has read
// its index. The index is the baseline the first read compares against:
// a session that moved meanwhile is new activity at once. A target known
// now, or added later by SetTargets, takes its saved class and due time
// (new activity is due at once); one the snapshot does not know stays cold
// and due now. Targets of the snapshot that never come are forgotten at
// the next Snapshot.
func (p *Planner) Restore(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(s.Index) > 0 && !p.indexed {
		p.indexed = true
		for sid, at := range s.Index {
			p.index[sid] = at
		}
	}
	p.saved = make(map[string]Saved, len(s.Targets)) // emptied as targets come: not the caller's map
	for k, sv := range s.Targets {
		p.saved[k] = sv
	}
	for k, r := range p.byKey {
		if r.queue != qHeap {
			continue
		}
		if sv, ok := p.saved[k]; ok {
			p.remove(r)
			p.applySaved(r, sv)
			p.push(r)
		}
	}
}

// applySaved gives r its saved class and due time. p.mu is held; r is in
// no queue.
func (p *Planner) applySaved(r *target, sv Saved) {
	delete(p.saved, r.t.Key())
	switch sv.Class {
	case ClassHot:
		r.class, r.due, r.interval, r.step = ClassHot, sv.Due, sv.Every, sv.Step
	case ClassCold:
		r.class, r.due, r.interval = ClassCold, sv.Due, sv.Every
	default: // new activity not served yet: at once, with the hot
		r.class, r.due, r.interval = ClassHot, sv.Due, p.cfg.HotMin
	}
	if r.interval <= 0 {
		r.interval = p.cfg.ColdEvery
	}
}
