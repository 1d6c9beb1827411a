package state

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/monitord/monitord/internal/event"
)

// Memory is the store contract of DB held in memory, for `once --dry-run`
// (which must read and write no state file) and tests: the same
// revisions, conflicts, per-target pending events and bounds, nothing
// durable. Its methods are safe for concurrent use.
type Memory struct {
	opts Options

	mu      sync.Mutex
	targets map[string]*memTarget
	pending map[string][]memRecord // by target key, in Seq order
	n       int64                  // pending events
	size    int64                  // their size as DB would store them
}

type memTarget struct {
	rev     Revision
	nextSeq uint64
	ts      TargetState
}

type memRecord struct {
	seq  uint64
	at   time.Time
	size int64
	msg  event.Message
}

// NewMemory returns an empty Memory with opts' outbox bounds (zero fields
// take the defaults, as for Open).
func NewMemory(opts Options) (*Memory, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Memory{opts: opts, targets: map[string]*memTarget{}, pending: map[string][]memRecord{}}, nil
}

// Load is DB.Load.
func (m *Memory) Load(key string) (TargetState, Revision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.targets[key]
	if !ok {
		return TargetState{}, 0, nil
	}
	return t.ts, t.rev, nil
}

// Commit is DB.Commit. Every accepted commit but an unchanged one (no
// events, no snapshot, the same durable health) moves the revision, as on
// disk.
func (m *Memory) Commit(key string, rev Revision, next Next, events []event.Message) (Revision, error) {
	if err := CheckKey(key); err != nil {
		return 0, fmt.Errorf("commit state of %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.targets[key]
	var cur Revision
	if ok {
		cur = t.rev
	}
	if cur != rev {
		return 0, fmt.Errorf("commit state of %s: %w: loaded at revision %d, now at %d", key, ErrConflict, rev, cur)
	}
	if ok && len(events) == 0 && next.Snapshot == nil && t.ts.Health.DurableEqual(next.Health) {
		t.ts.Health.LastAttempt, t.ts.Health.LastSuccess = next.Health.LastAttempt, next.Health.LastSuccess
		return rev, nil
	}
	recs := make([]memRecord, len(events))
	var add int64
	now := time.Now()
	for i, e := range events {
		e.Data = append([]byte(nil), e.Data...)
		recs[i] = memRecord{at: now, size: recordSize(e), msg: e}
		add += recs[i].size
	}
	if len(recs) > 0 && m.n > 0 && (m.n+int64(len(recs)) > int64(m.opts.MaxOutboxEvents) || m.size+add > m.opts.MaxOutboxBytes) {
		return 0, fmt.Errorf("commit state of %s: %w: %d events (%d bytes) waiting, %d more (%d bytes) would pass the limit of %d events or %d bytes",
			key, ErrOutboxFull, m.n, m.size, len(recs), add, m.opts.MaxOutboxEvents, m.opts.MaxOutboxBytes)
	}
	if !ok {
		t = &memTarget{nextSeq: 1}
		if p := m.pending[key]; len(p) > 0 {
			t.nextSeq = p[len(p)-1].seq + 1 // forgotten with events pending
		}
		m.targets[key] = t
	}
	for i := range recs {
		recs[i].seq = t.nextSeq
		t.nextSeq++
	}
	m.pending[key] = append(m.pending[key], recs...)
	m.n += int64(len(recs))
	m.size += add
	if next.Snapshot != nil {
		t.ts.Snapshot = *next.Snapshot
	}
	t.ts.Health = next.Health
	t.rev++
	return t.rev, nil
}

// recordSize is the size DB stores msg in, so both count the bounds alike.
func recordSize(msg event.Message) int64 {
	return int64(len(appendRecord(nil, msg, time.Time{})))
}

// Forget is DB.Forget: state goes, pending events stay until deleted.
func (m *Memory) Forget(keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.targets, k)
	}
	return nil
}

// Keys is DB.Keys.
func (m *Memory) Keys() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.targets))
	for k := range m.targets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// Peek is DB.Peek.
func (m *Memory) Peek(after event.Position, max int) ([]event.Record, error) {
	if max <= 0 {
		max = 1000
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	targets := make([]string, 0, len(m.pending))
	for k, p := range m.pending {
		if len(p) > 0 && (after == event.Position{} || k >= after.Target) {
			targets = append(targets, k)
		}
	}
	slices.Sort(targets)
	var out []event.Record
	for _, k := range targets {
		for _, r := range m.pending[k] {
			if len(out) == max {
				return out, nil
			}
			if after != (event.Position{}) && k == after.Target && r.seq <= after.Seq {
				continue
			}
			msg := r.msg
			msg.Data = append([]byte(nil), msg.Data...)
			out = append(out, event.Record{Position: event.Position{Target: k, Seq: r.seq}, Message: msg})
		}
	}
	return out, nil
}

// Delete is DB.Delete.
func (m *Memory) Delete(ps []event.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		recs := m.pending[p.Target]
		i, found := slices.BinarySearchFunc(recs, p.Seq, func(r memRecord, seq uint64) int {
			switch {
			case r.seq < seq:
				return -1
			case r.seq > seq:
				return 1
			}
			return 0
		})
		if !found {
			continue
		}
		m.n--
		m.size -= recs[i].size
		recs = slices.Delete(recs, i, i+1)
		if len(recs) == 0 {
			delete(m.pending, p.Target)
		} else {
			m.pending[p.Target] = recs
		}
	}
	return nil
}

// OutboxStats is DB.OutboxStats.
func (m *Memory) OutboxStats() (events int, size int64, oldest time.Time, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pending {
		if len(p) > 0 && (oldest.IsZero() || p[0].at.Before(oldest)) {
			oldest = p[0].at
		}
	}
	return int(m.n), m.size, oldest, nil
}

// Close does nothing: Memory has nothing to flush. It is there for the
// contract, which closes and reopens a store to test a crash.
func (m *Memory) Close() error { return nil }
