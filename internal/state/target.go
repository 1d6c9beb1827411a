package state

import (
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

// DurableEqual compares everything but LastAttempt and LastSuccess: the
// fields whose change is worth a write on its own. Every store uses it to
// decide that a commit has nothing to write.
func (h Health) DurableEqual(o Health) bool {
	return h.FailingSince.Equal(o.FailingSince) && h.ConsecutiveFailures == o.ConsecutiveFailures &&
		h.Failing == o.Failing && h.Outage == o.Outage && h.LastError == o.LastError
}

// Revision is the version of a target's stored state: Load returns it,
// and Commit takes it back to write only over the state it was computed
// from (compare-and-set). Zero means no stored state. Revisions of one
// target only grow while its state exists; Forget starts it again at zero.
type Revision uint64

// ErrConflict is wrapped by Commit when the target's stored revision is no
// longer the one the caller loaded: another writer committed in between.
// Nothing was written; load again and redo the work.
var ErrConflict = errors.New("revision conflict")

// Next is a target's state after a poll, as Commit takes it.
type Next struct {
	// Snapshot is the next snapshot, or nil to keep the stored one: a
	// failed poll moves no snapshot, and a listing that changed nothing
	// has nothing to write (see SnapshotIfChanged).
	Snapshot *diff.Snapshot
	Health   Health
}

// SnapshotIfChanged returns &next when next differs from prev (the
// snapshot a poll loaded), else nil, for Next.Snapshot. It costs nothing
// in the common case: when nothing changed, diff.Diff returns prev's own
// entries, and the comparison stops at the shared backing array; otherwise
// it compares the decoded entries. Re-encoding the snapshot to compare it
// with the stored bytes cost about a tenth of the CPU of an unchanged poll.
func SnapshotIfChanged(prev, next diff.Snapshot) *diff.Snapshot {
	if prev.Baselined == next.Baselined && len(prev.Entries) == len(next.Entries) &&
		(len(next.Entries) == 0 || &prev.Entries[0] == &next.Entries[0] || prev.Equal(next)) {
		return nil
	}
	return &next
}

// Load returns the stored state of the target with the given key and its
// revision; the revision is zero (and the state zero) for a target never
// committed or forgotten.
func (db *DB) Load(key string) (ts TargetState, rev Revision, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		k := []byte(key)
		v := tx.Bucket(bucketTargets).Get(k)
		if v == nil {
			return nil
		}
		tr, err := decodeTargetRecord(v)
		if err != nil {
			return fmt.Errorf("health: %w", err)
		}
		rev, ts.Health = tr.rev, tr.health
		if v := tx.Bucket(bucketSnapshots).Get(k); v != nil {
			if err := ts.Snapshot.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return TargetState{}, 0, fmt.Errorf("load state of %s: %w", key, err)
	}
	db.mu.Lock()
	if pt, ok := db.times[key]; ok {
		ts.Health.LastAttempt = laterOf(ts.Health.LastAttempt, pt.attempt)
		ts.Health.LastSuccess = laterOf(ts.Health.LastSuccess, pt.success)
	}
	db.mu.Unlock()
	return ts, rev, nil
}

// Commit stores a target's state after a poll, and appends events (the
// poll's events, rendered) to the target's pending events, in one
// transaction: after a crash either all of it is there or none of it. rev
// is the revision Load returned; when the stored one has moved on since,
// Commit writes nothing and returns an error wrapping ErrConflict. It
// returns the target's new revision.
//
// It writes only what changed. When there are no events, next.Snapshot is
// nil and the health differs at most in LastAttempt and LastSuccess — an
// unchanged listing, the common case — Commit writes nothing at all and
// keeps the two times in memory (Load returns them; they reach the disk
// with the target's next write, or on Close). The revision then stays.
//
// When the events would take the pending events of all targets past the
// bounds (Options.MaxOutboxEvents, MaxOutboxBytes), Commit commits nothing
// and returns an error wrapping ErrOutboxFull. A commit while nothing is
// pending is always accepted, so one poll with more events than the bounds
// cannot stop its target for good.
func (db *DB) Commit(key string, rev Revision, next Next, events []event.Message) (Revision, error) {
	nrev, err := db.commit(key, rev, next, events)
	if err != nil {
		return 0, fmt.Errorf("commit state of %s: %w", key, err)
	}
	return nrev, nil
}

func (db *DB) buf() *[]byte {
	if p, ok := db.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 4096)
	return &b
}

// CheckKey refuses a target key that no store holds: an empty one, or one
// with a control character, which in bbolt would not sort apart from its
// pending events' keys (key, 0x00, sequence). Every store implementation
// refuses the same keys through it.
func CheckKey(key string) error {
	if key == "" {
		return errors.New("empty target key")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 {
			return fmt.Errorf("target key %q holds a control character", key)
		}
	}
	return nil
}

func (db *DB) commit(key string, rev Revision, next Next, events []event.Message) (Revision, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	k := []byte(key)
	if len(events) == 0 && next.Snapshot == nil {
		// Decide in a read transaction, which costs no write and no fsync,
		// whether there is anything to write.
		var same bool
		err := db.view(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketTargets).Get(k)
			if v == nil {
				if rev != 0 {
					return fmt.Errorf("%w: loaded at revision %d, now forgotten", ErrConflict, rev)
				}
				return nil
			}
			stored, err := decodeTargetRecord(v)
			if err != nil {
				return nil // rewrite it
			}
			if stored.rev != rev {
				return fmt.Errorf("%w: loaded at revision %d, now at %d", ErrConflict, rev, stored.rev)
			}
			same = stored.health.DurableEqual(next.Health)
			return nil
		})
		if err != nil {
			return 0, err
		}
		if same {
			db.mu.Lock()
			db.times[key] = pollTimes{next.Health.LastAttempt, next.Health.LastSuccess}
			db.mu.Unlock()
			return rev, nil
		}
	}
	var snap []byte
	if next.Snapshot != nil {
		bufp := db.buf()
		defer db.bufs.Put(bufp)
		snap, _ = next.Snapshot.AppendBinary((*bufp)[:0])
		*bufp = snap
	}
	recs, add := encodeRecords(events, time.Now())
	// A lone commit writes at once; while other commits are writing too,
	// it joins a batch to share their transaction and fsync (see
	// Options.CommitBatch). Batch may run the function more than once (when
	// another commit in the batch fails, the rest are retried): it only
	// writes within tx, and sets nrev on every run.
	write := db.update
	if db.writers.Add(1) > 1 {
		write = db.batch
	}
	defer db.writers.Add(-1)
	var nrev Revision
	err := write(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTargets)
		tr := targetRecord{nextSeq: 1}
		if v := tb.Get(k); v != nil {
			var err error
			if tr, err = decodeTargetRecord(v); err != nil {
				return fmt.Errorf("health: %w", err)
			}
		} else {
			// Forgotten with events still pending: number on after them.
			tr.nextSeq = lastPendingSeq(tx, key) + 1
		}
		if tr.rev != rev {
			if v := tb.Get(k); v == nil {
				return fmt.Errorf("%w: loaded at revision %d, now forgotten", ErrConflict, rev)
			}
			return fmt.Errorf("%w: loaded at revision %d, now at %d", ErrConflict, rev, tr.rev)
		}
		if snap != nil {
			if err := tx.Bucket(bucketSnapshots).Put(k, snap); err != nil {
				return err
			}
		}
		seq, err := db.appendPending(tx, key, tr.nextSeq, recs, add)
		if err != nil {
			return err
		}
		nrev = rev + 1
		tr = targetRecord{rev: nrev, nextSeq: seq, health: next.Health}
		return tb.Put(k, appendTargetRecord(nil, tr))
	})
	if err != nil {
		return 0, err
	}
	db.mu.Lock()
	delete(db.times, key)
	db.mu.Unlock()
	return nrev, nil
}

// Keys lists the keys of every target with stored state, sorted.
//
// It reads the targets bucket alone: every write of a snapshot writes the
// target's record in the same transaction, so it holds every key. Its
// values are a few dozen bytes, so the keys of 10,000 targets sit on a few
// dozen pages; the snapshots bucket holds a page or more per target, and
// walking it at start-up read the whole file from a cold disk.
func (db *DB) Keys() ([]string, error) {
	var keys []string
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTargets).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list state keys: %w", err)
	}
	return keys, nil // bbolt iterates in key order
}

// Forget removes the state of the given targets (removed from config, or
// discovered and gone), so the file does not grow forever; Load then
// returns revision zero. Their events still pending stay, and are
// published and removed like any other: they are changes that happened
// (a failure seen while NATS was down must still page), and numbering
// goes on after them should the target come back. Unknown keys are
// ignored.
func (db *DB) Forget(keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	err := db.update(func(tx *bolt.Tx) error {
		for _, key := range keys {
			for _, name := range [][]byte{bucketSnapshots, bucketTargets} {
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

// targetRecord is a target's value in the targets bucket: its revision,
// the sequence number its next pending event gets, and its health.
// Encoding: 8-byte big-endian revision | 8-byte big-endian next sequence |
// health encoding.
type targetRecord struct {
	rev     Revision
	nextSeq uint64
	health  Health
}

func appendTargetRecord(b []byte, tr targetRecord) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(tr.rev))
	b = binary.BigEndian.AppendUint64(b, tr.nextSeq)
	return AppendHealth(b, tr.health)
}

func decodeTargetRecord(v []byte) (targetRecord, error) {
	if len(v) < 16 {
		return targetRecord{}, errBadHealth
	}
	h, err := DecodeHealth(v[16:])
	if err != nil {
		return targetRecord{}, err
	}
	return targetRecord{rev: Revision(binary.BigEndian.Uint64(v)), nextSeq: binary.BigEndian.Uint64(v[8:]), health: h}, nil
}

// Health encoding, version 1: version byte | LastAttempt | LastSuccess |
// FailingSince (each a presence byte, then varint Unix seconds and uvarint
// nanoseconds when present) | varint ConsecutiveFailures | Failing byte |
// uvarint Outage | uvarint length + LastError.
const healthVersion = 1

// AppendHealth appends h's encoding to b. It is exported so that every
// store keeps health in the one encoding (the JetStream KV store puts it
// in its per-target record).
func AppendHealth(b []byte, h Health) []byte {
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

// DecodeHealth decodes what AppendHealth wrote; b must hold nothing else.
func DecodeHealth(b []byte) (Health, error) {
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
