package state

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkOpen: start-up's cost of opening a state file of 2,000 targets ×
// 200 interactions (400,000, about 37 MB), with and without bbolt's full
// consistency check (tx.Check), page cache warm.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "open.db")
	db, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	seed(b, db, 2000, benchPerTarget)
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	for _, check := range []bool{false, true} {
		name := "plain"
		if check {
			name = "check"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				db, err := Open(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if check {
					err = db.db.View(func(tx *bolt.Tx) error {
						for err := range tx.Check() {
							return err
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
