// Package kvstore keeps monitord's per-target state and pending events in a
// NATS JetStream KeyValue bucket, behind the same store contract as the
// bbolt file of package state (Load, Commit with revisions and
// ErrConflict, Forget, and the outbox methods the publisher drains), so
// that several instances can share state (issue 12).
//
// One key per target holds one versioned binary record: the snapshot
// (diff's encoding), the health and the target's pending events. A commit
// is one compare-and-set of that key on its KV revision, so a snapshot and
// the events it produced are written together or not at all, and of two
// instances that polled the same target from the same state only one
// commits. The contract's Revision is a KV revision too (see
// record.commitRev): a delete of published events rewrites the key without
// moving the target's revision, so the publisher never makes a poll
// conflict.
//
// A small second key space marks the targets with pending events, so the
// publisher's view costs a listing of those markers, not a read of every
// target (marker.go).
//
// A record larger than one value (the bucket's max value size, or the
// server's max payload when the bucket sets none: 1 MiB by default, about
// 12,000 interactions) is split into chunk keys under a manifest
// (chunk.go).
package kvstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/state"
)

// Defaults for the zero Config fields.
const (
	DefaultBucket   = "monitord_state"
	DefaultReplicas = 3
	DefaultTimeout  = 5 * time.Second
	// DefaultMaxRecord bounds one target's record, chunks included: some
	// 800,000 interactions, far past what one poll can list in time.
	DefaultMaxRecord = 64 << 20
)

// maxRetries bounds how often one operation re-reads a key whose KV
// revision moved under it without a commit (a publisher's delete, another
// instance's poll times). Each retry follows a write that made progress,
// so running out means a key rewritten continuously.
const maxRetries = 32

// Config configures Open. Zero fields take the defaults above.
type Config struct {
	// Bucket is the KeyValue bucket's name.
	Bucket string
	// Replicas is the bucket's replica count when Open creates it; an
	// existing bucket keeps its own.
	Replicas int
	// Timeout bounds each operation against the server: the contract's
	// methods take no context.
	Timeout time.Duration
	// MaxRecord bounds one target's record in bytes: a commit past it is
	// refused, naming the size and the limit.
	MaxRecord int
}

func (c Config) withDefaults() (Config, error) {
	if c.Replicas < 0 || c.Replicas > 5 || c.Timeout < 0 || c.MaxRecord < 0 {
		return c, fmt.Errorf("kv state config: replicas %d (want 1 to 5), timeout %v or max record %d out of range", c.Replicas, c.Timeout, c.MaxRecord)
	}
	if c.MaxRecord == 0 {
		c.MaxRecord = DefaultMaxRecord
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c, nil
}

// Store is the store contract on a JetStream KeyValue bucket. Its methods
// are safe for concurrent use, also by several Stores on one bucket (other
// connections, other hosts): writers of one target are serialised by their
// revisions.
type Store struct {
	kv       jetstream.KeyValue
	cfg      Config
	maxValue int
	// stream and subjectPrefix are the bucket's stream, for purging
	// chunk sets (chunk.go).
	stream        jetstream.Stream
	subjectPrefix string

	mu    sync.Mutex
	times map[string]pollTimes // see Commit

	// afterDeleteWrite, when set by a test, runs between a delete's
	// record write and its marker removal: the window the marker
	// protocol exists for.
	afterDeleteWrite func()
}

type pollTimes struct{ attempt, success time.Time }

// Open returns the Store on cfg's bucket, creating the bucket (history 1,
// no TTL, file storage, cfg.Replicas) when it does not exist. The
// connection behind js stays the caller's: Close does not close it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, BucketConfig(cfg))
	}
	if err != nil {
		return nil, fmt.Errorf("open kv state bucket %s: %w", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("open kv state bucket %s: %w", cfg.Bucket, err)
	}
	// A value larger than the server's max payload is refused whatever the
	// bucket says; the bucket may set a lower limit of its own.
	limit := int(js.Conn().MaxPayload())
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		if m := int(bs.StreamInfo().Config.MaxMsgSize); m > 0 && m < limit {
			limit = m
		}
	}
	stream, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv state bucket %s: stream: %w", cfg.Bucket, err)
	}
	if sc := stream.CachedInfo().Config; sc.AllowDirect && sc.Replicas > 1 {
		// KV buckets answer reads with direct gets, which any replica
		// serves, and a follower may not have applied the last write
		// yet: a poll would load the state from before its own last
		// commit and then fail with ErrConflict with no other writer, and
		// the publisher would miss events just committed. Without direct
		// gets the stream's leader answers, after every write it
		// acknowledged. A single replica is its own leader, and keeps
		// direct gets: 1.6-2x cheaper per read (docs/ha.md). The handles
		// read the setting when they bind, so they are bound again.
		sc.AllowDirect = false
		if stream, err = js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("open kv state bucket %s: turn direct gets off: %w", cfg.Bucket, err)
		}
		if kv, err = js.KeyValue(ctx, cfg.Bucket); err != nil {
			return nil, fmt.Errorf("open kv state bucket %s: %w", cfg.Bucket, err)
		}
	}
	// The KV key and the publish headers travel with the value.
	const overhead = 512
	return &Store{kv: kv, cfg: cfg, maxValue: limit - overhead, stream: stream, subjectPrefix: "$KV." + cfg.Bucket + ".",
		times: map[string]pollTimes{}}, nil
}

// BucketConfig is the bucket Open creates for cfg (zero fields: the
// defaults): history 1, no TTL, file storage. `monitord nats-assets`
// prints it for operators who create it themselves.
func BucketConfig(cfg Config) jetstream.KeyValueConfig {
	cfg, _ = cfg.withDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "monitord per-target state and pending events",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
}

// MaxValue is the largest record stored in one value, in bytes; larger
// ones are chunked.
func (s *Store) MaxValue() int { return s.maxValue }

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.Timeout)
}

// get reads a target's record; st.found is false when the key has none.
func (s *Store) get(ctx context.Context, name string, events bool) (record, stored, error) {
	v, st, err := s.read(ctx, name)
	if err != nil || !st.found {
		return record{}, st, err
	}
	r, err := decodeRecord(v, events)
	if err != nil {
		return record{}, stored{}, fmt.Errorf("revision %d: %w", st.rev, err)
	}
	return r, st, nil
}

// put writes r over the record read as st. ok is false when another
// writer got there first.
func (s *Store) put(ctx context.Context, name string, r *record, st stored) (newRev uint64, ok bool, err error) {
	return s.write(ctx, name, r.appendTo(make([]byte, 0, r.size())), st)
}

// Load returns the stored state of the target with the given key and its
// revision; zero for a target never committed or forgotten.
func (s *Store) Load(key string) (state.TargetState, state.Revision, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	r, st, err := s.get(ctx, keyName(key), false)
	if err != nil {
		return state.TargetState{}, 0, fmt.Errorf("load state of %s: %w", key, err)
	}
	if !st.found || !r.live {
		return state.TargetState{}, 0, nil
	}
	ts, err := r.targetState()
	if err != nil {
		return state.TargetState{}, 0, fmt.Errorf("load state of %s: %w", key, err)
	}
	s.mu.Lock()
	if pt, ok := s.times[key]; ok {
		ts.Health.LastAttempt = laterOf(ts.Health.LastAttempt, pt.attempt)
		ts.Health.LastSuccess = laterOf(ts.Health.LastSuccess, pt.success)
	}
	s.mu.Unlock()
	return ts, r.revision(st.rev), nil
}

func (r *record) targetState() (state.TargetState, error) {
	var ts state.TargetState
	h, err := state.DecodeHealth(r.health)
	if err != nil {
		return ts, fmt.Errorf("health: %w", err)
	}
	ts.Health = h
	if r.snapshot != nil {
		if err := ts.Snapshot.UnmarshalBinary(r.snapshot); err != nil {
			return ts, fmt.Errorf("snapshot: %w", err)
		}
	}
	return ts, nil
}

// Commit stores a target's state after a poll and appends events to its
// pending events, in one compare-and-set of the target's key: all of it
// or none of it. rev is the revision Load returned; when a commit moved
// the target on since (or Forget), Commit writes nothing and returns an
// error wrapping state.ErrConflict. It returns the new revision.
//
// As with the bbolt store, a commit with no events, no snapshot and a
// health that differs at most in LastAttempt and LastSuccess writes
// nothing: the two times stay in memory (Load returns them) until the
// target's next write or Close. Here that saves a replicated write per
// unchanged poll. There is no bound across targets (state.ErrOutboxFull)
// yet: a target's pending events are bounded by Config.MaxRecord.
func (s *Store) Commit(key string, rev state.Revision, next state.Next, events []event.Message) (state.Revision, error) {
	nrev, err := s.commit(key, rev, next, events)
	if err != nil {
		return 0, fmt.Errorf("commit state of %s: %w", key, err)
	}
	return nrev, nil
}

func (s *Store) commit(key string, rev state.Revision, next state.Next, events []event.Message) (state.Revision, error) {
	if err := state.CheckKey(key); err != nil {
		return 0, err
	}
	name := keyName(key)
	ctx, cancel := s.ctx()
	defer cancel()
	var snap []byte
	if next.Snapshot != nil {
		snap, _ = next.Snapshot.MarshalBinary()
	}
	health := state.AppendHealth(nil, next.Health)
	now := time.Now()
	for range maxRetries {
		cur, st, err := s.get(ctx, name, true)
		if err != nil {
			return 0, err
		}
		if got := cur.revision(st.rev); got != rev {
			return 0, fmt.Errorf("%w: loaded at revision %d, now at %d", state.ErrConflict, rev, got)
		}
		if cur.live && len(events) == 0 && next.Snapshot == nil {
			if h, err := state.DecodeHealth(cur.health); err == nil && h.DurableEqual(next.Health) {
				s.mu.Lock()
				s.times[key] = pollTimes{next.Health.LastAttempt, next.Health.LastSuccess}
				s.mu.Unlock()
				return rev, nil
			}
		}
		nr := record{live: true, markerRev: cur.markerRev, nextSeq: max(cur.nextSeq, 1), health: health, snapshot: snap, events: cur.events}
		if snap == nil && cur.live {
			nr.snapshot = cur.snapshot
		}
		if len(events) > 0 {
			nr.events = slices.Grow(slices.Clip(cur.events), len(events))
			for _, m := range events {
				nr.events = append(nr.events, pending{seq: nr.nextSeq, at: now, msg: m})
				nr.nextSeq++
			}
			// The marker goes first: a crash after it leaves a marker
			// without events (harmless), never events without a marker.
			if nr.markerRev, err = s.mark(ctx, name); err != nil {
				return 0, err
			}
		}
		newRev, ok, err := s.put(ctx, name, &nr, st)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue // rewritten since the read: a conflict only if its revision moved
		}
		s.mu.Lock()
		delete(s.times, key)
		s.mu.Unlock()
		return state.Revision(newRev), nil
	}
	return 0, fmt.Errorf("key rewritten %d times during the commit", maxRetries)
}

// Forget removes the state of the given targets; Load then returns
// revision zero. Pending events stay until they are published and
// deleted: the key keeps them in a record marked as having no state.
// Unknown keys are ignored.
func (s *Store) Forget(keys ...string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	for _, key := range keys {
		if err := s.forget(ctx, key); err != nil {
			return fmt.Errorf("forget %s: %w", key, err)
		}
		s.mu.Lock()
		delete(s.times, key)
		s.mu.Unlock()
	}
	return nil
}

func (s *Store) forget(ctx context.Context, key string) error {
	name := keyName(key)
	for range maxRetries {
		cur, st, err := s.get(ctx, name, true)
		if err != nil || !st.found || !cur.live {
			return err
		}
		var ok bool
		if len(cur.events) == 0 {
			ok, err = s.deleteRecord(ctx, name, st)
		} else {
			nr := record{markerRev: cur.markerRev, nextSeq: cur.nextSeq, events: cur.events}
			_, ok, err = s.put(ctx, name, &nr, st)
		}
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("key rewritten %d times", maxRetries)
}

// deleteAt deletes a key if its KV revision is still kvRev; ok is false
// when it moved.
func (s *Store) deleteAt(ctx context.Context, kvKey string, kvRev uint64) (ok bool, err error) {
	err = s.kv.Delete(ctx, kvKey, jetstream.LastRevision(kvRev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return false, nil
	}
	return err == nil, err
}

// Keys lists the keys of every target with stored state, sorted. It reads
// every record (a forgotten target's key may still hold pending events):
// a start-up cost, not a per-poll one.
func (s *Store) Keys() ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	names, err := s.list(ctx, recordPrefix)
	if err != nil {
		return nil, fmt.Errorf("list state keys: %w", err)
	}
	var keys []string
	for _, n := range names {
		key, err := targetKey(n)
		if err != nil {
			return nil, fmt.Errorf("list state keys: %w", err)
		}
		r, st, err := s.get(ctx, n, false)
		if err != nil {
			return nil, fmt.Errorf("list state keys: %s: %w", key, err)
		}
		if st.found && r.live {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// list returns the names (keys without prefix) of the live keys under
// prefix, without duplicates.
func (s *Store) list(ctx context.Context, prefix string) ([]string, error) {
	kl, err := s.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for k := range kl.Keys() {
		if n := k[len(prefix):]; !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	// The channel also closes when ctx ends: that listing is incomplete.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return names, nil
}

// Close writes the poll times held back by Commit (over the state they
// belong to: a target committed by another writer since keeps its own)
// and forgets them. The connection stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	times := s.times
	s.times = map[string]pollTimes{}
	s.mu.Unlock()
	if len(times) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	for key, pt := range times {
		if err := s.writeTimes(ctx, key, pt); err != nil {
			return fmt.Errorf("close kv state: write poll times of %s: %w", key, err)
		}
	}
	return nil
}

func (s *Store) writeTimes(ctx context.Context, key string, pt pollTimes) error {
	name := keyName(key)
	cur, st, err := s.get(ctx, name, true)
	if err != nil || !st.found || !cur.live {
		return err
	}
	h, err := state.DecodeHealth(cur.health)
	if err != nil {
		return err
	}
	h.LastAttempt, h.LastSuccess = laterOf(h.LastAttempt, pt.attempt), laterOf(h.LastSuccess, pt.success)
	nr := cur
	nr.commitRev = uint64(cur.revision(st.rev)) // the times move no revision
	nr.health = state.AppendHealth(nil, h)
	_, _, err = s.put(ctx, name, &nr, st) // lost to a newer write: it has newer times
	return err
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
