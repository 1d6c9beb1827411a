package activity

import (
	"fmt"
	"slices"
	"time"

	"github.com/monitord/monitord/internal/proxy"
)

// SetTargets replaces the planner's targets at now: discovery finds and
// drops sessions, and a reload changes the configured targets. Targets
// kept keep their class and due time. A new target is due now, as new
// activity when its session is known to the index (a session discovery
// just found), else cold like every target at New. A target removed while
// in flight is forgotten when its action is Done.
func (p *Planner) SetTargets(targets []proxy.Target, now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[string]proxy.Target, len(targets))
	service := ""
	for _, t := range targets {
		if _, dup := next[t.Key()]; dup {
			return fmt.Errorf("activity: target %s listed twice", t.Key())
		}
		if service == "" {
			service = t.ServiceSID
		} else if t.ServiceSID != service {
			return fmt.Errorf("activity: target %s is not of Service %s", t.Key(), service)
		}
		next[t.Key()] = t
	}
	for key, r := range p.byKey {
		if _, keep := next[key]; keep {
			continue
		}
		p.remove(r)
		r.queue = qNone // left behind in the new FIFO: Next skips it
		delete(p.byKey, key)
		rs := slices.DeleteFunc(p.bySession[r.t.SessionSID], func(x *target) bool { return x == r })
		if len(rs) == 0 {
			delete(p.bySession, r.t.SessionSID)
		} else {
			p.bySession[r.t.SessionSID] = rs
		}
	}
	for _, t := range targets {
		if _, ok := p.byKey[t.Key()]; ok {
			continue
		}
		p.seq++
		r := &target{t: t, class: ClassCold, interval: p.cfg.ColdEvery, due: now, seq: p.seq}
		p.byKey[t.Key()] = r
		p.bySession[t.SessionSID] = append(p.bySession[t.SessionSID], r)
		if sv, ok := p.saved[t.Key()]; ok {
			p.applySaved(r, sv)
			p.push(r)
			continue
		}
		if _, known := p.index[t.SessionSID]; known && p.indexed {
			p.markNew(r, now)
			continue
		}
		p.push(r)
	}
	return nil
}

// Class returns the class of the target with key (proxy.Target.Key), and
// false when the planner has no such target.
func (p *Planner) Class(key string) (Class, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.byKey[key]
	if !ok {
		return 0, false
	}
	return r.class, true
}

// Classes returns the class of every target, by key, into m (allocated
// when nil): /status shows them.
func (p *Planner) Classes(m map[string]Class) map[string]Class {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m == nil {
		m = make(map[string]Class, len(p.byKey))
	}
	for k, r := range p.byKey {
		m[k] = r.class
	}
	return m
}
