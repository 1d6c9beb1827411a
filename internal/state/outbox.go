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

// Outbox records, version 1: version byte | 8-byte big-endian Unix
// nanoseconds when appended | uvarint length + ID | uvarint length +
// Subject | Data (the rest). The key is the record's Seq, big-endian, so
// bbolt's key order is publishing order.
const recordVersion = 1

// Peek returns up to max outbox records with Seq > afterSeq, in Seq order
// (max <= 0 means 1000). The publisher passes the last Seq it sent to read
// on while earlier ones await their acknowledgement.
func (db *DB) Peek(afterSeq uint64, max int) ([]event.Record, error) {
	if max <= 0 {
		max = 1000
	}
	if afterSeq == math.MaxUint64 {
		return nil, nil
	}
	var recs []event.Record
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, afterSeq+1)); k != nil && len(recs) < max; k, v = c.Next() {
			m, _, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			recs = append(recs, event.Record{Seq: binary.BigEndian.Uint64(k), Message: m})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peek outbox: %w", err)
	}
	return recs, nil
}

// Delete removes published records (after their PubAck). Seqs no longer
// in the outbox are ignored, so a repeated Delete is harmless.
func (db *DB) Delete(seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := db.update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		meta := tx.Bucket(bucketMeta)
		n, size := counters(meta)
		var k [8]byte
		for _, seq := range seqs {
			binary.BigEndian.PutUint64(k[:], seq)
			v := ob.Get(k[:])
			if v == nil {
				continue
			}
			n--
			size -= int64(len(v))
			if err := ob.Delete(k[:]); err != nil {
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

// OutboxStats returns the number of waiting events, their stored size, and
// when the oldest was appended (zero when empty), in O(1): the counters are
// kept in the same transactions that change the outbox.
func (db *DB) OutboxStats() (events int, size int64, oldest time.Time, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		n, s := counters(tx.Bucket(bucketMeta))
		events, size = int(n), s
		if _, v := tx.Bucket(bucketOutbox).Cursor().First(); v != nil {
			_, at, err := decodeRecord(v)
			if err != nil {
				return err
			}
			oldest = at
		}
		return nil
	})
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	return events, size, oldest, nil
}

// appendOutbox appends msgs within tx, or fails with ErrOutboxFull.
func (db *DB) appendOutbox(tx *bolt.Tx, msgs []event.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	n, size := counters(meta)
	now := time.Now()
	recs := make([][]byte, len(msgs))
	var add int64
	for i, m := range msgs {
		recs[i] = appendRecord(nil, m, now)
		add += int64(len(recs[i]))
	}
	if n > 0 && (n+int64(len(msgs)) > int64(db.opts.MaxOutboxEvents) || size+add > db.opts.MaxOutboxBytes) {
		return fmt.Errorf("%w: %d events (%d bytes) waiting, %d more (%d bytes) would pass the limit of %d events or %d bytes",
			ErrOutboxFull, n, size, len(msgs), add, db.opts.MaxOutboxEvents, db.opts.MaxOutboxBytes)
	}
	ob := tx.Bucket(bucketOutbox)
	// Keys only ever grow: full pages split at the end are better packed.
	ob.FillPercent = 0.95
	for _, r := range recs {
		seq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		if err := ob.Put(binary.BigEndian.AppendUint64(nil, seq), r); err != nil {
			return err
		}
	}
	return putCounters(meta, n+int64(len(msgs)), size+add)
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
