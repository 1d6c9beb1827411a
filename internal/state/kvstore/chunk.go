package kvstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// A record larger than one value is split into chunk keys
// "c.<name>.<set>.<i>", and the target's key holds a manifest naming the
// set. The chunks are written first and the manifest last, with the same
// compare-and-set as an inline record, so a reader sees the old set or
// the new one, whole. The set's name is random and never reused: a writer
// that loses the compare-and-set cannot overwrite the winner's chunks.
// Sets no longer named are purged from the bucket's stream by subject,
// which leaves no delete marker behind (a KV delete would leave one per
// chunk key, forever, with history 1). A crash between writing chunks and
// the manifest, or before the purge, leaves an unreferenced set: space,
// never state.
//
// Manifest, version 2: version byte | uvarint length + set name | uvarint
// chunk count | uvarint total length of the record.
const (
	chunkPrefix     = "c."
	manifestVersion = 2
)

func appendManifest(b []byte, set string, n, total int) []byte {
	b = append(b, manifestVersion)
	b = appendBytes(b, []byte(set))
	b = binary.AppendUvarint(b, uint64(n))
	return binary.AppendUvarint(b, uint64(total))
}

func decodeManifest(v []byte) (set string, n, total int, err error) {
	d := decoder{b: v[1:]}
	set = string(d.bytes())
	n, total = int(d.uvarint()), int(d.uvarint())
	if d.err != nil || set == "" || n <= 0 || len(d.b) != 0 {
		return "", 0, 0, errBadRecord
	}
	return set, n, total, nil
}

func chunkKey(name, set string, i int) string {
	return fmt.Sprintf("%s%s.%s.%d", chunkPrefix, name, set, i)
}

// stored is where a record was read from: its KV revision and, when it is
// chunked, its set.
type stored struct {
	rev   uint64
	found bool
	set   string
}

// read returns the record bytes of the target named name, assembling a
// chunked one. A set purged under it (a newer write won meanwhile) makes
// it read the manifest again.
func (s *Store) read(ctx context.Context, name string) ([]byte, stored, error) {
	for range maxRetries {
		e, err := s.kv.Get(ctx, recordPrefix+name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, stored{}, nil
		}
		if err != nil {
			return nil, stored{}, err
		}
		v := e.Value()
		if len(v) == 0 || v[0] != manifestVersion {
			return v, stored{rev: e.Revision(), found: true}, nil
		}
		set, n, total, err := decodeManifest(v)
		if err != nil {
			return nil, stored{}, fmt.Errorf("manifest at revision %d: %w", e.Revision(), err)
		}
		full := make([]byte, 0, total)
		for i := range n {
			c, err := s.kv.Get(ctx, chunkKey(name, set, i))
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				full = nil
				break
			}
			if err != nil {
				return nil, stored{}, fmt.Errorf("chunk %d of %d: %w", i, n, err)
			}
			full = append(full, c.Value()...)
		}
		if full == nil {
			continue // replaced and purged since the manifest was read
		}
		if len(full) != total {
			return nil, stored{}, fmt.Errorf("chunks of set %s hold %d bytes, the manifest says %d: %w", set, len(full), total, errBadRecord)
		}
		return full, stored{rev: e.Revision(), found: true, set: set}, nil
	}
	return nil, stored{}, fmt.Errorf("chunks replaced %d times while reading", maxRetries)
}

// write stores v over st (create when !st.found), in chunks when it is
// larger than one value. ok is false when another writer got there first;
// nothing of this write is left then.
func (s *Store) write(ctx context.Context, name string, v []byte, st stored) (newRev uint64, ok bool, err error) {
	if len(v) > s.cfg.MaxRecord {
		return 0, false, fmt.Errorf("state of %d bytes is over the limit of %d bytes per target (MaxRecord)", len(v), s.cfg.MaxRecord)
	}
	set := ""
	if len(v) > s.maxValue {
		var id [8]byte
		_, _ = rand.Read(id[:]) // never fails (crypto/rand)
		set = hex.EncodeToString(id[:])
		n := 0
		for off := 0; off < len(v); off += s.maxValue {
			if _, err := s.kv.Put(ctx, chunkKey(name, set, n), v[off:min(off+s.maxValue, len(v))]); err != nil {
				s.purge(ctx, name, set)
				return 0, false, fmt.Errorf("write chunk %d: %w", n, err)
			}
			n++
		}
		v = appendManifest(nil, set, n, len(v))
	}
	if st.found {
		newRev, err = s.kv.Update(ctx, recordPrefix+name, v, st.rev)
	} else {
		newRev, err = s.kv.Create(ctx, recordPrefix+name, v)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		err = nil
	} else if err == nil {
		ok = true
	}
	switch {
	case !ok && set != "":
		s.purge(ctx, name, set) // lost or failed: the set is nobody's
	case ok && st.set != "":
		s.purge(ctx, name, st.set) // replaced: the old set is nobody's
	}
	return newRev, ok, err
}

// deleteRecord deletes the target's key if it is still at st.rev, and its
// chunks with it.
func (s *Store) deleteRecord(ctx context.Context, name string, st stored) (ok bool, err error) {
	ok, err = s.deleteAt(ctx, recordPrefix+name, st.rev)
	if ok && st.set != "" {
		s.purge(ctx, name, st.set)
	}
	return ok, err
}

// purge removes a chunk set from the bucket's stream. Its failure is not
// reported: an unreferenced set is space, not state, and the write that
// made it unreferenced succeeded or failed on its own account.
func (s *Store) purge(ctx context.Context, name, set string) {
	_ = s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.subjectPrefix+chunkPrefix+name+"."+set+".>"))
}
