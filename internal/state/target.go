package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/monitord/monitord/internal/diff"
	"github.com/monitord/monitord/internal/event"
)

// TargetState is everything stored about one target.
type TargetState struct {
	// Snapshot is the target's last complete listing; Snapshot.Baselined is
	// its baseline flag.
	Snapshot diff.Snapshot
	Health   Health
}

// Health is a target's polling record, kept across restarts so an outage
// that spans one is still one outage (one target_error, one
// target_recovered).
type Health struct {
	LastAttempt         time.Time
	LastSuccess         time.Time
	FailingSince        time.Time
	ConsecutiveFailures int
	Failing             bool
	// Outage counts the target's outages; it makes the ids of successive
	// target_error events differ.
	Outage    uint64
	LastError string
}

// durableEqual compares everything but LastAttempt and LastSuccess: the
// fields whose change is worth a disk write on its own.
func (h Health) durableEqual(o Health) bool {
	return h.FailingSince.Equal(o.FailingSince) && h.ConsecutiveFailures == o.ConsecutiveFailures &&
		h.Failing == o.Failing && h.Outage == o.Outage && h.LastError == o.LastError
}

// Load returns the stored state of the target with the given key; found is
// false (and the state zero) for a target never committed.
func (db *DB) Load(key string) (ts TargetState, found bool, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		k := []byte(key)
		if v := tx.Bucket(bucketSnapshots).Get(k); v != nil {
			found = true
			if err := ts.Snapshot.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
		}
		if v := tx.Bucket(bucketHealth).Get(k); v != nil {
			found = true
			h, err := decodeHealth(v)
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			ts.Health = h
		}
		return nil
	})
	if err != nil {
		return TargetState{}, false, fmt.Errorf("load state of %s: %w", key, err)
	}
	db.mu.Lock()
	if pt, ok := db.times[key]; ok {
		ts.Health.LastAttempt = laterOf(ts.Health.LastAttempt, pt.attempt)
		ts.Health.LastSuccess = laterOf(ts.Health.LastSuccess, pt.success)
	}
	db.mu.Unlock()
	return ts, found, nil
}

// Commit stores a target's state after a complete poll, and appends msgs
// (the poll's events, rendered) to the outbox, in one transaction: after a
// crash either all of it is there or none of it.
//
// It writes only what changed. When msgs is empty, the snapshot encodes to
// the bytes already stored and the health differs at most in LastAttempt and
// LastSuccess — an unchanged listing, the common case — Commit writes
// nothing at all and keeps the two times in memory (Load returns them; they
// reach the disk with the target's next write, or on Close). Otherwise the
// snapshot is rewritten only when its encoding differs.
//
// When the events would take the outbox past its bounds, Commit commits
// nothing and returns an error wrapping ErrOutboxFull. A commit into an
// empty outbox is always accepted, so one poll with more events than the
// bounds cannot stop its target for good.
func (db *DB) Commit(key string, ts TargetState, msgs []event.Message) error {
	bufp := db.buf()
	defer db.bufs.Put(bufp)
	snap, _ := ts.Snapshot.AppendBinary((*bufp)[:0])
	*bufp = snap
	if err := db.commit(key, snap, ts.Health, msgs); err != nil {
		return fmt.Errorf("commit state of %s: %w", key, err)
	}
	return nil
}

// CommitHealth stores a target's health after a failed poll, and appends
// msgs (target_error events) to the outbox, in one transaction. The
// snapshot is untouched: a failed poll moves no state. Bounds and the
// write-nothing case are as for Commit.
func (db *DB) CommitHealth(key string, h Health, msgs []event.Message) error {
	if err := db.commit(key, nil, h, msgs); err != nil {
		return fmt.Errorf("commit health of %s: %w", key, err)
	}
	return nil
}

func (db *DB) buf() *[]byte {
	if p, ok := db.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 4096)
	return &b
}

// commit writes snap (nil: leave the snapshot alone), h and msgs.
func (db *DB) commit(key string, snap []byte, h Health, msgs []event.Message) error {
	if key == "" {
		return errors.New("empty target key")
	}
	k := []byte(key)
	if len(msgs) == 0 {
		// Decide in a read transaction, which costs no write and no fsync,
		// whether there is anything to write.
		var same bool
		err := db.view(func(tx *bolt.Tx) error {
			if snap != nil && !bytes.Equal(tx.Bucket(bucketSnapshots).Get(k), snap) {
				return nil
			}
			v := tx.Bucket(bucketHealth).Get(k)
			if v == nil {
				return nil
			}
			stored, err := decodeHealth(v)
			if err != nil {
				return nil // rewrite it
			}
			same = stored.durableEqual(h)
			return nil
		})
		if err != nil {
			return err
		}
		if same {
			db.mu.Lock()
			db.times[key] = pollTimes{h.LastAttempt, h.LastSuccess}
			db.mu.Unlock()
			return nil
		}
	}
	hb := appendHealth(nil, h)
	// A lone commit writes at once; while other commits are writing too,
	// it joins a batch to share their transaction and fsync (see
	// Options.CommitBatch). Batch may run the function more than once (when
	// another commit in the batch fails, the rest are retried): it only
	// writes within tx.
	write := db.update
	if db.writers.Add(1) > 1 {
		write = db.batch
	}
	defer db.writers.Add(-1)
	err := write(func(tx *bolt.Tx) error {
		if snap != nil {
			sb := tx.Bucket(bucketSnapshots)
			if !bytes.Equal(sb.Get(k), snap) {
				if err := sb.Put(k, snap); err != nil {
					return err
				}
			}
		}
		if err := tx.Bucket(bucketHealth).Put(k, hb); err != nil {
			return err
		}
		return db.appendOutbox(tx, msgs)
	})
	if err != nil {
		return err
	}
	db.mu.Lock()
	delete(db.times, key)
	db.mu.Unlock()
	return nil
}

// Keys lists the keys of every target with stored state, sorted.
//
// It reads the health bucket alone: every write of a snapshot writes the
// target's health in the same transaction, so health holds every key. Its
// values are a few dozen bytes, so the keys of 10,000 targets sit on a few
// dozen pages; the snapshots bucket holds a page or more per target, and
// walking it at start-up read the whole file from a cold disk.
func (db *DB) Keys() ([]string, error) {
	var keys []string
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHealth).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list state keys: %w", err)
	}
	return keys, nil // bbolt iterates in key order
}

// Forget removes the state of the given targets (removed from config), so
// the file does not grow forever. Their events already in the outbox stay
// and are published. Unknown keys are ignored.
func (db *DB) Forget(keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	err := db.update(func(tx *bolt.Tx) error {
		for _, key := range keys {
			for _, name := range [][]byte{bucketSnapshots, bucketHealth} {
				if err := tx.Bucket(name).Delete([]byte(key)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget targets: %w", err)
	}
	db.mu.Lock()
	for _, key := range keys {
		delete(db.times, key)
	}
	db.mu.Unlock()
	return nil
}

// Health encoding, version 1: version byte | LastAttempt | LastSuccess |
// FailingSince (each a presence byte, then varint Unix seconds and uvarint
// nanoseconds when present) | varint ConsecutiveFailures | Failing byte |
// uvarint Outage | uvarint length + LastError.
const healthVersion = 1

func appendHealth(b []byte, h Health) []byte {
	b = append(b, healthVersion)
	for _, t := range [...]time.Time{h.LastAttempt, h.LastSuccess, h.FailingSince} {
		if t.IsZero() {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	b = binary.AppendVarint(b, int64(h.ConsecutiveFailures))
	if h.Failing {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, h.Outage)
	b = binary.AppendUvarint(b, uint64(len(h.LastError)))
	return append(b, h.LastError...)
}

var errBadHealth = errors.New("bad health encoding")

func decodeHealth(b []byte) (Health, error) {
	var h Health
	if len(b) == 0 || b[0] != healthVersion {
		return h, errBadHealth
	}
	b = b[1:]
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	ok := true
	for _, t := range [...]*time.Time{&h.LastAttempt, &h.LastSuccess, &h.FailingSince} {
		if len(b) == 0 {
			return h, errBadHealth
		}
		set := b[0]
		b = b[1:]
		if set == 0 {
			continue
		}
		sec, n := binary.Varint(b)
		if n <= 0 {
			return h, errBadHealth
		}
		b = b[n:]
		ns := uv()
		ok = ok && b != nil && ns < 1e9
		*t = time.Unix(sec, int64(ns)).UTC()
	}
	cf, n := binary.Varint(b)
	if !ok || n <= 0 || len(b) < n+1 {
		return h, errBadHealth
	}
	h.ConsecutiveFailures = int(cf)
	h.Failing = b[n] == 1
	b = b[n+1:]
	h.Outage = uv()
	l := uv()
	if b == nil || l != uint64(len(b)) {
		return h, errBadHealth
	}
	h.LastError = string(b)
	return h, nil
}
