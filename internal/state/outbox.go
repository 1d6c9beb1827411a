package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/monitord/monitord/internal/event"
)

// Pending events are stored in one bucket, keyed by the target's key, a
// 0x00 byte and the event's 8-byte big-endian sequence number within the
// target: bbolt's key order is then each target's own order, and a
// target's events sit together. Target keys hold no control character
// (checkKey), so one target's keys never interleave with another's.
// Events carried over from a version 1 file have the empty target key: one
// queue in their old order, drained first (migrate).
//
// Records, version 1: version byte | 8-byte big-endian Unix nanoseconds
// when appended | uvarint length + ID | uvarint length + Subject | Data
// (the rest).
const recordVersion = 1

func pendingKey(target string, seq uint64) []byte {
	k := make([]byte, 0, len(target)+9)
	k = append(k, target...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// splitPendingKey is pendingKey's inverse.
func splitPendingKey(k []byte) (event.Position, bool) {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return event.Position{}, false
	}
	return event.Position{Target: string(k[:len(k)-9]), Seq: binary.BigEndian.Uint64(k[len(k)-8:])}, true
}

// pastTarget is the smallest key after every pending key of target.
func pastTarget(target string) []byte {
	return append([]byte(target), 1)
}

// Peek returns up to max pending events after position after (the zero
// Position: from the first), in store order: each target's events in the
// order they were committed, targets one after another in key order (max
// <= 0 means 1000). Order across targets is not promised. The publisher
// passes the position of the last event it sent to read on while earlier
// ones await their acknowledgement.
func (db *DB) Peek(after event.Position, max int) ([]event.Record, error) {
	if max <= 0 {
		max = 1000
	}
	var recs []event.Record
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		var k, v []byte
		switch {
		case after == event.Position{}:
			k, v = c.First()
		case after.Seq == math.MaxUint64:
			k, v = c.Seek(pastTarget(after.Target))
		default:
			k, v = c.Seek(pendingKey(after.Target, after.Seq+1))
		}
		for ; k != nil && len(recs) < max; k, v = c.Next() {
			pos, ok := splitPendingKey(k)
			if !ok {
				return fmt.Errorf("pending key %q: %w", k, errBadRecord)
			}
			m, _, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("pending event %d of %q: %w", pos.Seq, pos.Target, err)
			}
			recs = append(recs, event.Record{Position: pos, Message: m})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peek outbox: %w", err)
	}
	return recs, nil
}

// Delete removes published events (after their PubAck). Positions no
// longer pending are ignored, so a repeated Delete is harmless.
func (db *DB) Delete(ps []event.Position) error {
	if len(ps) == 0 {
		return nil
	}
	err := db.update(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketPending)
		meta := tx.Bucket(bucketMeta)
		n, size := counters(meta)
		for _, p := range ps {
			k := pendingKey(p.Target, p.Seq)
			v := pb.Get(k)
			if v == nil {
				continue
			}
			n--
			size -= int64(len(v))
			if err := pb.Delete(k); err != nil {
				return err
			}
		}
		return putCounters(meta, n, size)
	})
	if err != nil {
		return fmt.Errorf("delete from outbox: %w", err)
	}
	return nil
}

// OutboxStats returns the number of pending events of all targets, their
// stored size, and when the oldest was appended (zero when empty). The
// counters are kept in the same transactions that change the events, so
// they cost O(1); the oldest is the oldest of each target's first event,
// which costs one seek per target with events pending (none in the common
// case, an empty outbox).
func (db *DB) OutboxStats() (events int, size int64, oldest time.Time, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		n, s := counters(tx.Bucket(bucketMeta))
		events, size = int(n), s
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Seek(k) {
			pos, ok := splitPendingKey(k)
			if !ok {
				return fmt.Errorf("pending key %q: %w", k, errBadRecord)
			}
			_, at, err := decodeRecord(v)
			if err != nil {
				return err
			}
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
			k = pastTarget(pos.Target)
		}
		return nil
	})
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	return events, size, oldest, nil
}

// encodeRecords renders msgs as pending records, outside the transaction.
func encodeRecords(msgs []event.Message, now time.Time) (recs [][]byte, size int64) {
	if len(msgs) == 0 {
		return nil, 0
	}
	recs = make([][]byte, len(msgs))
	for i, m := range msgs {
		recs[i] = appendRecord(nil, m, now)
		size += int64(len(recs[i]))
	}
	return recs, size
}

// appendPending stores recs (add bytes in all) as target's events from
// sequence seq on, within tx, and returns the next free sequence; or
// fails with ErrOutboxFull.
func (db *DB) appendPending(tx *bolt.Tx, target string, seq uint64, recs [][]byte, add int64) (uint64, error) {
	if len(recs) == 0 {
		return seq, nil
	}
	meta := tx.Bucket(bucketMeta)
	n, size := counters(meta)
	if n > 0 && (n+int64(len(recs)) > int64(db.opts.MaxOutboxEvents) || size+add > db.opts.MaxOutboxBytes) {
		return 0, fmt.Errorf("%w: %d events (%d bytes) waiting, %d more (%d bytes) would pass the limit of %d events or %d bytes",
			ErrOutboxFull, n, size, len(recs), add, db.opts.MaxOutboxEvents, db.opts.MaxOutboxBytes)
	}
	pb := tx.Bucket(bucketPending)
	for _, r := range recs {
		if err := pb.Put(pendingKey(target, seq), r); err != nil {
			return 0, err
		}
		seq++
	}
	return seq, putCounters(meta, n+int64(len(recs)), size+add)
}

// lastPendingSeq is the sequence of target's last pending event, 0 if none.
func lastPendingSeq(tx *bolt.Tx, target string) uint64 {
	c := tx.Bucket(bucketPending).Cursor()
	k, _ := c.Seek(pastTarget(target))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if pos, ok := splitPendingKey(k); ok && pos.Target == target {
		return pos.Seq
	}
	return 0
}

func counters(meta *bolt.Bucket) (n, size int64) {
	v := meta.Get(keyCounter)
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
}

func putCounters(meta *bolt.Bucket, n, size int64) error {
	if n < 0 || size < 0 {
		return fmt.Errorf("outbox counters went negative (%d events, %d bytes)", n, size)
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(n))
	return meta.Put(keyCounter, binary.BigEndian.AppendUint64(v, uint64(size)))
}

func appendRecord(b []byte, m event.Message, at time.Time) []byte {
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(m.ID)))
	b = append(b, m.ID...)
	b = binary.AppendUvarint(b, uint64(len(m.Subject)))
	b = append(b, m.Subject...)
	return append(b, m.Data...)
}

var errBadRecord = errors.New("bad outbox record")

// decodeRecord copies what it returns: v is bbolt's memory, valid only in
// the transaction.
func decodeRecord(v []byte) (event.Message, time.Time, error) {
	if len(v) < 9 || v[0] != recordVersion {
		return event.Message{}, time.Time{}, errBadRecord
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
	v = v[9:]
	var parts [2]string
	for i := range parts {
		l, n := binary.Uvarint(v)
		if n <= 0 || l > uint64(len(v)-n) {
			return event.Message{}, time.Time{}, errBadRecord
		}
		parts[i] = string(v[n : n+int(l)])
		v = v[n+int(l):]
	}
	return event.Message{ID: parts[0], Subject: parts[1], Data: append([]byte(nil), v...)}, at, nil
}
