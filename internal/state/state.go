// Package state keeps monitord's durable state in one bbolt file: per
// target, the snapshot of its last complete listing, its health, its
// revision and its pending events, the events waiting to be published to
// NATS (together, the outbox).
//
// A successful poll commits the target's next snapshot and the events it
// produced in one bbolt transaction (Commit), so a crash at any instant
// either keeps both or neither: events are never lost and never derived
// twice. Commit takes the revision Load returned and refuses to write over
// a newer one (ErrConflict), so the contract holds for several writers of
// one target, not only for the one process that owns the file today.
// The publisher drains each target's events in order (Peek) and removes
// them only after NATS confirmed them (Delete); a crash in between
// republishes them with the same ids, which JetStream's duplicate window
// drops. Memory implements the same contract in memory; the conformance
// suite in package statetest holds both to it.
//
// The state lives on disk, not in memory: nothing caches snapshots, so heap
// use does not grow with the number of tracked interactions (bbolt's mapped
// pages are page cache, not heap). The only per-target memory is the
// last-attempt/last-success times of targets whose poll wrote nothing
// (see Commit), a few dozen bytes per target.
//
// Layout (schema version 2): buckets "meta" (schema version, outbox
// counters), "snapshots" and "targets" (revision, next event sequence and
// health) keyed by the target key, and "pending" keyed by the target key
// and the event's sequence within the target (outbox.go). Version 1 had
// "health" instead of "targets" and one "outbox" queue keyed by a global
// sequence; Open migrates it (migrate.go).
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code reads and writes. A file with a
// higher version was written by a newer monitord and is refused rather than
// misread.
const SchemaVersion = 2

// Defaults for the zero Options fields.
const (
	DefaultMaxOutboxEvents = 100_000
	DefaultMaxOutboxBytes  = 256 << 20
	DefaultOpenTimeout     = 5 * time.Second
	DefaultCommitBatch     = 2 * time.Millisecond
)

var (
	bucketMeta      = []byte("meta")
	bucketSnapshots = []byte("snapshots")
	bucketTargets   = []byte("targets")
	bucketPending   = []byte("pending")

	keySchema  = []byte("schema")
	keyCounter = []byte("outbox")
)

// ErrOutboxFull is wrapped by Commit when the events would
// take the outbox past Options.MaxOutboxEvents or MaxOutboxBytes. Nothing
// was committed: the caller keeps the target where it was and retries
// later, so no event is dropped.
var ErrOutboxFull = errors.New("outbox full")

// ErrCorrupt is wrapped by Open when the state file is damaged (truncated,
// or a page that does not read back as bbolt wrote it), and by a later read
// or write that meets a damaged page Open did not read. The file is left
// untouched: moving it aside starts afresh (docs/operations.md).
var ErrCorrupt = errors.New("corrupt file, left untouched (move it aside to start afresh)")

// Options configure Open. Zero fields take the defaults above.
type Options struct {
	// MaxOutboxEvents bounds the number of unpublished events.
	MaxOutboxEvents int
	// MaxOutboxBytes bounds their stored size.
	MaxOutboxBytes int64
	// OpenTimeout is how long Open waits for the file lock held by another
	// process before giving up.
	OpenTimeout time.Duration
	// CommitBatch is how long a commit that writes while others are
	// writing too (the poller runs many polls at once) waits for more of
	// them to share its transaction and its fsync: N concurrent changed
	// polls cost one disk flush instead of N. A lone commit does not wait.
	CommitBatch time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxOutboxEvents < 0 || o.MaxOutboxBytes < 0 || o.OpenTimeout < 0 || o.CommitBatch < 0 {
		return o, fmt.Errorf("state options: negative value (max events %d, max bytes %d, open timeout %v, commit batch %v)",
			o.MaxOutboxEvents, o.MaxOutboxBytes, o.OpenTimeout, o.CommitBatch)
	}
	if o.MaxOutboxEvents == 0 {
		o.MaxOutboxEvents = DefaultMaxOutboxEvents
	}
	if o.MaxOutboxBytes == 0 {
		o.MaxOutboxBytes = DefaultMaxOutboxBytes
	}
	if o.OpenTimeout == 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.CommitBatch == 0 {
		o.CommitBatch = DefaultCommitBatch
	}
	return o, nil
}

// DB is an open state file. Its methods are safe for concurrent use;
// concurrent commits of one target are serialised by their revisions (one
// wins, the others fail with ErrConflict).
type DB struct {
	db   *bolt.DB
	path string
	opts Options

	mu sync.Mutex
	// times holds LastAttempt/LastSuccess of targets whose latest commit
	// changed nothing else: writing a transaction (and an fsync) per target
	// per poll only to move two timestamps would make the common case, an
	// unchanged listing, cost a disk write. They are written with the
	// target's next real change and on Close.
	times map[string]pollTimes

	bufs    sync.Pool    // *[]byte encode buffers
	writers atomic.Int32 // commits writing now
}

type pollTimes struct{ attempt, success time.Time }

// DefaultPath is where the state file goes when the config names none:
// monitord.db in $STATE_DIRECTORY when systemd sets it (StateDirectory=;
// the first entry if it lists several), else monitord.db in the working
// directory.
func DefaultPath() string {
	if dir := os.Getenv("STATE_DIRECTORY"); dir != "" {
		if i := strings.IndexByte(dir, ':'); i >= 0 {
			dir = dir[:i]
		}
		return filepath.Join(dir, "monitord.db")
	}
	return "monitord.db"
}

// Open opens or creates the state file at path (mode 0600; a missing
// parent directory is created with mode 0700). It fails, naming the path,
// when another process holds the file for longer than opts.OpenTimeout,
// when the file is not a readable bbolt file (it is then left untouched),
// or when it was written by a newer schema version.
func Open(path string, opts Options) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	bdb, err := openBolt(path, opts.OpenTimeout)
	if err != nil {
		return nil, err
	}
	if err := checkSize(bdb, path); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	if err := checkSchema(bdb, path); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	bdb.MaxBatchDelay = opts.CommitBatch
	return &DB{db: bdb, path: path, opts: opts, times: map[string]pollTimes{}}, nil
}

func openBolt(path string, timeout time.Duration) (bdb *bolt.DB, err error) {
	// bbolt panics on some kinds of damage it finds while loading the
	// freelist, and a freelist page past the end of a truncated file faults
	// when read through the map; report both like any other corrupt file.
	err = guard(func() (err error) {
		bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
		return err
	})
	switch {
	case err == nil:
		return bdb, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open state %s: still locked after %v by another process (is another monitord running on this file?): %w", path, timeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("open state %s: not a bbolt file or %w: %w", path, ErrCorrupt, err)
	case errors.Is(err, ErrCorrupt):
		return nil, fmt.Errorf("open state %s: %w", path, err)
	default:
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
}

// guard runs fn and turns a panic or a memory fault inside it into an error
// wrapping ErrCorrupt. bbolt asserts that each page it reads is the one it
// asked for and panics otherwise ("Page expected to be …"), and a page
// beyond the end of a truncated file faults (SIGBUS) when read through the
// map: both mean a damaged file, and neither may take the daemon down with
// a stack trace. SetPanicOnFault is per goroutine, so fn must not hand the
// file's pages to another goroutine.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, p)
		}
	}()
	return fn()
}

// view and update are bbolt's View and Update under guard.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	return guard(func() error { return db.db.View(fn) })
}

func (db *DB) update(fn func(*bolt.Tx) error) error {
	return guard(func() error { return db.db.Update(fn) })
}

// batch is bbolt's Batch under guard. fn is guarded too: Batch may run it
// on the goroutine of another commit of the same batch.
func (db *DB) batch(fn func(*bolt.Tx) error) error {
	return guard(func() error {
		return db.db.Batch(func(tx *bolt.Tx) error { return guard(func() error { return fn(tx) }) })
	})
}

// checkSize refuses a file shorter than the pages its meta page counts: a
// truncated copy. Open reads few pages (the meta and freelist pages, the
// root), so without this check the damage would surface at the first read
// of a missing page, as a fault. The check is one stat; bbolt's full
// consistency check (tx.Check) would read every page of the file, which
// costs start-up far more (docs/performance.md).
func checkSize(bdb *bolt.DB, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open state %s: %w", path, err)
	}
	var need int64
	if err := guard(func() error {
		return bdb.View(func(tx *bolt.Tx) error { need = tx.Size(); return nil })
	}); err != nil {
		return fmt.Errorf("open state %s: %w", path, err)
	}
	if fi.Size() < need {
		return fmt.Errorf("open state %s: %w: truncated: %d bytes, its pages need %d", path, ErrCorrupt, fi.Size(), need)
	}
	return nil
}

// checkSchema refuses files of a newer schema or of another program, and
// initialises a new, empty file. It writes only to a file that has no
// buckets at all.
func checkSchema(bdb *bolt.DB, path string) error {
	var version uint64
	var foreign bool
	err := guard(func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta == nil {
				err := tx.ForEach(func([]byte, *bolt.Bucket) error { foreign = true; return nil })
				// bbolt's own initialisation commits transactions 0 and
				// 1; a file without buckets that saw later ones lost
				// them, and must not be initialised over.
				if err == nil && !foreign && tx.ID() > 1 {
					return fmt.Errorf("%w: no buckets after %d transactions", ErrCorrupt, tx.ID())
				}
				return err
			}
			v := meta.Get(keySchema)
			if len(v) != 8 {
				return fmt.Errorf("%w: schema version key has %d bytes", ErrCorrupt, len(v))
			}
			version = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	switch {
	case err != nil:
		return fmt.Errorf("open state %s: %w", path, err)
	case foreign:
		return fmt.Errorf("open state %s: not a monitord state file (it has buckets but no schema version), left untouched", path)
	case version > SchemaVersion:
		return fmt.Errorf("open state %s: schema version %d was written by a newer monitord; this one reads up to %d", path, version, SchemaVersion)
	case version == SchemaVersion:
		return nil
	case version == 1:
		if err := guard(func() error { return bdb.Update(migrateV1) }); err != nil {
			return fmt.Errorf("migrate state %s from schema version 1: %w", path, err)
		}
		return nil
	}
	err = guard(func() error {
		return bdb.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketSnapshots, bucketTargets, bucketPending} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
		})
	})
	if err != nil {
		return fmt.Errorf("initialise state %s: %w", path, err)
	}
	return nil
}

// Path is the file's path, for logs.
func (db *DB) Path() string { return db.path }

// Close writes the poll times held back by Commit and closes the file.
func (db *DB) Close() error {
	db.mu.Lock()
	times := db.times
	db.times = map[string]pollTimes{}
	db.mu.Unlock()
	var flushErr error
	if len(times) > 0 {
		flushErr = db.update(func(tx *bolt.Tx) error {
			// The times move no revision: they are a record of polls,
			// not state a commit is computed from.
			tb := tx.Bucket(bucketTargets)
			for key, pt := range times {
				v := tb.Get([]byte(key))
				if v == nil {
					continue // forgotten since
				}
				tr, err := decodeTargetRecord(v)
				if err != nil {
					return fmt.Errorf("health of %s: %w", key, err)
				}
				h := &tr.health
				h.LastAttempt, h.LastSuccess = laterOf(h.LastAttempt, pt.attempt), laterOf(h.LastSuccess, pt.success)
				if err := tb.Put([]byte(key), appendTargetRecord(nil, tr)); err != nil {
					return err
				}
			}
			return nil
		})
		if flushErr != nil {
			flushErr = fmt.Errorf("close state %s: write poll times: %w", db.path, flushErr)
		}
	}
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", db.path, err)
	}
	return flushErr
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
