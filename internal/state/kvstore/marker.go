package kvstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
)

// The pending markers. KV has no transaction over two keys, so a marker
// and its target's record are written apart, in an order that keeps one
// invariant: a record with pending events always has its marker. A stale
// marker (its target has none) costs the publisher one read; a missing one
// would hide a failure from on-call.
//
//   - A commit that adds events Puts the marker first, and stores the
//     marker's KV revision in the record it then writes (markerRev).
//   - A delete that leaves a record without events removes the marker
//     only at that revision (KV's last-revision check). A commit that
//     added events since has Put the marker again, so its revision moved
//     and the removal fails; and the record such a commit wrote holds
//     events, so it is never the record a removal acts on.
//
// A marker left stale by a commit that lost its compare-and-set stays
// until its target's next events are deleted.

// mark Puts the marker of the target named name and returns its revision.
func (s *Store) mark(ctx context.Context, name string) (uint64, error) {
	rev, err := s.kv.Put(ctx, markerPrefix+name, nil)
	if err != nil {
		return 0, fmt.Errorf("mark pending: %w", err)
	}
	return rev, nil
}

// pendingTargets lists the targets with a marker, sorted by target key.
func (s *Store) pendingTargets(ctx context.Context) (keys []string, names map[string]string, err error) {
	ns, err := s.list(ctx, markerPrefix)
	if err != nil {
		return nil, nil, err
	}
	names = make(map[string]string, len(ns))
	for _, n := range ns {
		key, err := targetKey(n)
		if err != nil {
			return nil, nil, err
		}
		names[key] = n
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys, names, nil
}

// Peek returns up to max pending events after position after (the zero
// Position: from the first): each target's events in commit order,
// targets in key order (max <= 0 means 1000). It lists the markers and
// reads the records of the targets they name.
func (s *Store) Peek(after event.Position, max int) ([]event.Record, error) {
	if max <= 0 {
		max = 1000
	}
	ctx, cancel := s.ctx()
	defer cancel()
	keys, names, err := s.pendingTargets(ctx)
	if err != nil {
		return nil, fmt.Errorf("peek outbox: %w", err)
	}
	var out []event.Record
	for _, key := range keys {
		if after != (event.Position{}) && (key < after.Target || key == after.Target && after.Seq == math.MaxUint64) {
			continue
		}
		r, st, err := s.get(ctx, names[key], true)
		if err != nil {
			return nil, fmt.Errorf("peek outbox: %s: %w", key, err)
		}
		if !st.found {
			continue
		}
		for _, e := range r.events {
			if key == after.Target && after != (event.Position{}) && e.seq <= after.Seq {
				continue
			}
			if len(out) == max {
				return out, nil
			}
			out = append(out, event.Record{Position: event.Position{Target: key, Seq: e.seq}, Message: e.msg})
		}
	}
	return out, nil
}

// Delete removes published events (after their PubAck): one
// compare-and-set per target, which keeps the target's revision, so a poll
// that loaded it before still commits. Positions no longer pending are
// ignored, so a repeated Delete is harmless.
func (s *Store) Delete(ps []event.Position) error {
	if len(ps) == 0 {
		return nil
	}
	byTarget := map[string][]uint64{}
	for _, p := range ps {
		byTarget[p.Target] = append(byTarget[p.Target], p.Seq)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	for key, seqs := range byTarget {
		if err := s.deleteEvents(ctx, key, seqs); err != nil {
			return fmt.Errorf("delete from outbox: %s: %w", key, err)
		}
	}
	return nil
}

func (s *Store) deleteEvents(ctx context.Context, key string, seqs []uint64) error {
	name := keyName(key)
	for range maxRetries {
		cur, st, err := s.get(ctx, name, true)
		if err != nil || !st.found {
			return err
		}
		rest := slices.DeleteFunc(slices.Clone(cur.events), func(e pending) bool { return slices.Contains(seqs, e.seq) })
		if len(rest) == len(cur.events) {
			return nil
		}
		var ok bool
		if !cur.live && len(rest) == 0 {
			// A forgotten target's last events: the key goes with them.
			ok, err = s.deleteRecord(ctx, name, st)
		} else {
			nr := cur
			nr.commitRev = uint64(cur.revision(st.rev))
			nr.events = rest
			_, ok, err = s.put(ctx, name, &nr, st)
		}
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if s.afterDeleteWrite != nil {
			s.afterDeleteWrite()
		}
		if len(rest) == 0 && cur.markerRev != 0 {
			// Fails harmlessly when a commit marked the target since.
			if _, err := s.deleteAt(ctx, markerPrefix+name, cur.markerRev); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("unmark: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("key rewritten %d times", maxRetries)
}

// OutboxStats returns the number of pending events of all targets, their
// encoded size, and when the oldest was committed (zero when empty). It
// reads the record of every marked target: nothing in the common case, an
// empty outbox.
func (s *Store) OutboxStats() (events int, size int64, oldest time.Time, err error) {
	ctx, cancel := s.ctx()
	defer cancel()
	keys, names, err := s.pendingTargets(ctx)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	for _, key := range keys {
		r, st, err := s.get(ctx, names[key], true)
		if err != nil {
			return 0, 0, time.Time{}, fmt.Errorf("outbox stats: %s: %w", key, err)
		}
		if !st.found {
			continue
		}
		for _, e := range r.events {
			events++
			size += int64(len(e.msg.ID) + len(e.msg.Subject) + len(e.msg.Data))
			if oldest.IsZero() || e.at.Before(oldest) {
				oldest = e.at
			}
		}
	}
	return events, size, oldest, nil
}
