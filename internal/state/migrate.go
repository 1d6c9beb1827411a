package state

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// Version 1's buckets, read only by migrateV1.
var (
	bucketHealthV1 = []byte("health")
	bucketOutboxV1 = []byte("outbox")
)

// migrateHook, when set by a test, runs at the end of migrateV1: an error
// from it stands in for a crash before the migration commits.
var migrateHook func() error

// migrateV1 turns a version 1 file into version 2 within tx, the one
// transaction Open runs it in: a crash or an error on the way leaves the
// file as it was, still version 1, and the next start migrates it again.
//
//   - Each target's health becomes its record in "targets", at revision 1
//     with its events numbered from 1.
//   - The events of the global "outbox" queue become pending events of the
//     empty target key, with their old sequence numbers: one queue, drained
//     first and in the order version 1 would have published it. Version 1
//     records do not say which target they belong to, and telling it from
//     the subject would parse what the event package builds; their
//     per-target order is kept either way.
//   - The record encoding, and so the outbox counters, do not change.
func migrateV1(tx *bolt.Tx) error {
	hb, ob := tx.Bucket(bucketHealthV1), tx.Bucket(bucketOutboxV1)
	tb, err := tx.CreateBucket(bucketTargets)
	if err != nil {
		return err
	}
	pb, err := tx.CreateBucket(bucketPending)
	if err != nil {
		return err
	}
	if hb != nil {
		err := hb.ForEach(func(k, v []byte) error {
			rec := binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(v)), 1)
			rec = binary.BigEndian.AppendUint64(rec, 1)
			return tb.Put(k, append(rec, v...))
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketHealthV1); err != nil {
			return err
		}
	}
	if ob != nil {
		pb.FillPercent = 0.95 // keys only grow here: pack the pages
		err := ob.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return errBadRecord
			}
			return pb.Put(pendingKey("", binary.BigEndian.Uint64(k)), v)
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketOutboxV1); err != nil {
			return err
		}
	}
	if _, err := tx.CreateBucketIfNotExists(bucketSnapshots); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, 2)); err != nil {
		return err
	}
	if migrateHook != nil {
		return migrateHook()
	}
	return nil
}
